"""Conditions and text templates in a hardened Jinja2 sandbox, compiled once at load.

Event fields reach templates only as *data*: a nickname such as ``{{7*7}}`` is printed as
typed. The sandbox blocks attribute tricks; on top of it we bound ``*`` and ``**`` and
refuse loops, macros, includes and imports, which could otherwise hang the bot.
"""

from __future__ import annotations

import difflib
import operator
from typing import Any, Callable, Iterator

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.lexer import TOKEN_EOF
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from bot.engine.yamlfile import did_you_mean

MAX_STRING = 2000  # longest string a template may build with * or render in total
MAX_POWER = 10**12
_BANNED_NODES = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport,
                 nodes.Extends, nodes.Block)


class Fields(dict):
    """What a context value holds, for checking ``a.b.c`` at load: field name → ``Fields``, or
    None when anything below it is fine (a scalar, or free-form such as ``user.vars``).
    ``what`` names it in messages ("chat events")."""

    def __init__(self, fields: dict[str, Fields | None], what: str = "") -> None:
        super().__init__(fields)
        self.what = what


# A context value is a dict, so ``event.get('x')`` and ``stats.items()`` are fine.
_DICT_ATTRS = frozenset(n for n in dir(dict) if not n.startswith("_"))
# ``x.y | default(...)``, ``x.y is defined``: the template guards against a missing field itself.
_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})


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


def _check(ast: nodes.Template, allowed_names: frozenset[str] | None,
           fields: dict[str, Fields | None] | None = None) -> None:
    """Everything that can be refused at load: banned statements, unknown filters and tests,
    unknown names, and (with ``fields``) unknown fields of known values."""
    for node in ast.find_all(_BANNED_NODES):
        kind = type(node).__name__.lower()
        raise TemplateCompileError(f"'{kind}' is not allowed in rule text", getattr(node, "lineno", 1))
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        known = ENV.filters if isinstance(node, nodes.Filter) else ENV.tests
        if node.name not in known:
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            raise TemplateCompileError(f"unknown {what} '{node.name}'" + did_you_mean(node.name, sorted(known)),
                                       node.lineno)
    if allowed_names is not None:
        try:
            undeclared = meta.find_undeclared_variables(ast)
        except TemplateSyntaxError as exc:  # anything else Jinja's compiler refuses
            raise TemplateCompileError(exc.message or "cannot compile", exc.lineno or 1) from None
        unknown = sorted(undeclared - allowed_names - set(ENV.globals))
        if unknown:
            raise TemplateCompileError(
                f"unknown variable '{unknown[0]}' (known: {', '.join(sorted(allowed_names))})",
                _first_use(ast, unknown[0]),
            )
    if fields:
        shadowed = {n.name for n in ast.find_all(nodes.Name) if n.ctx != "load"}
        for path, lineno in _field_paths(ast, guarded=False):
            if path[0] not in shadowed:
                _check_path(path, fields, lineno)


def _first_use(ast: nodes.Template, name: str) -> int:
    return next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), 1)


