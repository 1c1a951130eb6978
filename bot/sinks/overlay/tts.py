"""Rate limits for text-to-speech: one viewer cannot monopolise the voice, nor can a crowd.

Time is the action's own ``ts`` (ms), so a replay limits exactly as the live run did.
"""

from __future__ import annotations

from collections import Counter, deque

WINDOW_MS = 60_000


class TtsLimiter:
    """At most ``per_minute`` lines in any 60 s, and one per viewer every ``user_gap_ms``.

    ``allow`` counts what it refuses in ``counters`` (``dropped_global``, ``dropped_user``).
    A line without a viewer only counts against the global limit; 0 switches a limit off.
    """

    def __init__(self, per_minute: int = 6, user_gap_ms: int = 30_000) -> None:
        self.per_minute = per_minute
        self.user_gap_ms = user_gap_ms
        self.counters: Counter[str] = Counter()
        self._recent: deque[int] = deque()
        self._last: dict[str, int] = {}

    def allow(self, user: str | None, now: int) -> bool:
        while self._recent and self._recent[0] <= now - WINDOW_MS:
            self._recent.popleft()
        if user and self.user_gap_ms and (last := self._last.get(user)) is not None and now - last < self.user_gap_ms:
            self.counters["dropped_user"] += 1
            return False
        if self.per_minute and len(self._recent) >= self.per_minute:
            self.counters["dropped_global"] += 1
            return False
        self._recent.append(now)
        if user:
            self._last[user] = now
            if len(self._last) > 10_000:  # forget viewers whose gap has long passed
                self._last = {u: t for u, t in self._last.items() if now - t < self.user_gap_ms}
        self.counters["allowed"] += 1
        return True
