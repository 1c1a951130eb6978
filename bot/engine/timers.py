"""Timer rules: ``every`` (with deterministic jitter) and ``after`` a period of chat silence."""

from __future__ import annotations

import hashlib
import heapq

from bot.engine.rules import Rule


def jitter_for(rule_id: str, n: int, jitter_ms: int) -> int:
    """A delay in ``[0, jitter_ms]`` that is random-looking but the same on every replay."""
    if jitter_ms <= 0:
        return 0
    digest = hashlib.blake2b(f"{rule_id}:{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (jitter_ms + 1)


class Timers:
    def __init__(self, rules: list[Rule], start: int) -> None:
        self.start = start
        self._heap: list[tuple[int, int, str, int]] = []  # (due, order, rule id, n)
        self._silence: dict[str, int | None] = {}  # after-rules: due time, None once fired
        self._rules: dict[str, Rule] = {}
        self.replace(rules, start, keep={})

    def replace(self, rules: list[Rule], now: int, keep: dict[str, int] | None = None) -> None:
        """Use these timer rules; an ``every`` rule that already ran keeps its schedule."""
        progress = keep if keep is not None else {rule_id: n for _, _, rule_id, n in self._heap}
        self._rules = {r.id: r for r in rules}
        self._heap = []
        for r in rules:
            if r.every_ms:
                n = progress.get(r.id, 1)
                base = self.start if r.id in progress else now
                first = n if r.id in progress else 1
                due = base + first * r.every_ms + jitter_for(r.id, first, r.jitter_ms)
                heapq.heappush(self._heap, (due, r.order, r.id, first))
        old = self._silence
        self._silence = {r.id: old.get(r.id, now + r.after_ms) for r in rules if r.after_ms}

    def next_due(self) -> int | None:
        due = self._heap[0][0] if self._heap else None
        if self._silence:
            for d in self._silence.values():
                if d is not None and (due is None or d < due):
                    due = d
        return due

    def pop(self, now: int) -> tuple[int, Rule] | None:
        """The earliest timer due by ``now`` (rescheduled), or None."""
        best: tuple[int, str] | None = None
        for rule_id, d in self._silence.items():
            if d is not None and d <= now and (best is None or d < best[0]):
                best = (d, rule_id)
        if self._heap and self._heap[0][0] <= now and (best is None or self._heap[0][0] <= best[0]):
            due, order, rule_id, n = heapq.heappop(self._heap)
            rule = self._rules[rule_id]
            nxt = n + 1
            start = due - n * rule.every_ms - jitter_for(rule_id, n, rule.jitter_ms)
            heapq.heappush(self._heap, (start + nxt * rule.every_ms + jitter_for(rule_id, nxt, rule.jitter_ms),
                                        order, rule_id, nxt))
            return due, rule
        if best is not None:
            self._silence[best[1]] = None
            return best[0], self._rules[best[1]]
        return None

    def skip_missed(self, now: int) -> int:
        """After a jump in time: an ``every`` timer that missed several periods fires once, for the
        latest period begun by ``now``, not once per missed period. Returns the periods skipped."""
        keep: dict[str, int] = {}
        skipped = 0
        for due, _order, rule_id, n in self._heap:
            latest = (now - self.start) // self._rules[rule_id].every_ms
            if due <= now and latest > n:
                skipped += latest - n
                n = latest
            keep[rule_id] = n
        if skipped:
            self.replace(list(self._rules.values()), now, keep=keep)
        return skipped

    def on_chat(self, now: int) -> None:
        """Chat breaks the silence: every ``after`` rule waits for a fresh quiet period."""
        for rule_id in self._silence:
            self._silence[rule_id] = now + self._rules[rule_id].after_ms
