"""Conditions and text templates in a hardened Jinja2 sandbox, compiled once at load.

Event fields reach templates only as *data*: a nickname such as ``{{7*7}}`` is printed as
typed. The sandbox blocks attribute tricks; on top of it we bound ``*`` and ``**`` and
refuse loops, macros, includes and imports, which could otherwise hang the bot.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_STRING = 2000  # longest string a template may build with * or render in total
MAX_POWER = 10**12
_BANNED_NODES = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport,
                 nodes.Extends, nodes.Block)


class TemplateCompileError(ValueError):
    """An expression or template that cannot be used; ``lineno`` is 1-based within the text."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(left, (int, float)) and isinstance(right, (int, float)):
                if abs(right) > 64 or abs(left) > MAX_POWER:
                    raise SecurityError("power too large")
            return operator.pow(left, right)
        if isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple)):
            seq, times = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(times, int) and len(seq) * max(times, 0) > MAX_STRING:
                raise SecurityError("repeated sequence too long")
        return operator.mul(left, right)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
ENV.globals = {"range": ENV.globals["range"], "dict": dict, "min": min, "max": max, "abs": abs}


def _fmt_num(value: Any) -> str:
    """``1234567`` → ``1,234,567``; for friendly counts in chat lines."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def _fmt_ranked(board: Any, n: int = 3) -> str:
    """A leaderboard as one line: ``1. ana (1,005) · 2. bob (300)``."""
    try:
        return " · ".join(f"{g['rank']}. {g['nickname']} ({_fmt_num(g['diamonds'])})" for g in list(board)[:n])
    except (TypeError, KeyError):
        return ""


ENV.filters["num"] = _fmt_num
ENV.filters["ranked"] = _fmt_ranked


def _check(ast: nodes.Template, allowed_names: frozenset[str] | None) -> None:
    for node in ast.find_all(_BANNED_NODES):
        kind = type(node).__name__.lower()
        raise TemplateCompileError(f"'{kind}' is not allowed in rule text", getattr(node, "lineno", 1))
    if allowed_names is not None:
        unknown = sorted(meta.find_undeclared_variables(ast) - allowed_names - set(ENV.globals))
        if unknown:
            raise TemplateCompileError(
                f"unknown variable '{unknown[0]}' (known: {', '.join(sorted(allowed_names))})"
            )


def _parse(source: str) -> nodes.Template:
    try:
        return ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateCompileError(exc.message or "syntax error", exc.lineno or 1) from None


def compile_value(source: str, allowed_names: frozenset[str] | None = None) -> Callable[[dict], Any]:
    """Compile a bare expression (as in Ansible's ``when:``) into ``f(context) -> value``."""
    if "{{" in source or "{%" in source:
        raise TemplateCompileError("conditions are bare expressions: drop the {{ }} (write `when: x > 1`)")
    _check(_parse("{{ (" + source + ") }}"), allowed_names)
    try:
        return ENV.compile_expression(source)
    except TemplateSyntaxError as exc:
        raise TemplateCompileError(exc.message or "syntax error", exc.lineno or 1) from None


def compile_condition(source: str, allowed_names: frozenset[str] | None = None) -> Callable[[dict], bool]:
    """Compile a bare expression into ``f(context) -> bool``."""
    expr = compile_value(source, allowed_names)

    def condition(context: dict) -> bool:
        return bool(expr(context))

    return condition


class Text:
    """A compiled text template; plain text without ``{{``/``{%`` skips Jinja entirely."""

    __slots__ = ("source", "_template")

    def __init__(self, source: str, allowed_names: frozenset[str] | None = None) -> None:
        self.source = source
        self._template = None
        if "{" in source:
            _check(_parse(source), allowed_names)
            self._template = ENV.from_string(source)

    @property
    def is_static(self) -> bool:
        return self._template is None

    def render(self, context: dict) -> str:
        if self._template is None:
            return self.source
        out = self._template.render(context)
        return out if len(out) <= MAX_STRING else out[:MAX_STRING]
