"""Drop events whose ``msg_id`` was already seen (reconnects replay a backlog)."""

from __future__ import annotations

from collections import deque


class Deduper:
    """Remembers at least the last ``window`` message ids (two generations of ``window // 2``),
    so memory stays bounded on a 10-hour stream."""

    def __init__(self, window: int = 500_000, keep_recent: int = 20_000) -> None:
        self.window = window
        self._recent: deque[str] = deque(maxlen=keep_recent)  # in order, for a state snapshot
        self._half = max(1, window // 2)
        self._new: set[str] = set()
        self._old: set[str] = set()
        self.dropped = 0

    def is_duplicate(self, msg_id: str) -> bool:
        """True if ``msg_id`` was seen before; otherwise remember it. Empty ids are never duplicates."""
        if not msg_id:
            return False
        if msg_id in self._new or msg_id in self._old:
            self.dropped += 1
            return True
        self._new.add(msg_id)
        self._recent.append(msg_id)
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()
        return False

    def recent(self, n: int) -> list[str]:
        """The last ``n`` (at most ``keep_recent``) new message ids, oldest first."""
        ids = list(self._recent)
        return ids[-n:] if n else []
