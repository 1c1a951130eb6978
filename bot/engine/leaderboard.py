"""The session's top gifters, by diamonds (ties: who got there first ranks higher)."""

from __future__ import annotations

import bisect

from bot.events.model import User


class Leaderboard:
    def __init__(self) -> None:
        self.diamonds: dict[str, int] = {}
        self._entry: dict[str, tuple[int, int, str]] = {}  # key -> its place in _order
        self._order: list[tuple[int, int, str]] = []  # (-diamonds, reached seq, key), best first
        self._who: dict[str, tuple[str, str]] = {}
        self._seq = 0

    def rank(self, key: str) -> int | None:
        """1 for the top gifter; None for someone who has not gifted."""
        entry = self._entry.get(key)
        return None if entry is None else bisect.bisect_left(self._order, entry) + 1

    def add(self, user: User, diamonds: int) -> tuple[int | None, int]:
        """Credit a gift; return the viewer's rank before and after."""
        key = user.key
        before = self.rank(key)
        old = self._entry.get(key)
        if old is not None:
            del self._order[before - 1]  # type: ignore[operator]
        total = self.diamonds.get(key, 0) + diamonds
        self.diamonds[key] = total
        self._seq += 1
        entry = (-total, self._seq, key)
        self._entry[key] = entry
        at = bisect.bisect_left(self._order, entry)
        self._order.insert(at, entry)
        self._who[key] = (user.unique_id, user.nickname)
        return before, at + 1

    def top(self, n: int = 10) -> list[dict]:
        """``[{rank, unique_id, nickname, diamonds}, ...]``, best first."""
        return [{"rank": i, "unique_id": self._who[k][0], "nickname": self._who[k][1], "diamonds": -d}
                for i, (d, _, k) in enumerate(self._order[:n], 1)]
