"""Injectable clocks: wall time live, the events' own time in replay."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """The current time in milliseconds since the epoch."""
        ...


class WallClock:
    """Real time, for live sources."""

    def now(self) -> int:
        return time.time_ns() // 1_000_000


class VirtualClock:
    """Time that only moves when told to, and never backwards (replay and tests)."""

    def __init__(self, start: int = 0) -> None:
        self._now = start

    def now(self) -> int:
        return self._now

    def set(self, ts: int) -> int:
        """Move to ``ts`` unless that is in the past; return the clock's time."""
        if ts > self._now:
            self._now = ts
        return self._now

    def advance(self, ms: int) -> int:
        return self.set(self._now + ms)
