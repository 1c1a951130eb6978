"""Drop events whose ``msg_id`` was already seen (reconnects replay a backlog)."""

from __future__ import annotations

from collections import deque


class Deduper:
    """Remembers the last ``window`` message ids; memory stays bounded on a 10-hour stream."""

    def __init__(self, window: int = 500_000) -> None:
        self.window = window
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self.dropped = 0

    def is_duplicate(self, msg_id: str) -> bool:
        """True if ``msg_id`` was seen before; otherwise remember it. Empty ids are never duplicates."""
        if not msg_id:
            return False
        if msg_id in self._seen:
            self.dropped += 1
            return True
        self._seen.add(msg_id)
        self._order.append(msg_id)
        if len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
        return False
