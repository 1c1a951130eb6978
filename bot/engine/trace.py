"""Why a rule fired, or the first reason it did not: a bounded, cheap trace of the engine.

The engine records, per event it processes, one small tuple into a ring buffer::

    (kind, now, event, rules, entries, paused)

``event`` is what the trace shows of it, ``(type, ts, msg_id, user, data)`` (``seen``), never the
``Event``: that would keep its raw payload alive (most of an event's memory), and recent events
kept alive were most of what the trace cost. An event no rule could trigger (most of a stream:
likes, joins, viewer counts) is recorded as that 5-tuple alone. ``full(record)`` reads any record
as the 6-tuple, with an ``Event`` rebuilt from what was kept (without ``raw``).

``rules`` is the list of rules the event's type could trigger (in the order the engine tries
them), ``entries`` one tuple per rule the engine looked at: ``(rule, code, detail)``, where
``code`` is ``FIRED`` (``detail``: the actions the firing made) or the first reason the rule did
not fire. A rule after one that fired with ``stop: true`` has no entry of its own: it was stopped.
Nothing is formatted while recording: the text is made only when someone reads it (the control
page, ``livebot replay --why``, a failing ``livebot test``), so a trace nobody reads costs a few
tuples per event.

The chat budget (``bot.engine.budget``) and the policy guard add *notes* about single actions:
``(action, outcome, detail, now)`` with outcome ``sent``, ``queued``, ``sent_late``, ``merged``,
``dropped_full``, ``dropped_stale``, ``repeated`` — and, for a guard that edits viewer text,
``policy`` (``Tracer.note(action, "policy", "masked ...")``). They are joined with the firing that
made the action when rendered.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from typing import Any, Callable, Iterable

# Entry codes (why a rule did or did not fire).
FIRED = "fired"
TRIGGER = "trigger"  # a chat command rule and another (or no) command
WHEN = "when"  # its condition was false (detail: ``when_values``, the names it read and their values)
TIER = "tier"  # below its lowest tier (detail: the value)
MILESTONE = "milestone"  # no milestone crossed (detail: (before, value))
COOLDOWN = "cooldown"  # detail: ms left
USER_COOLDOWN = "user_cooldown"  # detail: ms left
ONCE = "once"  # once per user, already fired for this viewer
MAX_PER_HOUR = "max_per_hour"  # detail: the cap
PERMISSION = "permission"  # detail: the permission needed
MIN_CHAT = "min_chat"  # timers: too few chat lines since it last fired
ERROR = "error"  # detail: where and what
PAUSED = "paused"  # paused from the control page
STOPPED = "stopped"  # (rendered only) an earlier rule's stop

# Reasons counted per rule (``Engine.suppressed``) and shown on /metrics.
SUPPRESSION_REASONS = (WHEN, TIER, MILESTONE, COOLDOWN, USER_COOLDOWN, ONCE, MAX_PER_HOUR, PERMISSION, MIN_CHAT,
                       ERROR, PAUSED, STOPPED)

# Record kinds.
EVENT = "event"
TIMER = "timer"
POLL = "poll"
QUIZ = "quiz"
DUPLICATE = "duplicate"

_NAME = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


def clock(ms: int, start: int | None) -> str:
    """``mm:ss.mmm`` since ``start`` (or the time of day in UTC without one)."""
    if start is None:
        ms = ms % 86_400_000
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
    ms = max(0, ms - start)
    return f"{ms // 60_000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _seconds(ms: int) -> str:
    s = ms / 1000
    return f"{s:.0f}s" if s >= 10 or s == int(s) else f"{s:.1f}s"


@functools.lru_cache(maxsize=4096)
def _paths(source: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The dotted names an expression mentions, each once, split (parsed once per expression)."""
    seen: dict[str, tuple[str, ...]] = {}
    for m in _NAME.finditer(source):
        seen.setdefault(m.group(1), tuple(m.group(1).split(".")))
    return tuple(seen.items())


