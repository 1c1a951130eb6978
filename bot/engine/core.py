"""The engine: a plain, synchronous core that turns events and time into actions.

It does no I/O and reads no clock: callers pass ``now`` (ms). Live, replay, tests and
benchmarks drive the same object::

    actions = engine.feed(event, now)     # fires anything due by ``now`` first
    actions = engine.advance(now)         # timers and streak flushes due by ``now``
    engine.next_deadline()                # when to call advance() next, or None
    actions = engine.close()              # end of session: flush open streaks
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

import structlog

from bot.actions.model import Action
from bot.engine.rules import Rule, RuleSet
from bot.engine.state import SessionState
from bot.engine.templates import Text
from bot.events.dedup import Deduper
from bot.events.model import CHAT, EVENT_TYPES, GIFT, Event
from bot.events.streaks import StreakFolder

log = structlog.get_logger("bot.engine")
LOGGED_ERRORS_PER_RULE = 5


def parse_command(text: str) -> tuple[str | None, list[str]]:
    """``"!Help me now"`` → ``("help", ["me", "now"])``; not a command → ``(None, [])``."""
    if len(text) < 2 or text[0] != "!" or text[1].isspace():
        return None, []
    words = text[1:].split()
    return words[0].lower(), words[1:]


class Engine:
    def __init__(self, rules: RuleSet, *, streak_silence_ms: int = 5000, dedup_window: int = 500_000) -> None:
        self.rules = rules
        self.dedup = Deduper(dedup_window)
        self.streaks = StreakFolder(streak_silence_ms)
        self.state = SessionState()
        self.counters: Counter[str] = Counter()  # processed events by type, rule errors, ...
        self.fired: Counter[str] = Counter()  # actions by rule id
        self._timers: list[tuple[int, int, str]] = []  # (due, order, rule id)
        self._started: int | None = None
        self._last_fire: dict[str, int] = {}
        self._user_fire: dict[str, dict[str, int]] = {}
        self._once: dict[str, set[str]] = {}
        self._since: dict[str, dict[str, int]] = {}
        self._error_logs: Counter[str] = Counter()

    # -- driving ---------------------------------------------------------------------------

    def feed(self, event: Event, now: int) -> list[Action]:
        """Process one event from a source at time ``now`` (after anything already due)."""
        out = self.advance(now)
        if self.dedup.is_duplicate(event.msg_id):
            self.counters["duplicates"] += 1
            return out
        for ev in self.streaks.fold(event, now):
            self._process(ev, now, out)
        return out

    def advance(self, now: int) -> list[Action]:
        """Fire every streak flush and timer due by ``now``, in time order."""
        if self._started is None:
            self._start(now)
        out: list[Action] = []
        while True:
            streak_due = self.streaks.next_deadline()
            timer_due = self._timers[0][0] if self._timers else None
            if streak_due is not None and streak_due <= now and (timer_due is None or streak_due <= timer_due):
                for ev in self.streaks.flush_due(streak_due):
                    self._process(ev, streak_due, out)
            elif timer_due is not None and timer_due <= now:
                due, order, rule_id = heapq.heappop(self._timers)
                rule = self.rules.get(rule_id)
                if rule is not None and rule.is_timer:
                    heapq.heappush(self._timers, (due + rule.every_ms, order, rule_id))
                    self._fire_timer(rule, due, out)
            else:
                return out

    def next_deadline(self) -> int | None:
        """The next time something is due without new events, or None."""
        candidates = [d for d in (self.streaks.next_deadline(), self._timers[0][0] if self._timers else None)
                      if d is not None]
        return min(candidates) if candidates else None

    def close(self) -> list[Action]:
        """End of session: flush open streaks (each at its own deadline). Timers stop here."""
        out: list[Action] = []
        for ev in self.streaks.flush_all():
            self._process(ev, ev.ts, out)
        return out

    def replace_rules(self, rules: RuleSet, now: int) -> None:
        """Swap in new rules; session state, cooldowns and open streaks are kept."""
        self.rules = rules
        old = {rule_id: due for due, _, rule_id in self._timers}
        self._timers = [(old.get(r.id, now + r.every_ms), r.order, r.id) for r in rules.timers]
        heapq.heapify(self._timers)

    # -- internals -------------------------------------------------------------------------

    def _start(self, now: int) -> None:
        self._started = now
        self._timers = [(now + r.every_ms, r.order, r.id) for r in self.rules.timers]
        heapq.heapify(self._timers)

    def _process(self, ev: Event, now: int, out: list[Action]) -> None:
        self.counters[ev.type] += 1
        self.state.record(ev, now)
        rules = self.rules.by_type.get(ev.type)
        if not rules:
            return
        user_key = ev.user.key if ev.user is not None else ""
        command: str | None = None
        args: list[str] = []
        if ev.type == CHAT:
            command, args = parse_command(str(ev.data.get("text", "")))
        base: dict[str, Any] | None = None
        for rule in rules:
            if rule.commands and command not in rule.commands:
                continue
            if rule.once_per_user and user_key in self._once.get(rule.id, ()):
                continue
            if not self._cooled_down(rule, user_key, now):
                continue
            if base is None:
                base = self._event_context(ev, args)
            context = self._rule_context(rule, base, now)
            if rule.when is not None and not self._holds(rule, context):
                continue
            self._fire(rule, context, now, ev, out)
            if rule.once_per_user:
                self._once.setdefault(rule.id, set()).add(user_key)
            if rule.user_cooldown_ms:
                self._user_fire.setdefault(rule.id, {})[user_key] = now
            if rule.stop:
                break

    def _cooled_down(self, rule: Rule, user_key: str, now: int) -> bool:
        if rule.cooldown_ms:
            last = self._last_fire.get(rule.id)
            if last is not None and now - last < rule.cooldown_ms:
                return False
        if rule.user_cooldown_ms:
            last = self._user_fire.get(rule.id, {}).get(user_key)
            if last is not None and now - last < rule.user_cooldown_ms:
                return False
        return True

    def _event_context(self, ev: Event, args: list[str]) -> dict[str, Any]:
        view = {"type": ev.type, "ts": ev.ts, "msg_id": ev.msg_id, "room_id": ev.room_id, **ev.data}
        if ev.type == GIFT or ev.type == "gift_progress":
            view["total_diamonds"] = int(ev.data.get("diamonds", 0)) * int(ev.data.get("count", 1))
        user = self.state.user_view(ev.user) if ev.user is not None else None
        return {"event": view, "user": user, "args": args}

    def _rule_context(self, rule: Rule, base: dict[str, Any], now: int) -> dict[str, Any]:
        if not rule.needs - {"event", "user", "args"}:
            return base
        context = dict(base)
        if "stats" in rule.needs:
            context["stats"] = self.state.stats_view(now)
        if "since" in rule.needs:
            context["since"] = self._since_view(rule, now)
        if "rule" in rule.needs:
            context["rule"] = {"id": rule.id, "fired": self.fired[rule.id]}
        return context

    def _since_view(self, rule: Rule, now: int) -> dict[str, int]:
        snap = self._since.get(rule.id)
        counts = self.state.counts
        if snap is None:
            view = {t: counts.get(t, 0) for t in EVENT_TYPES}
            view["ms"] = now - (self._started or now)
        else:
            view = {t: counts.get(t, 0) - snap.get(t, 0) for t in EVENT_TYPES}
            view["ms"] = now - snap["@"]
        return view

    def _holds(self, rule: Rule, context: dict[str, Any]) -> bool:
        try:
            return rule.when(context)  # type: ignore[misc]
        except Exception as exc:  # a bad expression must never stop the stream
            self._rule_error(rule, "when", exc)
            return False

    def _fire_timer(self, rule: Rule, due: int, out: list[Action]) -> None:
        context = self._rule_context(rule, {}, due)
        if rule.when is not None and not self._holds(rule, context):
            return
        if not self._cooled_down(rule, "", due):
            return
        self._fire(rule, context, due, None, out)

    def _fire(self, rule: Rule, context: dict[str, Any], now: int, ev: Event | None, out: list[Action]) -> None:
        made = []
        try:
            for spec in rule.actions:
                made.append(Action(
                    ts=now,
                    kind=spec.kind,
                    text=spec.text.render(context),
                    rule=rule.id,
                    user=ev.user.unique_id if ev is not None and ev.user is not None else None,
                    event_id=(ev.msg_id or None) if ev is not None else None,
                    data=_render_data(spec.data, context) if spec.data else {},
                ))
        except Exception as exc:  # a text that fails to render drops this firing, not the stream
            self._rule_error(rule, "do", exc)
            return
        out.extend(made)
        self.fired[rule.id] += len(made)
        self._last_fire[rule.id] = now
        if "since" in rule.needs:
            snap = dict(self.state.counts)
            snap["@"] = now
            self._since[rule.id] = snap

    def _rule_error(self, rule: Rule, where: str, exc: Exception) -> None:
        self.counters["rule_errors"] += 1
        self._error_logs[rule.id] += 1
        if self._error_logs[rule.id] <= LOGGED_ERRORS_PER_RULE:
            log.warning("rule_error", rule=rule.id, at=str(rule.pos), part=where,
                        error=f"{type(exc).__name__}: {exc}")


def _render_data(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, Text):
        return value.render(context)
    if isinstance(value, dict):
        return {k: _render_data(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_data(v, context) for v in value]
    return value
