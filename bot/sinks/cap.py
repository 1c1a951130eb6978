"""A hard per-minute cap for a sink (the chat sink, each integration): at most ``limit`` sends in
any 60 seconds, a sliding window over the times of the last sends."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable


class MinuteCap:
    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._sent_at: deque[float] = deque()

    def allowed(self) -> bool:
        """Whether one more may go now."""
        now = self.clock()
        while self._sent_at and self._sent_at[0] <= now - 60:
            self._sent_at.popleft()
        return len(self._sent_at) < self.limit

    def took(self) -> None:
        """One went now."""
        self._sent_at.append(self.clock())
