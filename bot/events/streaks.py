"""Gift streaks folded in one place, so every rule sees one ``gift`` per streak.

A streakable gift (type 1) arrives as many frames while the viewer taps; a streak is one viewer,
one gift and, when the source gives it, one ``group_id``. Each frame still in progress becomes a
``gift_progress`` event; the frame with ``streak_end`` becomes the one
``gift`` event, with the final count. A streak whose end never arrives is flushed as a ``gift``
(with ``flushed: true``) after ``silence_ms`` of clock time. An end frame that arrives late,
after its streak was flushed, is absorbed and counted, never thanked twice.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

from bot.events.model import GIFT, GIFT_PROGRESS, Event

LATE_FRAME_WINDOW_MS = 60_000


@dataclass(slots=True)
class _Streak:
    last: Event
    last_seen: int


class StreakFolder:
    def __init__(self, silence_ms: int = 5000) -> None:
        self.silence_ms = silence_ms
        self._open: dict[tuple[str, object, object], _Streak] = {}
        self._deadlines: list[tuple[int, int, tuple[str, object, object]]] = []  # (due, seq, key), lazily pruned
        self._seq = 0
        self._flushed: dict[tuple[str, object, object], tuple[int, int]] = {}  # key -> (count, flushed at)
        self.flushed = 0
        self.late_frames = 0

    @staticmethod
    def _key(ev: Event) -> tuple[str, object, object]:
        return (ev.user.key if ev.user else "", ev.data.get("gift_id"), ev.data.get("group_id", ""))

    def fold(self, ev: Event, now: int) -> list[Event]:
        """Return the events a gift frame stands for (other events pass through)."""
        if ev.type != GIFT or ev.data.get("gift_type") != 1:
            return [ev]
        key = self._key(ev)
        count = ev.data.get("count", 1)
        out: list[Event] = []
        if key in self._flushed:
            flushed_count, at = self._flushed[key]
            same_group = bool(key[2])  # with a group id, a frame of a flushed streak is surely late
            if now - at <= LATE_FRAME_WINDOW_MS and (same_group or count >= flushed_count):
                self.late_frames += 1
                return out
            del self._flushed[key]
        streak = self._open.get(key)
        if streak is not None and count < streak.last.data.get("count", 1):
            out.append(self._flush(key, now))  # a new streak began: the old one lost its end
        if ev.data.get("streak_end"):
            self._open.pop(key, None)
            out.append(ev)
            return out
        self._open[key] = _Streak(ev, now)
        self._seq += 1
        heapq.heappush(self._deadlines, (now + self.silence_ms, self._seq, key))
        out.append(replace(ev, type=GIFT_PROGRESS))
        return out

    def next_deadline(self) -> int | None:
        while self._deadlines:
            due, _, key = self._deadlines[0]
            streak = self._open.get(key)
            if streak is not None and streak.last_seen + self.silence_ms == due:
                return due
            heapq.heappop(self._deadlines)  # stale: the streak moved on or ended
        return None

    def flush_due(self, now: int) -> list[Event]:
        """Flush streaks silent for ``silence_ms`` by ``now``, each stamped with its own deadline."""
        out = []
        while (due := self.next_deadline()) is not None and due <= now:
            _, _, key = heapq.heappop(self._deadlines)
            out.append(self._flush(key, due))
        return out

    def flush_all(self) -> list[Event]:
        """At the end of a session: flush every open streak at its own deadline."""
        out = []
        while (due := self.next_deadline()) is not None:
            out.extend(self.flush_due(due))
        return out

    def _flush(self, key: tuple[str, object, object], ts: int) -> Event:
        streak = self._open.pop(key)
        self.flushed += 1
        count = streak.last.data.get("count", 1)
        if len(self._flushed) > 10_000:
            self._flushed = {k: v for k, v in self._flushed.items() if ts - v[1] <= LATE_FRAME_WINDOW_MS}
        self._flushed[key] = (count, ts)
        data = {**streak.last.data, "streak_end": False, "flushed": True}
        return replace(streak.last, type=GIFT, ts=ts, data=data)
