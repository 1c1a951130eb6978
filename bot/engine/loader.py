"""Load rule files, reporting every problem at once as ``file:line:col: rule <id>: message``."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from bot.actions.model import BUILTIN_KINDS
from bot.engine.durations import parse_duration
from bot.engine.rules import EVENT_NAMES, TIMER_NAMES, ActionSpec, Rule, RuleSet
from bot.engine.templates import TemplateCompileError, Text, compile_condition
from bot.engine.yamlfile import Pos, YamlError, YList, YMap, load_yaml
from bot.events.model import EVENT_TYPES

RULE_KEYS = ("id", "description", "enabled", "on", "every", "command", "when", "do", "priority", "stop",
             "cooldown", "once")
ACTION_KEYS = ("kind", "text", "data")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


class RuleLoadError(ValueError):
    """The rules could not be loaded; ``problems`` lists every ``file:line:col: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def rule_files(path: str | Path) -> list[Path]:
    """A rule file, or the ``*.yaml``/``*.yml`` files directly inside a folder, sorted by name."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
    return [p]


def load_rules(path: str | Path) -> RuleSet:
    """Load and compile every rule under ``path``, or raise RuleLoadError listing all problems."""
    return load_rules_many([path])


def load_rules_many(paths: list[str | Path]) -> RuleSet:
    """Like ``load_rules`` over several files or folders, in the order given."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        found = rule_files(path)
        if not found:
            problems.append(f"{path}:1:1: no rule files (*.yaml, *.yml) in this folder")
        files += [f for f in found if f not in files]
    loader = _Loader()
    loader.problems += problems
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            loader.problems.append(f"{f}:1:1: cannot read: {exc}")
            continue
        loader.load_text(text, str(f))
    if loader.problems:
        raise RuleLoadError(loader.problems)
    return RuleSet(loader.rules, files=[str(f) for f in files])


def load_rules_text(text: str, file: str = "<rules>") -> RuleSet:
    """Load rules from a YAML string (tests, and rules embedded elsewhere)."""
    loader = _Loader()
    loader.load_text(text, file)
    if loader.problems:
        raise RuleLoadError(loader.problems)
    return RuleSet(loader.rules, files=[file])


