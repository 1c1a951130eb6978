"""The source protocol: anything that yields normalized events."""

from __future__ import annotations

from typing import AsyncIterator, Protocol

from bot.events.model import Event


class Source(Protocol):
    """Yields events in batches (a batch may be a single event). ``malformed`` counts bad input."""

    name: str
    malformed: int

    def batches(self) -> AsyncIterator[list[Event]]: ...
