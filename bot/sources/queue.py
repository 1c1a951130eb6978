"""The bounded queue between live sources and the engine, with a written load-shedding policy.

A source's receive loop never waits on rules or sinks: it ``put``s and goes on. When the queue
is full, the least important events are shed first:

1. joins and likes (and in-progress gift streak frames),
2. then chat, shares, viewer counts and unknown events;
3. gifts, follows, subscribes, live end and connection changes are **never** shed: when full they
   push out a less important event, and when there is none the queue holds them beyond its
   capacity rather than lose one.

Within a class the oldest queued event goes first; an incoming event no more important than
anything queued is itself shed. Every shed event is counted by type (likes also by hearts).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from bot.clock import Clock
from bot.events.model import Event

SHED_FIRST = frozenset({"join", "like", "gift_progress"})
SHED_NEXT = frozenset({"chat", "share", "viewers", "unknown"})
# Everything else (gift, follow, subscribe, live_end, connect, disconnect, ...) is kept.


def shed_class(event_type: str) -> int:
    """0 = shed first, 1 = shed next, 2 = never shed."""
    if event_type in SHED_FIRST:
        return 0
    if event_type in SHED_NEXT:
        return 1
    return 2


class EventQueue:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._classes: tuple[deque[tuple[int, Event]], ...] = (deque(), deque(), deque())
        self._seq = 0
        self._size = 0
        self._ready = asyncio.Event()
        self.shed: Counter[str] = Counter()  # by event type, plus "like_hearts"
        self.high_water = 0

    def __len__(self) -> int:
        return self._size

    def put(self, event: Event) -> None:
        """Enqueue without waiting; when full, shed by the policy above."""
        cls = shed_class(event.type)
        if self._size >= self.capacity:
            lowest = next((c for c in (0, 1) if self._classes[c]), None)
            if lowest is not None and lowest < cls:  # make room: the oldest of the least important
                _, dropped = self._classes[lowest].popleft()
                self._size -= 1
                self._count_shed(dropped)
            elif cls < 2:  # nothing less important is queued: the newcomer itself goes
                self._count_shed(event)
                return
            # else: a precious event with only precious ones queued is kept beyond capacity
        self._seq += 1
        self._classes[cls].append((self._seq, event))
        self._size += 1
        if self._size > self.high_water:
            self.high_water = self._size
        self._ready.set()

    def _count_shed(self, event: Event) -> None:
        self.shed[event.type] += 1
        if event.type == "like":
            self.shed["like_hearts"] += int(event.data.get("count", 0) or 0)

    def get_nowait(self, limit: int = 256) -> list[Event]:
        """Up to ``limit`` events, in arrival order."""
        out: list[Event] = []
        classes = self._classes
        while self._size and len(out) < limit:
            best = None
            for q in classes:
                if q and (best is None or q[0][0] < best[0][0]):
                    best = q
            out.append(best.popleft()[1])  # type: ignore[union-attr]
            self._size -= 1
        if not self._size:
            self._ready.clear()
        return out

    async def get(self, timeout: float | None = None, limit: int = 256) -> list[Event]:
        """Wait up to ``timeout`` seconds for events; return what is there (maybe nothing)."""
        if not self._size:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        return self.get_nowait(limit)


def stamp(queue: EventQueue, clock: Clock, ev: Event) -> None:
    """Queue an event with its receive time: what every live source calls."""
    if ev.received is None:
        ev.received = clock.now()
    queue.put(ev)
