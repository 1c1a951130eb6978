"""Load rule files, reporting every problem at once as ``file:line:col: rule <id>: message``."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any, Callable

from bot.actions.model import BUILTIN_KINDS
from bot.engine.durations import parse_duration
from bot.engine.giveaways import GIVEAWAY_KEYS, parse_giveaway
from bot.engine.goals import parse_goals
from bot.engine.points import parse_points
from bot.engine.sounds import SOUND_NAME_PROBLEM, parse_sounds, sound_name_ok
from bot.engine.subathon import parse_subathon, parse_subathon_action
from bot.engine.variants import parse_variants
from bot.engine.voices import parse_tts
from bot.engine.rules import (EVENT_NAMES, PERMISSIONS, POLL_NAMES, QUIZ_NAMES, TIMER_NAMES, ActionSpec, Rule,
                              RuleSet, Settings, Tier)
from bot.engine.templates import Fields, TemplateCompileError, Text, Value, compile_condition, compile_value
from bot.engine.views import context_fields
from bot.engine.yamlfile import Pos, YamlError, YList, YMap, did_you_mean, load_yaml, one_line, read_text
from bot.events.model import EVENT_TYPES, MAX_INT
from bot.integrations.commands import COMMAND_KINDS, check_command_template
from bot.policy.load import build_policy, parse_policy

MAX_RULES = 10_000  # in one rule set (all its files)
_WHY_MAX = "the limit is {:,}: every event is checked against every rule of its type"
FILE_KEYS = ("rules", "include", "settings")
RULE_KEYS = ("id", "description", "enabled", "on", "every", "after", "command", "when", "do", "tiers", "tier_by",
             "milestones", "priority", "stop", "cooldown", "once", "permission", "max_per_hour", "jitter",
             "min_chat", "sponsor", "merge")
TRIGGERS = ("on", "every", "after", "command")
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "": ("kind", "text", "data", "variants", "pick"),  # (variants, pick: bot/engine/variants.py)
    "poll": ("text", "options", "duration", "result", "data"),
    "quiz": ("text", "answer", "duration", "win", "timeout", "data"),
    "set": ("var", "value", "per"),
    "incr": ("var", "by", "per"),
    "giveaway": GIVEAWAY_KEYS,  # bot/engine/giveaways.py
}
SPECIAL_KINDS = ("poll", "quiz", "set", "incr", "subathon", "credits", "sound", "redeem", "giveaway", "voice")
SETTINGS_KEYS = {"": ("chat", "leaderboard", "snippets", "goals", "subathon", "sounds", "points", "tts", "policy"), "chat": ("per_minute", "burst", "dedup", "max_wait"),
                 "leaderboard": ("top",)}
MAX_DURATION_MS = MAX_INT  # some 285,000 years
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME_RX = re.compile(r"\b(" + "|".join(sorted(EVENT_NAMES | POLL_NAMES | QUIZ_NAMES)) + r")\b")
_SNIPPET_RX = re.compile(r"\bsnippets\.([A-Za-z_][A-Za-z0-9_]*)")


class RuleLoadError(ValueError):
    """The rules could not be loaded; ``problems`` lists every ``file:line:col: message``."""

    def __init__(self, problems: list[str]) -> None:
        problems = [one_line(p) for p in problems]  # a quoted value never breaks a problem's line
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
    loader = _Loader()
    for path in paths:
        found = rule_files(path)
        if not found:
            loader.add(Pos(str(path), 1, 1), "no rule files (*.yaml, *.yml) in this folder")
        for f in found:
            loader.load_file(f)
    return loader.finish()


def load_rules_text(text: str, file: str = "<rules>") -> RuleSet:
    """Load rules from a YAML string (tests, and rules embedded elsewhere)."""
    loader = _Loader()
    loader.load_text(text, file, Path(file).parent)
    return loader.finish()


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _line(pos: Pos, lineno: int) -> Pos:
    """The position of line ``lineno`` (1-based) of a text that starts at ``pos``."""
    return Pos(pos.file, pos.line + lineno - 1, pos.col) if lineno > 1 else pos


def _names(source: str) -> set[str]:
    """Top-level names a template or expression mentions (approximate, for lazy contexts)."""
    return set(_NAME_RX.findall(source))


class _Loader:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.problems: list[tuple[Pos, str]] = []  # (where, "file:line:col: message")
        self._file_order: dict[str, int] = {}
        self._fields: dict[str, Fields | None] | None = None  # what the current rule's texts may read
        self.files: list[str] = []
        self.settings = Settings()
        self._settings_pos: Pos | None = None
        self._ids: dict[str, Pos] = {}
        self._loaded: set[Path] = set()
        self._snippet_uses: list[tuple[str, Pos, str]] = []  # (name, where, rule id)
        self._rule_count = 0
        # for the policy guard (bot.policy): the pack's own texts, and by action kind for validate
        self._kind: str | None = None
        self._policy_texts: list[tuple[Pos, str, str | None, str]] = []
        self._policy_literals: list[str] = []
        self._policy_timers: list[tuple[Pos, str, int, frozenset[str]]] = []
        self.lines: dict[str, list[str]] = {}

    def finish(self) -> RuleSet:
        for name, pos, rid in self._snippet_uses:
            if name not in self.settings.snippets:
                known = list(self.settings.snippets) or ["none defined: add settings: snippets:"]
                self._problem(pos, f"unknown snippet '{name}'" + did_you_mean(name, known), rid)
        if self.settings.points is None:  # '- redeem:' and giveaways by points need points configured
            for pos, rid, what in self.__dict__.get("_points_uses", ()):
                self._problem(pos, f"'{what}' needs 'settings: points:' (rates, ranks, perks) in one rule file", rid)
        if self.settings.tts is None or not self.settings.tts.voices:  # '- voice:' needs voices to pick from
            for pos, rid in self.__dict__.get("_voice_uses", ()):
                self._problem(pos, "'voice' needs 'settings: tts: voices:' (the voices viewers may pick)", rid)
        if self.settings.subathon is None:  # a '- subathon:' action needs the timer configured
            for pos, rid in self.__dict__.get("_subathon_uses", ()):
                self._problem(pos, "'subathon' needs 'settings: subathon:' (start, add) in one rule file", rid)
        if self.problems:
            # file by file (in load order), then by line and column; found order breaks ties
            order = self._file_order
            ranked = sorted(enumerate(self.problems),
                            key=lambda ip: (order.setdefault(ip[1][0].file, len(order)), ip[1][0].line,
                                            ip[1][0].col, ip[0]))
            raise RuleLoadError([text for _, (_, text) in ranked])
        ruleset = RuleSet(self.rules, files=self.files, settings=self.settings)
        ruleset.policy = build_policy(self.settings.policy, self._policy_literals, self._policy_texts,
                                      self._policy_timers)
        return ruleset

    def add(self, pos: Pos, message: str) -> None:
        self.problems.append((pos, f"{pos}: {message}"))

    def _problem(self, pos: Pos, message: str, rule_id: str | None = None) -> None:
        where = f"rule {rule_id}: " if rule_id else ""
        self.add(pos, f"{where}{message}")

    # -- files ---------------------------------------------------------------------------------

    def load_file(self, f: Path, included_from: Pos | None = None) -> None:
        key = f.resolve()
        if key in self._loaded:
            return  # loaded once, however often it is named or included
        self._loaded.add(key)
        try:
            text = read_text(f)
        except OSError as exc:
            self.add(included_from or Pos(str(f), 1, 1), f"cannot read {f}: {exc.strerror or exc}")
            return
        except YamlError as exc:  # not UTF-8: where
            self.add(exc.pos, exc.message)
            return
        self.files.append(str(f))
        self.load_text(text, str(f), f.parent)

    def load_text(self, text: str, file: str, folder: Path) -> None:
        self._file_order.setdefault(file, len(self._file_order))
        self.lines[file] = text.splitlines()
        try:  # (a file of more rules than a rule set may hold is refused where its limit is passed)
            too_many = f"too many rules: more than {MAX_RULES:,} in this file ({_WHY_MAX.format(MAX_RULES)})"
            doc = load_yaml(text, file, (MAX_RULES, too_many))
        except YamlError as exc:
            self.add(exc.pos, exc.message)
            return
        if not isinstance(doc, YMap) or not ({"rules", "include", "settings"} & set(doc)):
            self._problem(getattr(doc, "pos", Pos(file, 1, 1)), "a rule file is a mapping with a 'rules:' list")
            return
        for key in doc:
            if key not in FILE_KEYS:
                self._problem(doc.key_pos[key], f"unknown top-level key '{key}'" + did_you_mean(key, FILE_KEYS))
        if "settings" in doc:
            self._settings(doc["settings"], doc.key_pos["settings"])
        if "include" in doc:
            self._include(doc, folder)
        rules = doc.get("rules", [])
        if not isinstance(rules, YList):
            if "rules" in doc:
                self._problem(doc.value_pos["rules"], "'rules' must be a list of rules")
            return
        if len(rules) + self._rule_count > MAX_RULES:
            self._problem(doc.value_pos["rules"], f"too many rules: {len(rules) + self._rule_count:,} in this rule set "
                          f"({_WHY_MAX.format(MAX_RULES)})")
            return
        self._rule_count += len(rules)
        for item, pos in zip(rules, rules.item_pos):
            rule = self._rule(item, pos)
            if rule is not None:
                self.rules.append(rule)

    def _include(self, doc: YMap, folder: Path) -> None:
        items = doc["include"]
        positions = items.item_pos if isinstance(items, YList) else [doc.value_pos["include"]]
        for item, pos in zip(_as_list(items), positions):
            if not isinstance(item, str):
                self._problem(pos, "'include' lists rule files or glob patterns, relative to this file")
                continue
            matches = sorted(Path(p) for p in glob.glob(str(folder / item), recursive=True))
            if not matches:
                self._problem(pos, f"include '{item}' matches no file")
            for match in matches:
                for f in rule_files(match):
                    self.load_file(f, included_from=pos)

    def _settings(self, raw: Any, pos: Pos) -> None:
        if self._settings_pos is not None:
            self._problem(pos, f"'settings' may appear in one file only (first at {self._settings_pos})")
            return
        self._settings_pos = pos
        if not isinstance(raw, YMap):
            self._problem(pos, "'settings' must be a mapping")
            return
        self._keys(raw, SETTINGS_KEYS[""], "settings key")
        chat = raw.get("chat")
        if isinstance(chat, YMap):
            self._keys(chat, SETTINGS_KEYS["chat"], "chat setting")
            self.settings.chat_per_minute = self._int(chat, "per_minute", 0, None) or 0
            self.settings.chat_burst = self._int(chat, "burst", 1, None) or self.settings.chat_burst
            if "dedup" in chat:
                self.settings.chat_dedup_ms = self._duration(chat, "dedup", None) or 0
            if "max_wait" in chat:
                self.settings.chat_max_wait_ms = self._duration(chat, "max_wait", None) or 0
        elif chat is not None:
            self._problem(raw.value_pos["chat"], "'chat' must be a mapping: per_minute, burst, dedup")
        board = raw.get("leaderboard")
        if isinstance(board, YMap):
            self._keys(board, SETTINGS_KEYS["leaderboard"], "leaderboard setting")
            self.settings.top_n = self._int(board, "top", 1, None) or self.settings.top_n
        elif board is not None:
            self._problem(raw.value_pos["leaderboard"], "'leaderboard' must be a mapping: top")
        snippets = raw.get("snippets")
        if isinstance(snippets, YMap):
            for name, value in snippets.items():
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    self._problem(snippets.value_pos[name], f"snippet '{name}' must be text")
                else:
                    self.settings.snippets[name] = str(value)
                    self._policy_texts.append((snippets.value_pos[name], "say", f"snippet {name}", str(value)))
                    self._policy_literals.append(str(value))
        elif snippets is not None:
            self._problem(raw.value_pos["snippets"], "'snippets' must be a mapping of name: text")
        if "goals" in raw:  # on-stream features: bot/engine/goals.py, bot/engine/subathon.py
            self.settings.goals = parse_goals(self, raw["goals"], raw.value_pos["goals"])
        if "subathon" in raw:
            self.settings.subathon = parse_subathon(self, raw["subathon"], raw.value_pos["subathon"])
        if "sounds" in raw:
            self.settings.sounds = parse_sounds(self, raw["sounds"], raw.value_pos["sounds"])
        if "points" in raw:
            self.settings.points = parse_points(self, raw["points"], raw.value_pos["points"])
        if "tts" in raw:
            self.settings.tts = parse_tts(self, raw["tts"], raw.value_pos["tts"])
        if "policy" in raw:
            self.settings.policy = parse_policy(raw["policy"], raw.value_pos["policy"], self._problem)
            self._policy_literals += self.settings.policy.allow

    # -- small checkers ------------------------------------------------------------------------

    def _keys(self, m: YMap, known: tuple[str, ...], what: str, rid: str | None = None) -> None:
        for key in m:
            if key not in known:
                self._problem(m.key_pos[key], f"unknown {what} '{key}'" + did_you_mean(key, known), rid)

    def _int(self, m: YMap, key: str, low: int, rid: str | None) -> int | None:
        if key not in m:
            return None
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            self._problem(m.value_pos[key], f"'{key}' must be a whole number of at least {low}", rid)
            return None
        return v

    def _duration(self, m: YMap, key: str, rid: str | None) -> int | None:
        try:
            ms = parse_duration(m[key])
        except ValueError as exc:
            self._problem(m.value_pos[key], str(exc), rid)
            return None
        except OverflowError:  # .inf, or more digits than a float holds
            ms = MAX_DURATION_MS + 1
        if ms > MAX_DURATION_MS:  # deadlines and saved state must stay whole numbers JSON can carry
            self._problem(m.value_pos[key], f"'{key}' is too long a duration: {str(m[key])[:40]!r}", rid)
            return None
        return ms

    def _expr(self, source: Any, pos: Pos, what: str, rid: str | None, allowed: frozenset[str], needs: set[str],
              compile_fn: Callable = compile_condition) -> Callable | None:
        if isinstance(source, bool):
            source = "true" if source else "false"
        if not isinstance(source, (str, int, float)):
            self._problem(pos, f"'{what}' is an expression, e.g. event.diamonds >= 100", rid)
            return None
        try:
            fn = compile_fn(str(source), allowed, self._fields)
        except TemplateCompileError as exc:
            for message, lineno in exc.problems:
                self._problem(_line(pos, lineno), f"in '{what}': {message}", rid)
            return None
        self._uses(str(source), pos, rid, needs)
        return fn

    def _uses(self, source: str, pos: Pos, rid: str | None, needs: set[str]) -> None:
        needs |= _names(source)
        self._snippet_uses += [(name, pos, rid or "?") for name in _SNIPPET_RX.findall(source)]

    # -- rules ---------------------------------------------------------------------------------

    def _rule(self, raw: Any, pos: Pos) -> Rule | None:
        if not isinstance(raw, YMap):
            self._problem(pos, "each rule is a mapping with at least 'id' and 'do'")
            return None
        before = len(self.problems)
        rid = raw.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            self._problem(raw.value_pos.get("id", raw.pos), "every rule needs an 'id': letters, digits, '_', '-' or '.'")
            rid = None
        elif rid in self._ids:
            self._problem(raw.value_pos["id"], f"duplicate rule id (first defined at {self._ids[rid]})", rid)
        else:
            self._ids[rid] = raw.value_pos["id"]
        self._keys(raw, RULE_KEYS, "key", rid)

        def bad(key: str, message: str) -> None:
            self._problem(raw.value_pos.get(key, raw.pos), message, rid)

        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            bad("enabled", "'enabled' must be true or false")
        rule = Rule(id=rid or "?", pos=raw.pos, actions=[], order=len(self.rules))
        self._triggers(raw, rule, rid, bad)

        priority = raw.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            bad("priority", "'priority' must be a whole number (higher runs first)")
        else:
            rule.priority = priority
        for flag in ("stop",):
            if not isinstance(raw.get(flag, False), bool):
                bad(flag, f"'{flag}' must be true or false")
        rule.stop = raw.get("stop") is True
        self._cooldown(raw, rule, rid)
        rule.max_per_hour = self._int(raw, "max_per_hour", 1, rid) or 0
        once = raw.get("once")
        if once is not None and once != "user":
            bad("once", "'once' can only be 'user' (fire at most once per viewer per session)")
        rule.once_per_user = once == "user"
        if rule.once_per_user and rule.is_timer:
            bad("once", "'once: user' needs an event rule; a timer has no user")
        permission = raw.get("permission", "everyone")
        if permission not in PERMISSIONS:
            bad("permission", f"unknown permission '{permission}'" + did_you_mean(str(permission), PERMISSIONS))
        elif permission != "everyone" and rule.is_timer:
            bad("permission", "'permission' needs an event rule; a timer has no user")
        else:
            rule.permission = permission
        if "sponsor" in raw:
            rule.sponsor = self._sponsor(raw, rid)
            if rule.sponsor is not None and "max_per_hour" not in raw:
                bad("sponsor", "a sponsor segment needs 'max_per_hour': at most how many times an hour it may run")

        allowed = TIMER_NAMES if rule.is_timer else EVENT_NAMES
        self._fields = context_fields(None if rule.is_timer else rule.on)
        needs: set[str] = set()
        if "when" in raw:
            rule.when_source = str(raw["when"])
            rule.when = self._expr(raw["when"], raw.value_pos["when"], "when", rid, allowed, needs)
        if "merge" in raw:
            merge_pos = raw.value_pos["merge"]
            self._kind = "say"  # (for the policy guard: a merged line is a chat line)
            rule.merge = self._text(raw["merge"], merge_pos, rid, frozenset({"names", "count"}), set())
        self._kind = None
        self._milestones(raw, rule, rid, allowed, needs)
        has_do, has_tiers = "do" in raw, "tiers" in raw
        if has_do == has_tiers:
            self._problem(raw.pos, "a rule needs 'do' (a list of actions) or 'tiers', not both" if has_do
                          else "a rule needs 'do' (a list of actions) or 'tiers'", rid)
        elif has_do:
            rule.actions = self._actions(raw["do"], raw.value_pos["do"], rid, allowed, needs)
        else:
            self._tiers(raw, rule, rid, allowed, needs)
        rule.needs = frozenset(needs & allowed)
        if rule.sponsor is not None:
            rule.needs |= {"sponsor"}
            self._policy_literals += list(rule.sponsor.values())
        if rule.every_ms and "every" in raw:
            kinds = frozenset(a.kind for a in rule.all_actions())
            self._policy_timers.append((raw.value_pos["every"], rule.id, rule.every_ms, kinds))
        if len(self.problems) > before or not enabled:
            return None
        return rule

    def _triggers(self, raw: YMap, rule: Rule, rid: str | None, bad: Callable[[str, str], None]) -> None:
        triggers = [k for k in TRIGGERS if k in raw]
        if len(triggers) != 1:
            what = "one of" if not triggers else "only one of"
            self._problem(raw.pos, f"a rule needs {what} 'on' (event types), 'every' (a timer), "
                                   "'after' (chat silence) or 'command'", rid)
        if "on" in raw:
            types = _as_list(raw["on"])
            for t in types:
                if not isinstance(t, str) or t not in EVENT_TYPES:
                    bad("on", f"unknown event type '{t}'" + did_you_mean(str(t), sorted(EVENT_TYPES)))
            rule.on = frozenset(t for t in types if isinstance(t, str))
        if "every" in raw:
            rule.every_ms = self._duration(raw, "every", rid) or 0
            if "every" in raw and rule.every_ms < 1000:
                bad("every", "a timer period must be at least 1s")
        if "after" in raw:
            rule.after_ms = self._duration(raw, "after", rid) or 0
            if rule.after_ms < 1000:
                bad("after", "a silence period must be at least 1s")
        for key in ("jitter", "min_chat"):
            if key in raw and "every" not in raw:
                bad(key, f"'{key}' goes with 'every'")
        if "jitter" in raw:
            rule.jitter_ms = self._duration(raw, "jitter", rid) or 0
            if rule.every_ms and rule.jitter_ms >= rule.every_ms:
                bad("jitter", "'jitter' must be shorter than the timer period")
        rule.min_chat = self._int(raw, "min_chat", 0, rid) or 0
        if "command" in raw:
            names = _as_list(raw["command"])
            if not names or not all(isinstance(n, str) and n.strip().lstrip("!").strip() for n in names):
                bad("command", "'command' is a command name such as '!help', or a list of names")
            else:
                rule.commands = frozenset(n.strip().lstrip("!").lower() for n in names)
                rule.on = frozenset({"chat"})

    def _cooldown(self, raw: YMap, rule: Rule, rid: str | None) -> None:
        value = raw.get("cooldown")
        if value is None:
            return
        if isinstance(value, YMap):
            self._keys(value, ("global", "user"), "cooldown", rid)
            if "global" in value:
                rule.cooldown_ms = self._duration(value, "global", rid) or 0
            if "user" in value:
                rule.user_cooldown_ms = self._duration(value, "user", rid) or 0
            return
        rule.cooldown_ms = self._duration(raw, "cooldown", rid) or 0

    def _sponsor(self, raw: YMap, rid: str | None) -> dict[str, str] | None:
        s = raw["sponsor"]
        if not isinstance(s, YMap):
            self._problem(raw.value_pos["sponsor"], "'sponsor' is a mapping: name, disclosure, code, link", rid)
            return None
        self._keys(s, ("name", "disclosure", "code", "link"), "sponsor key", rid)
        disclosure = s.get("disclosure")
        if not isinstance(disclosure, str) or not disclosure.strip():
            self._problem(s.pos, "a sponsor segment needs a 'disclosure' text such as '#ad' "
                                 "(viewers must be told it is paid promotion)", rid)
            return None
        if not isinstance(s.get("name"), str) or not s["name"].strip():
            self._problem(s.pos, "a sponsor segment needs the sponsor's 'name'", rid)
            return None
        return {k: str(s.get(k, "")) for k in ("name", "disclosure", "code", "link")}

    def _milestones(self, raw: YMap, rule: Rule, rid: str | None, allowed: frozenset[str], needs: set[str]) -> None:
        m = raw.get("milestones")
        if m is None:
            return
        if not isinstance(m, YMap) or "of" not in m or "at" not in m:
            self._problem(raw.value_pos["milestones"], "'milestones' needs 'of' (an expression, e.g. "
                                                       "user.diamonds) and 'at' (a list of numbers)", rid)
            return
        self._keys(m, ("of", "at"), "milestones key", rid)
        if rule.is_timer:
            self._problem(raw.value_pos["milestones"], "'milestones' needs an event rule", rid)
        at = m["at"]
        if not isinstance(at, list) or not at or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          for x in at):
            self._problem(m.value_pos["at"], "'at' must be a list of numbers", rid)
        else:
            rule.milestones = sorted(float(x) for x in at)
        rule.milestone_of = self._expr(m["of"], m.value_pos["of"], "of", rid, allowed, needs, compile_value)

    def _tiers(self, raw: YMap, rule: Rule, rid: str | None, allowed: frozenset[str], needs: set[str]) -> None:
        items = raw["tiers"]
        if not isinstance(items, YList) or not items:
            self._problem(raw.value_pos["tiers"], "'tiers' is a list of {min: number, do: [...]}", rid)
            return
        tier_allowed = allowed | {"tier"}
        for item, pos in zip(items, items.item_pos):
            if not isinstance(item, YMap) or "min" not in item or "do" not in item:
                self._problem(pos, "each tier needs 'min' (a number) and 'do' (a list of actions)", rid)
                continue
            self._keys(item, ("min", "name", "do"), "tier key", rid)
            low = item["min"]
            if isinstance(low, bool) or not isinstance(low, (int, float)):
                self._problem(item.value_pos["min"], "'min' must be a number", rid)
                continue
            actions = self._actions(item["do"], item.value_pos["do"], rid, tier_allowed, needs)
            rule.tiers.append(Tier(min=float(low), actions=actions, name=str(item.get("name", low))))
        rule.tiers.sort(key=lambda t: -t.min)
        if "tier_by" in raw:
            rule.tier_by = self._expr(raw["tier_by"], raw.value_pos["tier_by"], "tier_by", rid, allowed, needs,
                                      compile_value)
        elif rule.on == {"gift"} or rule.on == {"gift_progress"}:
            rule.tier_by = compile_value("event.total_diamonds", allowed)
            needs.add("event")
        else:
            self._problem(raw.value_pos["tiers"], "'tiers' needs 'tier_by' (an expression) unless the rule "
                                                  "is on gifts, where it defaults to event.total_diamonds", rid)

    # -- actions -------------------------------------------------------------------------------

    def _actions(self, items: Any, pos: Pos, rid: str | None, allowed: frozenset[str],
                 needs: set[str]) -> list[ActionSpec]:
        if not isinstance(items, YList) or not items:
            self._problem(pos, "'do' must be a non-empty list of actions", rid)
            return []
        out = []
        for item, item_pos in zip(items, items.item_pos):
            spec = self._action(item, item_pos, rid, allowed, needs)
            if spec is not None:
                out.append(spec)
        return out

    def _action(self, item: Any, pos: Pos, rid: str | None, allowed: frozenset[str],
                needs: set[str]) -> ActionSpec | None:
        self._kind = None  # (set below for the texts of this action; a var's value is not output)
        kinds = BUILTIN_KINDS + SPECIAL_KINDS
        usage = (f"an action is '- <kind>: text' with kind one of {', '.join(kinds)}, "
                 "or '- kind: <your kind>' with 'text' and 'data'")
        if not isinstance(item, YMap) or not item:
            self._problem(pos, usage, rid)
            return None
        if "kind" in item:
            body, kind, keys = item, item["kind"], ACTION_KEYS[""]
            if not isinstance(kind, str) or not _KIND.match(kind) or kind in SPECIAL_KINDS:
                self._problem(item.value_pos["kind"], "'kind' must be a lower-case name such as confetti "
                                                      "(poll, quiz, set and incr are written '- poll: ...')", rid)
                return None
        else:
            if len(item) != 1:
                self._problem(pos, usage, rid)
                return None
            kind = next(iter(item))
            if kind not in kinds:
                self._problem(item.key_pos[kind], f"unknown action '{kind}'" + did_you_mean(kind, kinds + ("kind",)), rid)
                return None
            keys = ACTION_KEYS.get(kind, ACTION_KEYS[""][1:])
            value = item[kind]
            if kind == "subathon":
                return parse_subathon_action(self, value, item.value_pos[kind], rid)
            if kind == "credits":  # the engine fills its names (bot/engine/credits.py)
                self.settings.credits = True
            if kind == "voice":  # a viewer picks a TTS voice (bot/engine/voices.py)
                self.__dict__.setdefault("_voice_uses", []).append((item.value_pos[kind], rid))
                if allowed is TIMER_NAMES:
                    self._problem(item.value_pos[kind], "'voice' needs an event rule (a viewer picks)", rid)
            if kind == "redeem":  # spends points on a perk (bot/engine/points.py): needs settings: points:
                self.__dict__.setdefault("_points_uses", []).append((item.value_pos[kind], rid, "redeem"))
                if allowed is TIMER_NAMES:
                    self._problem(item.value_pos[kind], "'redeem' needs an event rule (a viewer spends)", rid)
            if isinstance(value, YMap):
                body = value
            elif kind in ("poll", "quiz", "set", "incr"):
                self._problem(item.value_pos[kind], f"'{kind}' takes a mapping of {', '.join(keys)}", rid)
                return None
            else:
                body = YMap(text=value)
                body.pos, body.key_pos, body.value_pos = pos, {"text": pos}, {"text": item.value_pos[kind]}
        self._keys(body, keys, f"{kind} key", rid)
        vpos = body.value_pos
        spec = ActionSpec(kind=kind, text=Text(""))
        if kind in ("set", "incr"):
            return self._var_action(body, spec, rid, allowed, needs)
        self._kind = kind  # the texts below are checked by the policy guard as this kind's (bot.policy)
        text = self._text(body.get("text", ""), vpos.get("text", pos), rid, allowed, needs)
        data = body.get("data", {})
        if not isinstance(data, dict):
            self._problem(vpos.get("data", pos), "'data' must be a mapping", rid)
            return None
        compiled_data = self._data(data, vpos.get("data", pos), rid, allowed, needs)
        self._kind = "say" if kind in ("poll", "quiz") else None  # their result/win/timeout lines are chat
        if text is None or compiled_data is None:
            return None
        if kind in COMMAND_KINDS:  # a game command: viewer text only through the quoting filter
            for lineno, message in check_command_template(text.source):
                self._problem(_line(vpos.get("text", pos), lineno), message, rid)
        spec.text, spec.data, spec.pos = text, compiled_data, pos
        if kind == "sound" and not sound_name_ok(text.source):  # (bot/engine/sounds.py)
            self._problem(vpos.get("text", pos), SOUND_NAME_PROBLEM, rid)
            return None
        if ("variants" in body or "pick" in body) and not parse_variants(self, body, spec, rid, allowed, needs):
            return None
        if kind == "poll":
            return self._poll(body, spec, rid, allowed, needs)
        if kind == "quiz":
            return self._quiz(body, spec, rid, allowed, needs)
        if kind == "giveaway":
            return parse_giveaway(self, body, spec, rid, needs)
        return spec

    def _var_action(self, body: YMap, spec: ActionSpec, rid: str | None, allowed: frozenset[str],
                    needs: set[str]) -> ActionSpec | None:
        var = body.get("var")
        if not isinstance(var, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
            self._problem(body.value_pos.get("var", body.pos), f"'{spec.kind}' needs 'var': a name", rid)
            return None
        per = body.get("per", "session")
        if per not in ("session", "user"):
            self._problem(body.value_pos["per"], "'per' is 'session' (one value) or 'user' (one per viewer)", rid)
            return None
        if per == "user" and allowed is TIMER_NAMES:
            self._problem(body.value_pos["per"], "'per: user' needs an event rule", rid)
            return None
        key = "value" if spec.kind == "set" else "by"
        default = "" if spec.kind == "set" else 1
        source = body.get(key, default)
        value = self._text(source, body.value_pos.get(key, body.pos), rid, allowed, needs)
        if value is None:
            return None
        spec.options = {"var": var, "per": per, key: value}
        return spec

    def _poll(self, body: YMap, spec: ActionSpec, rid: str | None, allowed: frozenset[str],
              needs: set[str]) -> ActionSpec | None:
        options = body.get("options")
        if not isinstance(options, list) or not 2 <= len(options) <= 9 or not all(
                isinstance(o, (str, int, float)) and not isinstance(o, bool) for o in options):
            self._problem(body.value_pos.get("options", body.pos), "a poll needs 'options': 2 to 9 answers", rid)
            return None
        duration = self._duration(body, "duration", rid) if "duration" in body else 60_000
        result = self._text(body.get("result", "Poll closed: {{ poll.winner }} wins with {{ poll.top }} vote(s)."),
                            body.value_pos.get("result", body.pos), rid, allowed | POLL_NAMES, needs)
        if duration is None or result is None:
            return None
        spec.options = {"options": [str(o) for o in options], "duration": duration, "result": result}
        return spec

    def _quiz(self, body: YMap, spec: ActionSpec, rid: str | None, allowed: frozenset[str],
              needs: set[str]) -> ActionSpec | None:
        answers = _as_list(body.get("answer", []))
        if not answers or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in answers):
            self._problem(body.value_pos.get("answer", body.pos), "a quiz needs 'answer': the answer or a list", rid)
            return None
        duration = self._duration(body, "duration", rid) if "duration" in body else 60_000
        names = allowed | QUIZ_NAMES
        win = self._text(body.get("win", "{{ winner.nickname }} got it first: {{ quiz.answer }}!"),
                         body.value_pos.get("win", body.pos), rid, names, needs)
        timeout = self._text(body.get("timeout", "Time's up! The answer was {{ quiz.answer }}."),
                             body.value_pos.get("timeout", body.pos), rid, names, needs)
        if duration is None or win is None or timeout is None:
            return None
        spec.options = {"answers": [str(a) for a in answers], "duration": duration, "win": win, "timeout": timeout}
        return spec

    def _text(self, source: Any, pos: Pos, rid: str | None, allowed: frozenset[str], needs: set[str],
              kind: type[Text] = Text) -> Text | None:
        if isinstance(source, bool) or not isinstance(source, (str, int, float)):
            self._problem(pos, "expected text", rid)
            return None
        source = str(source)
        self._policy_literals.append(source)
        if self._kind is not None:
            self._policy_texts.append((pos, self._kind, rid, source))
        try:
            text = kind(source, allowed, self._fields)
        except TemplateCompileError as exc:
            for message, lineno in exc.problems:
                self._problem(_line(pos, lineno), f"in text: {message}", rid)
            return None
        if not text.is_static:
            self._uses(source, pos, rid, needs)
        return text

    def _data(self, value: Any, pos: Pos, rid: str | None, allowed: frozenset[str], needs: set[str]) -> Any:
        """Compile every string inside ``data`` as a template (a lone ``{{ expr }}`` keeps its number,
        bool or none: ``Value``); other values (numbers, booleans, null in the YAML) stay as they are."""
        if isinstance(value, str):
            return self._text(value, pos, rid, allowed, needs, Value)
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
