"""The chat output budget: at most N chat lines a minute, big gifts first, no repeats.

Lines beyond the budget wait in a queue ordered by what they are worth (the gift's diamonds,
then the rule's priority). A line that waited longer than ``max_wait`` is stale and dropped, and
when more lines wait than ``per_minute`` the least valuable is dropped; both are counted. When a
rule has a ``merge`` text, its lines that wait together go out as one line ("Thank you ana, bob and
3 others!"), except the most valuable one of the burst, which still goes out alone, first. Identical
lines within the dedup window are dropped and counted. Time is the engine's: the queue drains on
``release(now)``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from bot.actions.model import Action
from bot.engine.templates import Text

CHAT_KINDS = frozenset({"say", "cta", "shoutout"})


def join_names(names: list[str], most: int = 3) -> str:
    """``["a", "b", "c", "d", "e"]`` → ``"a, b, c and 2 others"``."""
    if len(names) <= 1:
        return "".join(names)
    if len(names) <= most:
        return ", ".join(names[:-1]) + " and " + names[-1]
    rest = len(names) - most
    return ", ".join(names[:most]) + f" and {rest} other" + ("s" if rest > 1 else "")


@dataclass(order=True)
class _Waiting:
    sort_key: tuple[float, int, int]
    action: Action = field(compare=False)
    nickname: str = field(compare=False, default="")
    merge: Text | None = field(compare=False, default=None)


class ChatBudget:
    def __init__(self, per_minute: int = 0, burst: int = 3, dedup_ms: int = 0, max_wait_ms: int = 60_000) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self.dedup_ms = dedup_ms
        self.max_wait_ms = max_wait_ms
        self._tokens = float(self.burst)
        self._refilled: int | None = None
        self._queue: list[_Waiting] = []
        self._seq = 0
        self._sent_at: dict[str, int] = {}
        # merge rules whose burst has had its line sent alone: rule id -> that line's sort key[0]
        # (minus its worth). Forgotten when none of the rule's lines wait any more.
        self._lead: dict[str, float] = {}
        self.counters: Counter[str] = Counter()  # queued, merged, deduplicated, dropped_full/_stale, held_at_close
        # The trace's notes (bot.engine.trace), when someone keeps them: (action, outcome, detail, now).
        self.notes: Any = None

    @property
    def limited(self) -> bool:
        return self.per_minute > 0

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _refill(self, now: int) -> None:
        if self._refilled is not None and now > self._refilled:
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.per_minute / 60_000)
        if self._refilled is None or now > self._refilled:
            self._refilled = now

    def offer(self, action: Action, now: int, worth: float = 0, priority: int = 0, nickname: str = "",
              merge: Text | None = None) -> list[Action]:
        """Pass a chat line through the budget; return what may be sent now."""
        if not self.limited:
            return self._deduplicated([action], now)
        self._refill(now)
        if not self._queue and self._tokens >= 1:
            sent = self._deduplicated([action], now)
            self._tokens -= len(sent)
            if sent and self.notes is not None:
                self.notes.append((action, "sent", None, now))
            return sent
        self._seq += 1
        self.counters["queued"] += 1
        heapq.heappush(self._queue, _Waiting((-worth, -priority, self._seq), action, nickname, merge))
        if self.notes is not None:
            self.notes.append((action, "queued", len(self._queue), now))
        if len(self._queue) > max(10, self.per_minute):
            dropped = max(self._queue)
            self._queue.remove(dropped)  # the least valuable, newest on a tie
            heapq.heapify(self._queue)
            self.counters["dropped_full"] += 1
            if self.notes is not None:
                self.notes.append((dropped.action, "dropped_full", None, now))
        return []

    def next_due(self) -> int | None:
        if not self._queue:
            return None
        missing = 1 - self._tokens
        if missing <= 0:
            return self._refilled
        return self._refilled + int(-(-missing * 60_000 // self.per_minute))  # ceil

    def release(self, now: int) -> list[Action]:
        """Send what the budget allows by ``now``, best first, merged where a rule asks for it."""
        self._refill(now)
        stale = [w for w in self._queue if now - w.action.ts > self.max_wait_ms]
        if stale:
            self._queue = [w for w in self._queue if now - w.action.ts <= self.max_wait_ms]
            heapq.heapify(self._queue)
            self.counters["dropped_stale"] += len(stale)
            if self.notes is not None:
                self.notes.extend((w.action, "dropped_stale", now - w.action.ts, now) for w in stale)
        out: list[Action] = []
        while self._queue and self._tokens >= 1:
            first = heapq.heappop(self._queue)
            batch = [first]
            if first.merge is not None:
                batch += self._merge_with(first)
            action = self._merged(batch) if len(batch) > 1 else first.action
            sent = self._deduplicated([replace(action, ts=now)], now, first.action)
            self._tokens -= len(sent)
            out += sent
            if self.notes is not None:
                if len(batch) > 1:
                    self.notes.extend((w.action, "merged", action.text, now) for w in batch)
                elif sent:
                    self.notes.append((first.action, "sent_late", now - first.action.ts, now))
        if self._lead:
            waiting = {w.action.rule for w in self._queue}
            self._lead = {rule: key for rule, key in self._lead.items() if rule in waiting}
        return out

    def take_waiting(self) -> list[Action]:
        """Every line still waiting, best first, taken off the queue (counted ``held_at_close``): at a
        live stop or stream end they may not all go out at once, so the caller keeps them apart."""
        out = [w.action for w in sorted(self._queue)]
        self._queue = []
        self._lead = {}
        self.counters["held_at_close"] += len(out)
        return out

    def _merge_with(self, first: _Waiting) -> list[_Waiting]:
        """The lines of ``first``'s rule to merge with it (taken off the queue): the most valuable
        line of a burst goes out alone (a tie has none), and the rest as one line after it."""
        rule = first.action.rule
        same = [w for w in self._queue if w.action.rule == rule]
        if not same:
            self._lead.pop(rule, None)  # the burst is over
            return []
        lead = self._lead.get(rule)
        if lead is None and first.sort_key[0] < min(w.sort_key[0] for w in same):
            self._lead[rule] = first.sort_key[0]  # the biggest of the burst: alone
            return []
        if lead is not None and first.sort_key[0] < lead:
            self._lead[rule] = first.sort_key[0]  # bigger than the burst's biggest so far: alone too
            return []
        self._queue = [w for w in self._queue if w.action.rule != rule]
        heapq.heapify(self._queue)
        return sorted(same)

    def _merged(self, batch: list[_Waiting]) -> Action:
        self.counters["merged"] += len(batch)
        names = list(dict.fromkeys(w.nickname for w in batch if w.nickname))
        first = batch[0]
        text = first.merge.render({"names": join_names(names), "count": len(batch)})  # type: ignore[union-attr]
        users = [w.action.user for w in batch if w.action.user]
        return replace(first.action, text=text, user=None, event_id=None,
                       data={**first.action.data, "merged": len(batch), "users": users})

    def _deduplicated(self, actions: list[Action], now: int, made: Action | None = None) -> list[Action]:
        if not self.dedup_ms:
            return actions
        out = []
        for a in actions:
            last = self._sent_at.get(a.text)
            if last is not None and now - last < self.dedup_ms:
                self.counters["deduplicated"] += 1
                if self.notes is not None:
                    self.notes.append((made or a, "repeated", now - last, now))
                continue
            self._sent_at[a.text] = now
            out.append(a)
        if len(self._sent_at) > 10_000:
            self._sent_at = {t: ts for t, ts in self._sent_at.items() if now - ts < self.dedup_ms}
        return out