def _hint(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


class _Loader:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.problems: list[str] = []
        self._ids: dict[str, Pos] = {}

    def _problem(self, pos: Pos, message: str, rule_id: str | None = None) -> None:
        where = f"rule {rule_id}: " if rule_id else ""
        self.problems.append(f"{pos}: {where}{message}")

    def load_text(self, text: str, file: str) -> None:
        try:
            doc = load_yaml(text, file)
        except YamlError as exc:
            self.problems.append(str(exc))
            return
        top = Pos(file, 1, 1)
        if not isinstance(doc, YMap) or "rules" not in doc:
            self._problem(getattr(doc, "pos", top), "a rule file is a mapping with a 'rules:' list")
            return
        for key in doc:
            if key != "rules":
                self._problem(doc.key_pos[key], f"unknown top-level key '{key}'" + _hint(key, ("rules",)))
        rules = doc["rules"]
        if not isinstance(rules, YList):
            self._problem(doc.value_pos["rules"], "'rules' must be a list of rules")
            return
        for item, pos in zip(rules, rules.item_pos):
            rule = self._rule(item, pos)
            if rule is not None:
                self.rules.append(rule)

    def _rule(self, raw: Any, pos: Pos) -> Rule | None:
        if not isinstance(raw, YMap):
            self._problem(pos, "each rule is a mapping with at least 'id' and 'do'")
            return None
        before = len(self.problems)
        rid = raw.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            where = raw.value_pos.get("id", raw.pos)
            self._problem(where, "every rule needs an 'id': letters, digits, '_', '-' or '.'")
            rid = None
        elif rid in self._ids:
            self._problem(raw.value_pos["id"], f"duplicate rule id (first defined at {self._ids[rid]})", rid)
        else:
            self._ids[rid] = raw.value_pos["id"]
        for key in raw:
            if key not in RULE_KEYS:
                self._problem(raw.key_pos[key], f"unknown key '{key}'" + _hint(key, RULE_KEYS), rid)

        def bad(key: str, message: str) -> None:
            self._problem(raw.value_pos.get(key, raw.pos), message, rid)

        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            bad("enabled", "'enabled' must be true or false")
        rule = Rule(id=rid or "?", pos=raw.pos, actions=[], order=len(self.rules))

        triggers = [k for k in ("on", "every", "command") if k in raw]
        if len(triggers) != 1:
            what = "one of" if not triggers else "only one of"
            self._problem(raw.pos, f"a rule needs {what} 'on' (event types), 'every' (a timer) or 'command'", rid)
        if "on" in raw:
            types = _as_list(raw["on"])
            for t in types:
                if not isinstance(t, str) or t not in EVENT_TYPES:
                    close = difflib.get_close_matches(str(t), sorted(EVENT_TYPES), n=1)
                    tip = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(EVENT_TYPES))})"
                    bad("on", f"unknown event type '{t}'" + tip)
            rule.on = frozenset(t for t in types if isinstance(t, str))
        if "every" in raw:
            rule.every_ms = self._duration(raw, "every", rid)
            if rule.every_ms is not None and rule.every_ms < 1000:
                bad("every", "a timer period must be at least 1s")
        if "command" in raw:
            names = _as_list(raw["command"])
            if not names or not all(isinstance(n, str) and n.strip("!").strip() for n in names):
                bad("command", "'command' is a command name such as '!help', or a list of names")
            else:
                rule.commands = frozenset(n.strip().lstrip("!").lower() for n in names)
                rule.on = frozenset({"chat"})

        priority = raw.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            bad("priority", "'priority' must be a whole number (higher runs first)")
        else:
            rule.priority = priority
        stop = raw.get("stop", False)
        if not isinstance(stop, bool):
            bad("stop", "'stop' must be true or false")
        rule.stop = stop is True
        self._cooldown(raw, rule, rid)
        once = raw.get("once")
        if once is not None and once != "user":
            bad("once", "'once' can only be 'user' (fire at most once per viewer per session)")
        rule.once_per_user = once == "user"
        if rule.once_per_user and rule.is_timer:
            bad("once", "'once: user' needs an event rule; a timer has no user")

        allowed = TIMER_NAMES if rule.is_timer else EVENT_NAMES
        needs: set[str] = set()
        if "when" in raw:
            when = raw["when"]
            if isinstance(when, bool):
                when = "true" if when else "false"
            if not isinstance(when, (str, int, float)):
                bad("when", "'when' is an expression, e.g. event.diamonds >= 100")
            else:
                rule.when_source = str(when)
                try:
                    rule.when = compile_condition(rule.when_source, allowed)
                except TemplateCompileError as exc:
                    bad("when", f"in 'when': {exc}")
                needs |= _names(rule.when_source)
        rule.actions = self._actions(raw, rid, allowed, needs)
        rule.needs = frozenset(needs & allowed)
        if len(self.problems) > before or not enabled:
            return None
        return rule

    def _duration(self, raw: YMap, key: str, rid: str | None) -> int | None:
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            self._problem(raw.value_pos[key], str(exc), rid)
            return None

    def _cooldown(self, raw: YMap, rule: Rule, rid: str | None) -> None:
        value = raw.get("cooldown")
        if value is None:
            return
        if isinstance(value, YMap):
            for key in value:
                if key not in ("global", "user"):
                    self._problem(value.key_pos[key], f"unknown cooldown '{key}'" + _hint(key, ("global", "user")), rid)
                    continue
                try:
                    ms = parse_duration(value[key])
                except ValueError as exc:
                    self._problem(value.value_pos[key], str(exc), rid)
                    continue
                if key == "global":
                    rule.cooldown_ms = ms
                else:
                    rule.user_cooldown_ms = ms
            return
        ms = self._duration(raw, "cooldown", rid)
        rule.cooldown_ms = ms or 0

    def _actions(self, raw: YMap, rid: str | None, allowed: frozenset[str], needs: set[str]) -> list[ActionSpec]:
        items = raw.get("do")
        if not isinstance(items, YList) or not items:
            self._problem(raw.value_pos.get("do", raw.pos), "'do' must be a non-empty list of actions", rid)
            return []
        out = []
        for item, pos in zip(items, items.item_pos):
            spec = self._action(item, pos, rid, allowed, needs)
            if spec is not None:
                out.append(spec)
        return out

    def _action(self, item: Any, pos: Pos, rid: str | None, allowed: frozenset[str],
                needs: set[str]) -> ActionSpec | None:
        usage = (f"an action is '- <kind>: text' with kind one of {', '.join(BUILTIN_KINDS)}, "
                 "or '- kind: <your kind>' with 'text' and 'data'")
        if not isinstance(item, YMap) or not item:
            self._problem(pos, usage, rid)
            return None
        if "kind" in item:
            body, body_pos, kind = item, item.value_pos, item["kind"]
            if not isinstance(kind, str) or not _KIND.match(kind):
                self._problem(item.value_pos["kind"], "'kind' must be a lower-case name such as confetti", rid)
                return None
        else:
            if len(item) != 1:
                self._problem(pos, usage, rid)
                return None
            kind = next(iter(item))
            if kind not in BUILTIN_KINDS:
                self._problem(item.key_pos[kind], f"unknown action '{kind}'" + _hint(kind, BUILTIN_KINDS + ACTION_KEYS), rid)
                return None
            value = item[kind]
            if isinstance(value, YMap):
                body, body_pos = value, value.value_pos
            else:
                body, body_pos = YMap(text=value), {"text": item.value_pos[kind]}
                body.key_pos = body_pos
        for key in body:
            if key not in ACTION_KEYS:
                self._problem(body.key_pos[key], f"unknown action key '{key}'" + _hint(key, ACTION_KEYS), rid)
        text = body.get("text", "")
        if not isinstance(text, (str, int, float)):
            self._problem(body_pos.get("text", pos), "'text' must be text", rid)
            return None
        compiled = self._text(str(text), body_pos.get("text", pos), rid, allowed, needs)
        data = body.get("data", {})
        if not isinstance(data, dict):
            self._problem(body_pos.get("data", pos), "'data' must be a mapping", rid)
            return None
        compiled_data = self._data(data, body_pos.get("data", pos), rid, allowed, needs)
        if compiled is None or compiled_data is None:
            return None
        return ActionSpec(kind=kind, text=compiled, data=compiled_data)

    def _text(self, source: str, pos: Pos, rid: str | None, allowed: frozenset[str], needs: set[str]) -> Text | None:
        try:
            text = Text(source, allowed)
        except TemplateCompileError as exc:
            line = Pos(pos.file, pos.line + exc.lineno - 1, pos.col) if exc.lineno > 1 else pos
            self._problem(line, f"in text: {exc}", rid)
            return None
        needs |= _names(source) if not text.is_static else set()
        return text

    def _data(self, value: Any, pos: Pos, rid: str | None, allowed: frozenset[str], needs: set[str]) -> Any:
        """Compile every string inside ``data`` as a template; other values stay as they are."""
        if isinstance(value, str):
            return self._text(value, pos, rid, allowed, needs)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                vpos = value.value_pos.get(k, pos) if isinstance(value, YMap) else pos
                out[k] = self._data(v, vpos, rid, allowed, needs)
                if out[k] is None and v is not None:
                    return None
            return out
        if isinstance(value, list):
            items = [self._data(v, pos, rid, allowed, needs) for v in value]
            return None if any(i is None and v is not None for i, v in zip(items, value)) else items
        return value


def _names(source: str) -> set[str]:
    """Top-level names a template or expression mentions (approximate, for lazy contexts)."""
    return set(re.findall(r"\b(event|user|stats|since|args|rule)\b", source))
