"""Pacing for sinks that show one thing at a time, and the bounded per-sink queue that applies it.

A sink declares ``pacing = Pacing(min_gap=4.0, kinds={"alert"})`` (or the live dispatcher is given
one for it by name). Paced actions then go out one at a time, at least ``min_gap`` seconds apart;
when a burst has queued up, the biggest goes first (``rank``, by default the gift's diamonds found
in ``action.data``), ties in arrival order. Kinds the pacing does not name are not held back: they
go out at once, in arrival order, in batches.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import structlog

from bot.actions.model import Action

log = structlog.get_logger("bot.dispatcher")

# Where the worth of an action is looked for, first found wins. The engine does not add these by
# itself: a rule puts them in its action's data, e.g. ``data: { diamonds: "{{ event.total_diamonds }}" }``
# (a lone ``{{ expression }}`` keeps its number; numeric text counts too).
RANK_KEYS: tuple[str, ...] = ("total_diamonds", "diamonds", "worth", "value")


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.replace(",", "").replace("_", "").strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def gift_worth(action: Action) -> float:
    """The action's worth for pacing: the first numeric ``RANK_KEYS`` value in its data, else 0."""
    data = action.data
    if data:
        for key in RANK_KEYS:
            if key in data and (number := _number(data[key])) is not None:
                return number
    return 0.0


@dataclass(frozen=True, slots=True)
class Pacing:
    """One at a time, ``min_gap`` seconds apart (between successful sends), best ``rank`` first.

    ``kinds`` None paces every kind; otherwise only those kinds (others pass straight through).
    """

    min_gap: float = 3.0
    kinds: frozenset[str] | None = None
    rank: Callable[[Action], float] = gift_worth

    def __post_init__(self) -> None:
        if not (self.min_gap >= 0 and math.isfinite(self.min_gap)):
            raise ValueError("pacing min_gap must be a finite number of seconds >= 0")
        if self.kinds is not None and not isinstance(self.kinds, frozenset):
            kinds: Iterable[str] = [self.kinds] if isinstance(self.kinds, str) else self.kinds
            object.__setattr__(self, "kinds", frozenset(kinds))

    def paces(self, action: Action) -> bool:
        return self.kinds is None or action.kind in self.kinds


class SinkQueue:
    """A bounded queue for one sink: a FIFO lane, and with pacing a ranked lane.

    ``put`` never blocks: when the queue is full it returns the action that does not fit (the
    new one, or for a paced action a lower-ranked queued one it pushes out) for the caller to
    dead-letter.
    """

    __slots__ = ("max_size", "pacing", "fifo", "ranked", "_seq")

    def __init__(self, max_size: int, pacing: Pacing | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.pacing = pacing
        self.fifo: deque[Action] = deque()
        self.ranked: list[tuple[float, int, Action]] = []  # a heap of (-rank, arrival, action)
        self._seq = 0

    def __len__(self) -> int:
        return len(self.fifo) + len(self.ranked)

    def _rank(self, action: Action) -> float:
        assert self.pacing is not None
        try:
            number = _number(self.pacing.rank(action))
        except Exception as exc:  # a bad rank function must not lose the action
            log.warning("pacing_rank_failed", kind=action.kind, rule=action.rule, error=f"{type(exc).__name__}: {exc}")
            return 0.0
        return 0.0 if number is None else number

    def put(self, action: Action) -> Action | None:
        """Queue ``action``; return whichever action overflowed, or None."""
        if self.pacing is not None and self.pacing.paces(action):
            self._seq += 1
            entry = (-self._rank(action), self._seq, action)
            if len(self) < self.max_size:
                heapq.heappush(self.ranked, entry)
                return None
            if self.ranked:
                worst = max(self.ranked)  # lowest rank, latest arrival; only on overflow
                if entry < worst:
                    i = self.ranked.index(worst)
                    self.ranked[i] = entry
                    heapq.heapify(self.ranked)
                    return worst[2]
            return action
        if len(self) >= self.max_size:
            return action
        self.fifo.append(action)
        return None

    def take_fifo(self, limit: int) -> list[Action]:
        n = min(limit, len(self.fifo))
        popleft = self.fifo.popleft
        return [popleft() for _ in range(n)]

    def pop_ranked(self) -> Action:
        return heapq.heappop(self.ranked)[2]

    def drain(self) -> list[Action]:
        """Everything still queued (FIFO lane, then the ranked lane best first); the queue is emptied."""
        out = list(self.fifo)
        self.fifo.clear()
        out += [entry[2] for entry in sorted(self.ranked)]
        self.ranked.clear()
        return out
