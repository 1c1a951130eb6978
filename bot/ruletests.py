"""``livebot test``: rule tests in the spirit of ``promtool test rules``.

A test file names rule files and lists cases; each case feeds events at relative times
(``at: 90s``) and states the actions expected and the ones that must not happen::

    rules: ../gifts.yaml            # a file, a folder, or a list; relative to this file
    tests:
      - name: a streak is thanked once
        events:
          - {at: 0s, type: gift, user: ana, name: Rose, diamonds: 1, count: 1, gift_type: 1}
          - {at: 1s, type: gift, user: ana, name: Rose, diamonds: 1, count: 5, gift_type: 1, streak_end: true}
        expect:
          - {at: 1s, kind: say, text: "Thank you ana for 5× Rose!"}
        absent:
          - {rule: big-gift}

``expect`` items must each match a distinct action, in order; ``exact: true`` also forbids
any other action (``expect: []`` with ``exact: true`` means "nothing fires"). A matcher may give
``at``, ``kind``, ``rule``, ``user``, ``text`` (exact) or ``match`` (a regular expression).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.actions.model import Action
from bot.engine.core import Engine
from bot.engine.durations import parse_duration
from bot.engine.loader import RuleLoadError, load_rules_many
from bot.engine.rules import RuleSet
from bot.engine.yamlfile import one_line, Pos, YamlError, YList, YMap, did_you_mean, load_yaml
from bot.events.model import DATA_FIELDS, EVENT_TYPES, Event, User
from bot.testing import run_events

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: tests count time from here
MATCH_KEYS = ("at", "kind", "rule", "user", "text", "match")
CASE_KEYS = ("name", "events", "expect", "absent", "exact", "until")
USER_FIELDS = ("user_id", "unique_id", "nickname", "follow_role", "is_moderator", "is_subscriber", "gifter_level")
EVENT_KEYS = ("at", "type", "user", "msg_id") + tuple(sorted({f for fs in DATA_FIELDS.values() for f in fs}))
# What each field of a test event or user must be: ("text" | "bool" | "int", lowest, highest, may be null)
FIELD_TYPES: dict[str, tuple[str, int | None, int | None, bool]] = {
    "text": ("text", None, None, False), "name": ("text", None, None, False), "group_id": ("text", None, None, False),
    "kind": ("text", None, None, False), "source": ("text", None, None, False), "reason": ("text", None, None, False),
    "msg_id": ("text", None, None, False),
    "gift_id": ("int", 0, None, False), "diamonds": ("int", 0, None, False), "count": ("int", 1, None, False),
    "gift_type": ("int", 0, None, False), "streak_end": ("bool", None, None, False), "total": ("int", 0, None, False),
    "months": ("int", 0, None, False), "rank": ("int", 1, None, False), "previous_rank": ("int", 1, None, True),
    "user_id": ("text", None, None, False), "unique_id": ("text", None, None, False),
    "nickname": ("text", None, None, False), "follow_role": ("int", 0, 3, False),
    "is_moderator": ("bool", None, None, False), "is_subscriber": ("bool", None, None, False),
    "gifter_level": ("int", 0, None, False),
    # issue 13's event types (bot/events/model.py); "list"/"dict" values are plain data (lists of user dicts)
    "display_name": ("text", None, None, False), "battle_id": ("text", None, None, False),
    "opponents": ("list", None, None, False), "duration_s": ("int", 0, None, False),
    "our_score": ("int", 0, None, False), "their_score": ("int", 0, None, False),
    "time_left_s": ("int", -1, None, False), "winner": ("text", None, None, False),
    "mvp": ("dict", None, None, True), "top": ("list", None, None, False), "channel_id": ("text", None, None, False),
    "action": ("text", None, None, False), "users": ("list", None, None, False), "coins": ("int", 0, None, False),
    "people": ("int", 0, None, False), "emote_id": ("text", None, None, False),
    "goal_id": ("text", None, None, False), "description": ("text", None, None, False),
    "progress": ("int", 0, None, False), "target": ("int", 0, None, False), "poll_id": ("text", None, None, False),
    "title": ("text", None, None, False), "options": ("list", None, None, False),
    "phase": ("text", None, None, False), "rank_type": ("text", None, None, False),
    "msg_ids": ("list", None, None, False), "pinned_by": ("dict", None, None, True),
}


def _plain(value: Any) -> Any:
    """YAML lists and mappings as plain lists and dicts (events carry plain data)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class TestFileError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        problems = [one_line(p) for p in problems]  # a quoted value with a line break stays one line
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Matcher:
    pos: Pos
    at: int | None = None
    kind: str | None = None
    rule: str | None = None
    user: str | None = None
    text: str | None = None
    pattern: re.Pattern[str] | None = None

    def matches(self, a: Action) -> bool:
        return ((self.at is None or a.ts - T0 == self.at)
                and (self.kind is None or a.kind == self.kind)
                and (self.rule is None or a.rule == self.rule)
                and (self.user is None or a.user == self.user)
                and (self.text is None or a.text == self.text)
                and (self.pattern is None or self.pattern.search(a.text) is not None))

    def describe(self) -> str:
        parts = [f"{_clock(self.at)}" if self.at is not None else "any time"]
        parts += [f"{k}={v}" for k, v in (("kind", self.kind), ("rule", self.rule), ("user", self.user)) if v]
        if self.text is not None:
            parts.append(repr(self.text))
        if self.pattern is not None:
            parts.append(f"/{self.pattern.pattern}/")
        return " ".join(parts)


