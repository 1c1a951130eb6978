"""The session's top gifters, by diamonds."""

from __future__ import annotations

from bot.events.model import User


class Leaderboard:
    def __init__(self) -> None:
        self.diamonds: dict[str, int] = {}
        self._reached: dict[str, int] = {}  # earlier to a total ranks higher on a tie
        self._who: dict[str, tuple[str, str]] = {}
        self._seq = 0
        self._top_cache: list[dict] | None = None

    def rank(self, key: str) -> int | None:
        """1 for the top gifter; None for someone who has not gifted."""
        mine = self.diamonds.get(key)
        if mine is None:
            return None
        at = self._reached[key]
        return 1 + sum(1 for k, d in self.diamonds.items() if d > mine or (d == mine and self._reached[k] < at))

    def add(self, user: User, diamonds: int) -> tuple[int | None, int]:
        """Credit a gift; return the viewer's rank before and after."""
        key = user.key
        before = self.rank(key)
        self.diamonds[key] = self.diamonds.get(key, 0) + diamonds
        self._seq += 1
        self._reached[key] = self._seq
        self._who[key] = (user.unique_id, user.nickname)
        self._top_cache = None
        return before, self.rank(key)  # type: ignore[return-value]

    def top(self, n: int = 10) -> list[dict]:
        """``[{rank, unique_id, nickname, diamonds}, ...]``, best first."""
        if self._top_cache is None or len(self._top_cache) < min(n, len(self.diamonds)):
            keys = sorted(self.diamonds, key=lambda k: (-self.diamonds[k], self._reached[k]))[:max(n, 10)]
            self._top_cache = [{"rank": i, "unique_id": self._who[k][0], "nickname": self._who[k][1],
                                "diamonds": self.diamonds[k]} for i, k in enumerate(keys, 1)]
        return self._top_cache[:n]
