"""Shared checkers of the rule loader (bot/engine/loader.py): the small value checks (unknown keys, whole
numbers, durations), expression and template compiling with the names and snippets they use, and the
``_text``/``_data`` compilers every rule, action and settings feature goes through. ``_Checks`` is a mixin
of ``_Loader``: its methods report through the loader's ``_problem`` and record the texts the policy guard
(bot.policy) sees."""

from __future__ import annotations

import re
from typing import Any, Callable

from bot.engine.durations import parse_duration
from bot.engine.rules import EVENT_NAMES, POLL_NAMES, QUIZ_NAMES
from bot.engine.templates import TemplateCompileError, Text, Value, compile_condition
from bot.engine.yamlfile import Pos, YMap, did_you_mean
from bot.events.model import MAX_INT

MAX_DURATION_MS = MAX_INT  # some 285,000 years
_NAME_RX = re.compile(r"\b(" + "|".join(sorted(EVENT_NAMES | POLL_NAMES | QUIZ_NAMES)) + r")\b")
_SNIPPET_RX = re.compile(r"\bsnippets\.([A-Za-z_][A-Za-z0-9_]*)")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _line(pos: Pos, lineno: int) -> Pos:
    """The position of line ``lineno`` (1-based) of a text that starts at ``pos``."""
    return Pos(pos.file, pos.line + lineno - 1, pos.col) if lineno > 1 else pos


def _names(source: str) -> set[str]:
    """Top-level names a template or expression mentions (approximate, for lazy contexts)."""
    return set(_NAME_RX.findall(source))



class _Checks:
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