def when_values(source: str, context: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What a false ``when`` read: the dotted names of ``source`` that resolve in ``context``, with
    their values at that moment (a name that does not resolve: its longest prefix that does). The
    trace keeps this, not the context: a few values, not the event's and viewer's whole views.
    A list or mapping is copied (it may change later), or left out when it is long (a whole view
    is not an answer; its fields are)."""
    out: dict[str, Any] = {}
    for path, parts in _paths(source):
        if parts[0] not in context:
            continue
        value: Any = context
        try:
            for p in parts:
                value = value[p]
        except (KeyError, TypeError, IndexError):
            value = None
            for cut in range(len(parts) - 1, 0, -1):  # the longest prefix that resolves is more use than nothing
                try:
                    v: Any = context
                    for p in parts[:cut]:
                        v = v[p]
                except (KeyError, TypeError, IndexError):
                    continue
                path, value = ".".join(parts[:cut]), v
                break
        if path in out:
            continue
        if isinstance(value, (dict, list)):
            if len(repr(value)) > 80:
                continue
            value = value.copy()
        out[path] = value
    return tuple(out.items())


def names_read(source: str, context: dict[str, Any]) -> list[tuple[str, Any]]:
    """The dotted names an expression reads that resolve in ``context``, with their values."""
    return list(when_values(source, context))


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def reason_text(rule: Any, code: str, detail: Any) -> str:
    """One entry, as words: ``cooldown 29s left``, ```when` false: event.total_diamonds=1``..."""
    if code == FIRED:
        kinds = ", ".join(a.kind for a in detail or ()) or "no actions"
        return f"fired ({kinds})"
    if code == TRIGGER:
        wanted = " / ".join("!" + c for c in sorted(rule.commands))
        return f"trigger not matched: not {wanted}" + (f" (was !{detail})" if detail else "")
    if code == WHEN:
        values = ", ".join(f"{k}={_short(v)}" for k, v in detail) if detail else ""
        return f"`when` false: {values or rule.when_source}"
    if code == TIER:
        lowest = rule.tiers[-1].min if rule.tiers else 0
        return f"tier not reached: {_short(detail)} < {lowest:g}"
    if code == MILESTONE:
        before, value = detail
        nxt = next((m for m in rule.milestones if m > value), None)
        return ("milestone not reached: " + f"{value:g}" + (f", next {nxt:g}" if nxt is not None else ", all passed")
                + ("" if before == float("-inf") else f" (was {before:g})"))
    if code == COOLDOWN:
        return f"cooldown {_seconds(detail)} left"
    if code == USER_COOLDOWN:
        return f"per-user cooldown {_seconds(detail)} left"
    if code == ONCE:
        return "once per user: already fired for this viewer"
    if code == MAX_PER_HOUR:
        return f"max_per_hour {detail} reached"
    if code == PERMISSION:
        return f"permission: {detail} only"
    if code == MIN_CHAT:
        return f"min_chat: {detail[0]} of {detail[1]} chat lines since it last fired"
    if code == ERROR:
        return f"error: {detail}"
    if code == PAUSED:
        return "paused"
    if code == STOPPED:
        return f"stopped by {detail}'s stop"
    return f"{code}: {detail}"


def seen(ev: Any) -> tuple:
    """What the trace keeps of an event (the engine builds it inline where it counts)."""
    return ev.type, ev.ts, ev.msg_id, ev.user, ev.data


def _event(kept: Any) -> Any:
    if kept is None or not isinstance(kept, tuple):
        return kept
    from bot.events.model import Event

    type_, ts, msg_id, user, data = kept
    return Event(type_, ts, "", msg_id, user, data)


def full(record: tuple) -> tuple:
    """Any record as ``(kind, now, event, rules, entries, paused)`` with an ``Event`` (rebuilt)."""
    if len(record) == 5:  # an event alone: no rule could trigger it
        return EVENT, record[1], _event(record), None, None, None
    kind, now, kept, rules, entries, paused = record
    return kind, now, _event(kept), rules, entries, paused


def outcomes(record: tuple, ruleset: Any = None) -> list[tuple[Any, str, Any]]:
    """Every rule's outcome in a record, in the order the engine tried them: ``(rule, code, detail)``.
    What was not recorded is worked out here: a command rule given another command (``TRIGGER``),
    the rules after one that fired with ``stop`` (``STOPPED``), paused rules (``PAUSED``; those
    need ``ruleset``, the engine's rules)."""
    kind, _now, ev, rules, entries, paused = record
    if paused and ruleset is not None and ev is not None:
        rules = ruleset.by_type.get(ev.type) or rules
    if not entries and not rules:
        return []
    by_rule = {id(e[0]): e for e in entries or ()}
    if kind != EVENT:
        return list(entries or ())
    command = None
    if ev is not None and ev.type == "chat":
        text = str(ev.data.get("text", ""))
        if len(text) >= 2 and text[0] == "!" and not text[1].isspace():
            command = text[1:].split()[0].lower()
    out = []
    stopper = None
    for rule in rules or ():
        entry = by_rule.get(id(rule))
        if entry is not None:
            out.append(entry)
            if entry[1] == FIRED and rule.stop:
                stopper = rule.id
        elif paused and rule.id in paused:
            out.append((rule, PAUSED, None))
        elif stopper is not None:
            out.append((rule, STOPPED, stopper))
        elif rule.commands and command not in rule.commands:
            out.append((rule, TRIGGER, command))
    return out


def describe_event(ev: Any) -> str:
    """``gift cleo`` / ``chat bob`` / ``timer``: the event's type and who (as plain text)."""
    if ev is None:
        return ""
    who = ev.user.unique_id or ev.user.nickname if ev.user is not None else ""
    return f"{ev.type} {who}".strip()


class Tracer:
    """The ring buffer of the last ``size`` records, and the budget's and policy's notes."""

    def __init__(self, size: int = 100) -> None:
        self.size = size
        self.records: deque[tuple] = deque(maxlen=size)
        self.notes: deque[tuple] = deque(maxlen=max(64, size * 4))
        self.follow: Callable[[tuple], None] | None = None
        self.start: int | None = None
        self.engine: Any = None

    def attach(self, engine: Any) -> Tracer:
        """Record what ``engine`` does (also after ``Engine.fresh``: call again with the new one)."""
        engine._trace = self._keep if self.follow is not None else self.records.append
        engine.budget.notes = self.notes
        if getattr(engine, "policy", None) is not None:  # the policy guard notes what it masked or suppressed
            engine.policy.tracer = self
        engine.tracer = self
        self.engine = engine
        return self

    def _keep(self, record: Any) -> None:
        self.records.append(record)
        self.follow(full(record))  # type: ignore[misc]

    def note(self, action: Any, outcome: str, detail: Any = None, now: int | None = None) -> None:
        """A note about one action: the budget's decision, or the policy guard's
        (``outcome="policy"``, ``detail="masked 2 words"`` / ``"suppressed: ..."``)."""
        self.notes.append((action, outcome, detail, action.ts if now is None else now))

    def notes_for(self, action: Any) -> list[tuple[str, Any, int]]:
        return [(o, d, t) for a, o, d, t in self.notes if a is action]

    def __iter__(self) -> Iterable[tuple]:
        return iter([full(r) for r in self.records])

    # -- rendering ---------------------------------------------------------------------------

    def render(self, record: tuple) -> dict[str, Any]:
        """A record as plain data (for the control page): the event and each rule's outcome."""
        kind, now, ev, _rules, _entries, _paused = record
        rows = []
        for rule, code, detail in outcomes(record, self.engine.rules if self.engine is not None else None):
            row: dict[str, Any] = {"rule": rule.id, "outcome": code, "text": reason_text(rule, code, detail)}
            if code == FIRED:
                row["actions"] = [self.render_action(a) for a in detail or ()]
            rows.append(row)
        out: dict[str, Any] = {"kind": kind, "ts": now, "rules": rows}
        if ev is not None:
            out["event"] = event_view(ev)
        return out

    def render_action(self, action: Any) -> dict[str, Any]:
        return {"kind": action.kind, "text": action.text, "rule": action.rule,
                "budget": [budget_text(o, d) for o, d, _t in self.notes_for(action)]}

    def find(self, msg_id: str) -> tuple | None:
        for record in reversed(self.records):
            record = full(record)
            ev = record[2]
            if ev is not None and ev.msg_id == msg_id:
                return record
        return None

    def lines_for(self, record: tuple, rule_id: str | None = None) -> list[str]:
        """``00:01.000 gift cleo: cooldown 29s left`` for the rule (or every rule) considered."""
        kind, now, ev, _rules, _entries, _paused = record
        head = clock(now, self.start) + " " + (describe_event(ev) if ev is not None else kind)
        lines = []
        for rule, code, detail in outcomes(record, self.engine.rules if self.engine is not None else None):
            if rule_id is not None and rule.id != rule_id:
                continue
            text = reason_text(rule, code, detail)
            if code == FIRED:
                budget = [f"{a.kind}: " + "; ".join(budget_text(o, d) for o, d, _ in self.notes_for(a))
                          for a in detail or () if self.notes_for(a)]
                if budget:
                    text += " [" + " | ".join(budget) + "]"
            lines.append(head + (": " if rule_id is not None else f" {rule.id}: ") + text)
        return lines


def budget_text(outcome: str, detail: Any) -> str:
    if outcome == "merged":
        return f"merged into {detail!r}"
    if outcome == "sent_late":
        return f"sent after {_seconds(detail)} in the queue"
    if outcome == "dropped_stale":
        return f"dropped: stale after {_seconds(detail)}"
    if outcome == "dropped_full":
        return "dropped: queue full"
    if outcome == "repeated":
        return "dropped: repeated line"
    if outcome == "queued":
        return f"queued ({detail} waiting)"
    if outcome == "policy":
        return f"policy: {detail}"
    return outcome if detail is None else f"{outcome}: {detail}"


def event_view(ev: Any) -> dict[str, Any]:
    """An event as plain data for display: type, who, what (viewer text stays data)."""
    user = ev.user
    return {"type": ev.type, "ts": ev.ts, "msg_id": ev.msg_id,
            "user": None if user is None else {"unique_id": user.unique_id, "nickname": user.nickname},
            "data": {k: v for k, v in ev.data.items() if isinstance(v, (str, int, float, bool)) or v is None}}


class WhyPrinter:
    """``livebot replay --why [RULE]``: each record's lines, printed as it is kept. A chat line the
    budget queued shows ``queued``: what became of it is in the trace of the control page."""

    def __init__(self, engine: Any, rule_id: str | None, out: Callable[[str], None] = print) -> None:
        self.rule_id = rule_id
        self.out = out
        self.tracer = Tracer(size=64)
        self.tracer.follow = self._next
        self.tracer.attach(engine)

    def _next(self, record: tuple) -> None:
        if self.tracer.start is None:
            self.tracer.start = record[1]
        for line in self.tracer.lines_for(record, self.rule_id):
            self.out(line)

    def flush(self) -> None:
        """(Records are complete when kept: nothing waits.)"""
