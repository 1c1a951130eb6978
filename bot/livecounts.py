"""What ``livebot run`` counted over the whole process, across stream ends.

At each ``live_end`` the runner starts a fresh engine (the next stream's session state), and with
it fresh counters: the engine's (duplicates, rule errors, busy polls) and its chat budget's
(lines merged, dropped because the queue was full or the line went stale, held at a close).
``ProcessCounts`` keeps the finished engines' figures, so ``/metrics``, ``/status``, the log and
the final ``stopped`` line show process totals that never go back to 0, as Prometheus counters
must. It also logs the budget's drops as they happen (at most once per ``every_s``, with what
changed), since a chat line the budget merged or dropped is otherwise invisible live.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

import structlog

log = structlog.get_logger("bot.live")

BUDGET_OUTCOMES = ("queued", "merged", "deduplicated", "dropped_full", "dropped_stale", "held_at_close")


class ProcessCounts:
    def __init__(self, every_s: float = 10.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine: Counter[str] = Counter()  # finished engines' counters
        self._budget: Counter[str] = Counter()  # finished engines' chat budget counters
        self._policy: Counter[tuple[str, str]] = Counter()  # finished engines' policy guard counts
        self._logged: Counter[str] = Counter()  # budget totals as last logged
        self._logged_at: float | None = None
        self.every_s = every_s
        self.monotonic = monotonic

    def ended(self, engine: Any) -> None:
        """``engine`` is being replaced (a stream ended): keep its figures."""
        self._engine.update(engine.counters)
        self._budget.update(engine.budget.counters)
        self._policy.update(policy_counts(engine))

    def engine(self, engine: Any) -> Counter[str]:
        """The engine's counters over the process (the running engine's included)."""
        return self._engine + Counter(engine.counters)

    def budget(self, engine: Any) -> Counter[str]:
        """The chat budget's counters over the process, every outcome present (0 if none)."""
        total = self._budget + Counter(engine.budget.counters)
        out = Counter({k: total.get(k, 0) for k in BUDGET_OUTCOMES})
        out.update({k: v for k, v in total.items() if k not in BUDGET_OUTCOMES})
        return out

    def policy(self, engine: Any) -> Counter[tuple[str, str]]:
        """What the policy guard did over the process: (outcome, check or reason) → count."""
        return self._policy + policy_counts(engine)

    def log_budget(self, engine: Any, force: bool = False) -> None:
        """Log what the budget merged or dropped since the last such line (throttled)."""
        now = self.monotonic()
        if not force and self._logged_at is not None and now - self._logged_at < self.every_s:
            return
        total = self.budget(engine)
        new = {k: total[k] - self._logged[k] for k in ("merged", "dropped_full", "dropped_stale", "held_at_close")
               if total[k] != self._logged[k]}
        if not new:
            return
        self._logged = Counter(total)
        self._logged_at = now
        log.warning("chat_budget", **{f"new_{k}": v for k, v in new.items()},
                    merged=total["merged"], dropped_full=total["dropped_full"],
                    dropped_stale=total["dropped_stale"], held_at_close=total["held_at_close"])

    def summary(self, engine: Any) -> dict[str, int]:
        """For the final ``stopped`` line."""
        e, b = self.engine(engine), self.budget(engine)
        return {"duplicates": e["duplicates"], "rule_errors": e["rule_errors"], "chat_merged": b["merged"],
                "chat_dropped_full": b["dropped_full"], "chat_dropped_stale": b["dropped_stale"],
                "chat_held_at_close": b["held_at_close"]}


def policy_counts(engine: Any) -> Counter[tuple[str, str]]:
    """One engine's policy guard counts: ("masked" | "suppressed" | "moderation", check or reason)."""
    policy = getattr(engine, "policy", None)
    if policy is None:
        return Counter()
    return Counter({(outcome, name): n for outcome, by in policy.stats().items() for name, n in by.items()})
