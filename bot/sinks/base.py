"""The sink protocol: anything that takes actions somewhere."""

from __future__ import annotations

from typing import Protocol, Sequence

from bot.actions.model import Action


class Sink(Protocol):
    """A destination for actions. ``send`` gets actions in order, in batches; ``close`` flushes."""

    name: str

    async def send(self, actions: Sequence[Action]) -> None: ...

    async def close(self) -> None: ...