@dataclass
class Case:
    name: str
    pos: Pos
    events: list[Event]
    expect: list[Matcher]
    absent: list[Matcher]
    exact: bool = False
    until: int | None = None


@dataclass
class CaseResult:
    case: Case
    actions: list[Action]
    missing: list[Matcher] = field(default_factory=list)
    forbidden: list[tuple[Matcher, Action]] = field(default_factory=list)
    unexpected: list[Action] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.forbidden or self.unexpected)


def _clock(ms: int) -> str:
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    return f"{sign}{ms // 60_000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def format_action(a: Action) -> str:
    return f"{_clock(a.ts - T0)} {a.kind} {a.rule} {a.text!r}"


# -- reading test files --------------------------------------------------------------------------

def _shown(value: Any) -> str:
    """A value as the test file wrote it, for messages: ``'5'`` (text), ``a list``."""
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _empty() -> YList:
    out = YList()
    out.item_pos = []
    return out


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[tuple[Pos, str]] = []

    @property
    def problems(self) -> list[str]:
        """Every problem, in line order."""
        return [f"{pos}: {message}" for pos, message in sorted(self.found, key=lambda f: (f[0].line, f[0].col))]

    def problem(self, pos: Pos, message: str) -> None:
        self.found.append((pos, message))

    def keys(self, m: YMap, known: tuple[str, ...], what: str) -> None:
        for key in m:
            if key not in known:
                self.problem(m.key_pos[key], f"unknown {what} key '{key}'" + did_you_mean(key, known))

    def duration(self, m: YMap, key: str) -> int | None:
        try:
            return parse_duration(m[key])
        except ValueError as exc:
            self.problem(m.value_pos[key], str(exc))
            return None

    def typed(self, m: YMap, key: str) -> tuple[bool, Any]:
        """``(ok, value)`` for an event or user field, checked against FIELD_TYPES; numbers are
        accepted as text."""
        kind, low, high, nullable = FIELD_TYPES[key]
        value = m[key]
        if value is None and nullable:
            return True, None
        if kind == "text":
            if isinstance(value, str):
                return True, value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True, str(value)
            self.problem(m.value_pos[key], f"'{key}' must be text, not {_shown(value)}")
        elif kind == "bool":
            if isinstance(value, bool):
                return True, value
            self.problem(m.value_pos[key], f"'{key}' must be true or false, not {_shown(value)}")
        elif kind in ("list", "dict"):
            if isinstance(value, list if kind == "list" else dict):
                return True, _plain(value)
            self.problem(m.value_pos[key], f"'{key}' must be a {'list' if kind == 'list' else 'mapping'}"
                         + (" or null" if nullable else "") + f", not {_shown(value)}")
        else:
            if isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low) and (
                    high is None or value <= high):
                return True, value
            bounds = "" if low is None else f" from {low} to {high}" if high is not None else f" of at least {low}"
            self.problem(m.value_pos[key], f"'{key}' must be a whole number{bounds}"
                         + (" or null" if nullable else "") + f", not {_shown(value)}")
        return False, None

    def user(self, who: Any, m: YMap) -> tuple[bool, User | None]:
        if who is None:
            return True, None
        if isinstance(who, (str, int)) and not isinstance(who, bool):
            return True, User(user_id=f"id-{who}", unique_id=str(who), nickname=str(who))
        if not isinstance(who, YMap):
            self.problem(m.value_pos["user"], "'user' is a name such as ana, or a mapping of "
                         + ", ".join(USER_FIELDS) + f"; not {_shown(who)}")
            return False, None
        self.keys(who, USER_FIELDS, "user")
        fields: dict[str, Any] = {}
        ok = True
        for key in USER_FIELDS:
            if key in who:
                good, fields[key] = self.typed(who, key)
                ok = ok and good
        if not ok:
            return False, None
        name = fields.get("unique_id") or fields.get("nickname") or "viewer"
        fields = {"user_id": f"id-{name}", "unique_id": name, "nickname": name, **fields}
        try:
            return True, User.from_dict(fields)
        except (TypeError, ValueError) as exc:
            self.problem(m.value_pos["user"], str(exc))
            return False, None

    def matcher(self, m: Any, pos: Pos) -> Matcher | None:
        if not isinstance(m, YMap):
            self.problem(pos, f"an expected action is a mapping of {', '.join(MATCH_KEYS)}")
            return None
        self.keys(m, MATCH_KEYS, "expectation")
        out = Matcher(pos=m.pos)
        if "at" in m:
            out.at = self.duration(m, "at")
        for key in ("kind", "rule", "user", "text"):
            if key in m:
                setattr(out, key, str(m[key]))
        if "match" in m:
            try:
                out.pattern = re.compile(str(m["match"]))
            except re.error as exc:
                self.problem(m.value_pos["match"], f"bad regular expression: {exc}")
        return out

    def event(self, m: Any, pos: Pos, seq: int) -> Event | None:
        if not isinstance(m, YMap) or "at" not in m or "type" not in m:
            self.problem(pos, "an event needs at least 'at' and 'type'")
            return None
        self.keys(m, EVENT_KEYS, "event")
        at = self.duration(m, "at")
        kind = m["type"]
        if not isinstance(kind, str):
            self.problem(m.value_pos["type"], f"'type' is one event type such as gift, not {_shown(kind)}")
            return None
        if kind not in EVENT_TYPES:
            self.problem(m.value_pos["type"], f"unknown event type '{kind}'" + did_you_mean(kind, sorted(EVENT_TYPES)))
            return None
        ok, user = self.user(m.get("user"), m)
        fields = DATA_FIELDS.get(kind, ())
        data = {}
        for key in m:
            if key in fields:
                good, data[key] = self.typed(m, key)
                ok = ok and good
            elif key in EVENT_KEYS and key not in ("at", "type", "user", "msg_id"):
                self.problem(m.key_pos[key], f"'{key}' is not a field of {kind} events"
                             + (f" (they have: {', '.join(fields)})" if fields else " (they have none)"))
                ok = False
        msg_ok, msg_id = self.typed(m, "msg_id") if "msg_id" in m else (True, f"t{seq}")
        if at is None or not ok or not msg_ok:
            return None
        if kind in ("gift", "gift_progress"):
            data.setdefault("name", "Rose")
            data.setdefault("gift_id", zlib.crc32(str(data["name"]).encode()) % 100_000)
            data.setdefault("diamonds", 1)
            data.setdefault("count", 1)
            data.setdefault("gift_type", 2)
            data.setdefault("streak_end", False)
        if kind == "chat":
            data.setdefault("text", "")
        return Event(type=kind, ts=T0 + at, msg_id=msg_id, user=user, data=data)

    def case(self, m: Any, pos: Pos) -> Case | None:
        if not isinstance(m, YMap):
            self.problem(pos, "a test case is a mapping with 'name', 'events' and 'expect'")
            return None
        self.keys(m, CASE_KEYS, "test case")
        events_raw = m.get("events", _empty())
        if not isinstance(events_raw, YList):
            self.problem(m.value_pos.get("events", m.pos), "'events' must be a list")
            return None
        events = [e for i, (e_raw, p) in enumerate(zip(events_raw, events_raw.item_pos))
                  if (e := self.event(e_raw, p, i)) is not None]
        lists = {}
        for key in ("expect", "absent"):
            raw = m.get(key, _empty())
            if not isinstance(raw, YList):
                self.problem(m.value_pos[key], f"'{key}' must be a list")
                raw = _empty()
            lists[key] = [x for x_raw, p in zip(raw, raw.item_pos) if (x := self.matcher(x_raw, p)) is not None]
        until = self.duration(m, "until") if "until" in m else None
        if not isinstance(m.get("exact", False), bool):
            self.problem(m.value_pos["exact"], f"'exact' must be true or false, not {_shown(m['exact'])}")
        return Case(name=str(m.get("name", f"case at line {m.pos.line}")), pos=m.pos, events=events,
                    expect=lists["expect"], absent=lists["absent"], exact=m.get("exact") is True,
                    until=None if until is None else T0 + until)


