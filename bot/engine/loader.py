"""Load rule files, reporting every problem at once as ``file:line:col: rule <id>: message``.

This module keeps the entry points (``load_rules``, ``load_rules_many``, ``load_rules_text``, ``rule_files``,
``RuleLoadError``) and the files/includes/finish part of ``_Loader``; the rest of ``_Loader`` is mixed in from
loader_settings.py (``settings:``), loader_rules.py (one rule), loader_actions.py (a rule's actions) and
loader_checks.py (the shared checkers and text compilers)."""

from __future__ import annotations

import glob
from pathlib import Path

from bot.engine.loader_actions import _KIND, ACTION_KEYS, SPECIAL_KINDS, _ActionParser
from bot.engine.loader_checks import _NAME_RX, _SNIPPET_RX, MAX_DURATION_MS, _as_list, _Checks, _line, _names
from bot.engine.loader_rules import _ID, RULE_KEYS, TRIGGERS, _RuleParser
from bot.engine.loader_settings import SETTINGS_KEYS, _SettingsParser
from bot.engine.rules import Rule, RuleSet, Settings
from bot.engine.templates import Fields
from bot.engine.yamlfile import Pos, YamlError, YList, YMap, did_you_mean, load_yaml, one_line, read_text
from bot.policy.load import build_policy

# the names that lived here before the split (issue 14) stay importable from bot.engine.loader
__all__ = ["ACTION_KEYS", "FILE_KEYS", "MAX_DURATION_MS", "MAX_RULES", "RULE_KEYS", "SETTINGS_KEYS", "SPECIAL_KINDS",
           "TRIGGERS", "RuleLoadError", "load_rules", "load_rules_many", "load_rules_text", "rule_files",
           "_ID", "_KIND", "_NAME_RX", "_SNIPPET_RX", "_as_list", "_line", "_names"]

MAX_RULES = 10_000  # in one rule set (all its files)
_WHY_MAX = "the limit is {:,}: every event is checked against every rule of its type"
FILE_KEYS = ("rules", "include", "settings")


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


class _Loader(_SettingsParser, _RuleParser, _ActionParser, _Checks):
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