def _path(node: nodes.Node) -> list[Any] | None:
    """``user.lifetime.diamonds`` (or ``user['lifetime']...``) → ``["user", "lifetime", "diamonds"]``."""
    out: list[Any] = []
    while True:
        if isinstance(node, nodes.Getattr):
            out.append(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            out.append(node.arg.value)
        elif isinstance(node, nodes.Name):
            out.append(node.name)
            return out[::-1]
        else:
            return None
        node = node.node


def _field_paths(node: nodes.Node, guarded: bool) -> Iterator[tuple[list[Any], int]]:
    """Every ``name.field...`` chain read in the template, except those it guards itself."""
    if isinstance(node, (nodes.Getattr, nodes.Getitem)):
        path = _path(node)
        if path is not None:
            if not guarded:
                yield path, node.lineno
            return
    for child in node.iter_child_nodes():
        guard = (child is getattr(node, "node", None)
                 and ((isinstance(node, nodes.Filter) and node.name in _GUARD_FILTERS)
                      or (isinstance(node, nodes.Test) and node.name in _GUARD_TESTS)))
        yield from _field_paths(child, guard)


def _check_path(path: list[Any], fields: dict[str, Fields | None], lineno: int) -> None:
    schema = fields.get(path[0])
    for i, name in enumerate(path[1:], 1):
        if schema is None or not isinstance(name, str):
            return  # free-form below here, or an index such as leaderboard[0]
        if name in schema:
            schema = schema[name]
            continue
        if name in _DICT_ATTRS:
            return
        where = f" for {schema.what}" if schema.what else ""
        close = difflib.get_close_matches(name, sorted(schema), n=1, cutoff=0.6)
        hint = f" (did you mean '{'.'.join(path[:i] + close)}'?)" if close else f" (known: {', '.join(schema)})"
        raise TemplateCompileError(f"unknown field '{'.'.join(path[:i + 1])}'{where}{hint}", lineno)


def _parse(source: str) -> nodes.Template:
    try:
        return ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateCompileError(exc.message or "syntax error", exc.lineno or 1) from None


def _parse_expression(source: str) -> nodes.Template:
    """A bare expression as a template ``{{ <expression> }}``; errors speak of the expression."""
    try:
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if parser.stream.current.type != TOKEN_EOF:
            token = parser.stream.current
            raise TemplateSyntaxError(f"unexpected '{token.value}' after a complete expression "
                                      "(a missing operator, 'and' or 'or'?)", token.lineno)
    except TemplateSyntaxError as exc:
        message = exc.message or "syntax error"
        for early in ("unexpected 'end of template'", "unexpected end of template"):
            if message.startswith(early):
                rest = message[len(early):].strip(" ,.")
                message = f"'{source.strip()}' is incomplete" + (f": {rest}" if rest else "")
        raise TemplateCompileError(message, exc.lineno or 1) from None
    return nodes.Template([nodes.Output([expr], lineno=1)], lineno=1).set_environment(ENV)


def compile_value(source: str, allowed_names: frozenset[str] | None = None,
                  fields: dict[str, Fields | None] | None = None) -> Callable[[dict], Any]:
    """Compile a bare expression (as in Ansible's ``when:``) into ``f(context) -> value``."""
    if "{{" in source or "{%" in source:
        raise TemplateCompileError("conditions are bare expressions: drop the {{ }} (write `when: x > 1`)")
    _check(_parse_expression(source), allowed_names, fields)
    try:
        return ENV.compile_expression(source)
    except TemplateSyntaxError as exc:
        raise TemplateCompileError(exc.message or "syntax error", exc.lineno or 1) from None


def compile_condition(source: str, allowed_names: frozenset[str] | None = None,
                      fields: dict[str, Fields | None] | None = None) -> Callable[[dict], bool]:
    """Compile a bare expression into ``f(context) -> bool``."""
    expr = compile_value(source, allowed_names, fields)

    def condition(context: dict) -> bool:
        return bool(expr(context))

    return condition


class Text:
    """A compiled text template; plain text without ``{{``/``{%`` skips Jinja entirely."""

    __slots__ = ("source", "_template")

    def __init__(self, source: str, allowed_names: frozenset[str] | None = None,
                 fields: dict[str, Fields | None] | None = None) -> None:
        self.source = source
        self._template = None
        if "{" in source:
            _check(_parse(source), allowed_names, fields)
            try:
                self._template = ENV.from_string(source)
            except TemplateSyntaxError as exc:
                raise TemplateCompileError(exc.message or "cannot compile", exc.lineno or 1) from None

    @property
    def is_static(self) -> bool:
        return self._template is None

    def render(self, context: dict) -> str:
        if self._template is None:
            return self.source
        out = self._template.render(context)
        return out if len(out) <= MAX_STRING else out[:MAX_STRING]