def load_test_file(path: Path) -> tuple[list[Path], list[Case]]:
    """The rule paths a test file names, and its cases; TestFileError lists every problem."""
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError([f"{path}:1:1: cannot read: {exc}"]) from None
    except YamlError as exc:
        raise TestFileError([str(exc)]) from None
    reader = _Reader(str(path))
    if not isinstance(doc, YMap) or "rules" not in doc or "tests" not in doc:
        raise TestFileError([f"{path}:1:1: a test file is a mapping with 'rules' and 'tests'"])
    reader.keys(doc, ("rules", "tests"), "top-level")
    raw_rules = doc["rules"]
    named = list(zip(raw_rules, raw_rules.item_pos)) if isinstance(raw_rules, YList) else \
        [(raw_rules, doc.value_pos["rules"])]
    rule_paths = []
    for name, pos in named:
        if isinstance(name, str) and name.strip():
            rule_paths.append(path.parent / name)
        else:
            reader.problem(pos, f"'rules' names rule files or folders (text), not {_shown(name)}")
    if not named:
        reader.problem(doc.value_pos["rules"], "'rules' names no rule file or folder")
    cases_raw = doc["tests"]
    cases: list[Case] = []
    if not isinstance(cases_raw, YList):
        reader.problem(doc.value_pos["tests"], "'tests' must be a list of test cases")
    else:
        cases = [c for c_raw, p in zip(cases_raw, cases_raw.item_pos) if (c := reader.case(c_raw, p)) is not None]
    if reader.problems:
        raise TestFileError(reader.problems)
    return rule_paths, cases


# -- running -------------------------------------------------------------------------------------

def check(case: Case, actions: list[Action]) -> CaseResult:
    result = CaseResult(case, actions)
    used: set[int] = set()
    start = 0
    for m in case.expect:
        hit = next((i for i in range(start, len(actions)) if i not in used and m.matches(actions[i])), None)
        if hit is None:
            result.missing.append(m)
        else:
            used.add(hit)
            start = hit + 1
    for m in case.absent:
        result.forbidden += [(m, a) for a in actions if m.matches(a)]
    if case.exact:
        result.unexpected = [a for i, a in enumerate(actions) if i not in used]
    return result


def run_case(case: Case, ruleset: RuleSet, engine_options: dict | None = None) -> CaseResult:
    engine = Engine(ruleset, **(engine_options or {}))
    return check(case, run_events(sorted(case.events, key=lambda e: e.ts), ruleset, until=case.until, engine=engine))


def report(result: CaseResult) -> str:
    lines = [f"FAIL {result.case.pos.file}:{result.case.pos.line}: {result.case.name}"]
    for m in result.missing:
        lines.append(f"  - expected, not found (line {m.pos.line}): {m.describe()}")
    for m, a in result.forbidden:
        lines.append(f"  - must not happen (line {m.pos.line}) but did: {format_action(a)}")
    for a in result.unexpected:
        lines.append(f"  - not expected (exact): {format_action(a)}")
    lines.append("  got:" if result.actions else "  got: no actions")
    lines += [f"    {format_action(a)}" for a in result.actions]
    return "\n".join(lines)


def test_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def run_paths(paths: list[Path], out=print) -> int:
    """Run every test file under ``paths``; print failures; return the process exit code."""
    passed = failed = errors = 0
    for path in paths:
        for file in test_files(path):
            try:
                rule_paths, cases = load_test_file(file)
                ruleset = load_rules_many(rule_paths)
            except (TestFileError, RuleLoadError) as exc:
                errors += 1
                out("\n".join(f"ERROR {p}" for p in exc.problems))
                continue
            for case in cases:
                try:
                    result = run_case(case, ruleset)
                except Exception as exc:  # a bug, not the test's fault: report it and go on
                    failed += 1
                    out(f"FAIL {case.pos.file}:{case.pos.line}: {case.name}\n"
                        f"  - the run stopped with {type(exc).__name__}: {exc}")
                    continue
                if result.ok:
                    passed += 1
                else:
                    failed += 1
                    out(report(result))
    out(f"{passed} passed, {failed} failed" + (f", {errors} file error(s)" if errors else ""))
    return 0 if failed == 0 and errors == 0 and passed > 0 else 1
