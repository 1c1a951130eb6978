"""Conditions and text templates in a hardened Jinja2 sandbox, compiled once at load.

Event fields reach templates only as *data*: a nickname such as ``{{7*7}}`` is printed as
typed. The sandbox blocks attribute tricks; on top of it we refuse loops, macros, includes and
imports, and bound what one operation may build (``*``, ``**``, ``+``, ``~``, ``%``, widths in
``center``/``format``, ``replace``, ``join``, ``range``...: see ``_Environment``), which could
otherwise hang the bot or exhaust its memory. ``random`` is not a filter: replays must repeat.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import inspect
import math
import operator
import re
import string
from typing import Any, Callable, Iterator

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.environment import TemplateExpression
from jinja2.lexer import TOKEN_EOF
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from bot.integrations.commands import rcon_quote
from bot.engine.yamlfile import did_you_mean
from bot.events.model import MAX_INT

MAX_STRING = 2000  # longest string a template may build with * or render in total
MAX_POWER = 10**12
_BANNED_NODES = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport,
                 nodes.Extends, nodes.Block)


# ``livebot validate`` checks every template as a load does, without generating Python code for
# them (most of a load's time): ``with check_only(): load_rules(...)``. The rule set it loads then
# cannot run (its templates raise CheckOnly); nothing else sets it.
_CHECK_ONLY = contextvars.ContextVar("livebot_check_only", default=False)


class CheckOnly(RuntimeError):
    """A template loaded by ``check_only`` was run."""


@contextlib.contextmanager
def check_only() -> Iterator[None]:
    token = _CHECK_ONLY.set(True)
    try:
        yield
    finally:
        _CHECK_ONLY.reset(token)


def _unrunnable(*_: Any) -> Any:
    raise CheckOnly("loaded with check_only(): this rule set is for checking, not running")


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
        self.problems: list[tuple[str, int]] = [(message, lineno)]  # every problem: (message, lineno)

    @classmethod
    def many(cls, problems: list[tuple[str, int]]) -> "TemplateCompileError":
        exc = cls(*problems[0])
        exc.problems = list(problems)
        return exc


MAX_VALUE = 20_000  # the longest text, list or mapping one operation in a template may build
MAX_RANGE = 1000  # range() in a template (loops are refused; this bounds map/join over a range)
MAX_INT_BITS = 4096  # the largest whole number a template may compute (about 1,230 digits)


def _bounded(value: Any) -> Any:
    """``value``, unless it is bigger than a template may build (SecurityError)."""
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_VALUE:
        raise SecurityError(f"value too long ({len(value):,}; the limit is {MAX_VALUE:,})")
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise SecurityError("number too large")
    return value


def _width(value: Any, what: str = "width") -> None:
    if isinstance(value, str):
        value = len(value)
    if isinstance(value, (int, float)) and value > MAX_STRING:
        raise SecurityError(f"{what} too large ({value}; the limit is {MAX_STRING})")


def _replaced_size(s: Any, old: Any, new: Any, count: Any = None) -> None:
    """Refuse a ``replace`` whose result would be too long, before it is built."""
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        hits = s.count(old) if old else len(s) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        if len(s) + hits * (len(new) - len(old)) > MAX_VALUE:
            raise SecurityError(f"replaced text too long (the limit is {MAX_VALUE:,})")


def _joined(items: Any, sep: Any) -> list[Any]:
    """The items to join, read one by one; refused once the result would be too long."""
    out, size, step = [], 0, len(sep) if isinstance(sep, str) else 0
    for item in items:
        out.append(item)
        size += (len(item) if isinstance(item, str) else 1) + step
        if size > MAX_VALUE or len(out) > MAX_VALUE:
            raise SecurityError(f"joined text too long (the limit is {MAX_VALUE:,})")
    return out


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf_widths(fmt: Any) -> None:
    """``'%*s' % ...`` and widths or precisions over MAX_STRING build huge texts: refused."""
    if isinstance(fmt, str) and "%" in fmt:
        for width, precision in _PRINTF.findall(fmt):
            for n in (width, precision):
                if n == "*":
                    raise SecurityError("'*' widths are not allowed in % formats")
                _width(int(n) if n else 0)


def _format_widths(fmt: Any) -> None:
    """The same for ``str.format``: numeric widths bounded, widths taken from arguments refused."""
    if isinstance(fmt, str) and "{" in fmt:
        for _, _, spec, _ in string.Formatter().parse(fmt):
            if spec:
                if "{" in spec:
                    raise SecurityError("nested fields are not allowed in format specs")
                for n in re.findall(r"\d+", spec):
                    _width(int(n))


_STR_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_call(obj: Any, args: tuple, kwargs: dict) -> tuple:
    """Refuse a call that would build something huge (before it is built); returns the args,
    with an iterable to join read out (so its size is known)."""
    target = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    wrapped = getattr(obj, "__wrapped__", None)  # str.format / format_map, wrapped by the sandbox
    if wrapped is not None:
        target, name = getattr(wrapped, "__self__", None), getattr(wrapped, "__name__", "")
    if not isinstance(target, str):
        return args
    if name in _STR_WIDTH_METHODS:
        _width(args[0] if args else kwargs.get("width", 0))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and len(target) + target.count("\t") * size > MAX_VALUE:
            raise SecurityError(f"expanded text too long (the limit is {MAX_VALUE:,})")
    elif name == "replace" and len(args) >= 2:
        _replaced_size(target, *args[:3])
    elif name == "join" and args:
        return (_joined(args[0], target), *args[1:])
    elif name in ("format", "format_map"):
        _format_widths(target)
    return args


def _guard_filter(name: str, f: Callable) -> Callable:
    """``f`` with its result bounded, and for filters that can build huge values from small
    arguments (``center(10**9)``), those arguments checked first."""
    signature = inspect.signature(f)  # of the sync filter, for Jinja's async variants
    passes = getattr(f, "jinja_pass_arg", None) is not None  # called with the environment or context first
    named = next(iter(signature.parameters), "") in ("environment", "eval_ctx", "context")
    drop, skip = (0, 1) if passes and named else (1, 0) if passes else (0, 0)

    @functools.wraps(f)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name in _FILTER_CHECKS:
            try:
                bound = signature.bind(*args[drop:], **kwargs)
            except TypeError:
                pass  # the filter itself will say what is wrong
            else:
                bound.apply_defaults()
                a = dict(list(bound.arguments.items())[skip:])
                _FILTER_CHECKS[name](a)
                if name == "join":
                    bound.arguments["value"] = _joined(a["value"], a["d"])
                    args, kwargs = (*args[:drop], *bound.args), bound.kwargs
        return _bounded(f(*args, **kwargs))

    return guarded


def _indent_check(a: dict) -> None:
    _width(a["width"])
    s, width = a["s"], a["width"]
    if isinstance(s, str):
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if len(s) + (s.count("\n") + 1) * pad > MAX_VALUE:
            raise SecurityError(f"indented text too long (the limit is {MAX_VALUE:,})")


def _wordwrap_check(a: dict) -> None:
    s, width, wrap = a["s"], a["width"], a["wrapstring"]
    if isinstance(s, str) and isinstance(width, int) and isinstance(wrap, (str, type(None))):
        breaks = len(s) // max(width, 1) + s.count("\n") + 1
        if len(s) + breaks * len(wrap or "\n") > MAX_VALUE:
            raise SecurityError(f"wrapped text too long (the limit is {MAX_VALUE:,})")


_FILTER_CHECKS: dict[str, Callable[[dict], None]] = {
    "center": lambda a: _width(a["width"]),
    "indent": _indent_check,
    "wordwrap": _wordwrap_check,
    "replace": lambda a: _replaced_size(a["s"], a["old"], a["new"], a["count"]),
    "join": lambda a: None,  # its items are read out in _guard_filter
    "format": lambda a: _printf_widths(a["value"]),
    "batch": lambda a: _width(a["linecount"], "batch size"),
    "slice": lambda a: _width(a["slices"], "slice count"),
}


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range too long ({len(r):,}; the limit is {MAX_RANGE:,})")
    return r


class _CodeGenerator(CodeGenerator):
    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        """``a ~ b`` through ``environment.concat``, which bounds the result."""
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no attribute tricks, no mutation), and on top of it: no operation
    may build a text, list or number bigger than MAX_VALUE / MAX_INT_BITS, checked before it is
    built where that is possible (``*``, ``+``, ``~``, ``%``, ``center``, ``replace``, ``join``...),
    so a template can neither hang the bot nor exhaust its memory."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(left, (int, float)) and isinstance(right, (int, float)):
                if abs(right) > 64 or abs(left) > MAX_POWER:
                    raise SecurityError("power too large")
            return operator.pow(left, right)
        if operator_ == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                if len(left) + len(right) > MAX_VALUE:
                    raise SecurityError(f"value too long (the limit is {MAX_VALUE:,})")
            return operator.add(left, right)
        if operator_ == "%":
            _printf_widths(left)
            return _bounded(operator.mod(left, right))
        if isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple)):
            seq, times = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(times, int) and len(seq) * max(times, 0) > MAX_STRING:
                raise SecurityError("repeated sequence too long")
        elif type(left) is int and type(right) is int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError("number too large")
        return operator.mul(left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        args = _check_call(obj, args, kwargs)
        return _bounded(super().call(context, obj, *args, **kwargs))

    @staticmethod
    def concat(items: tuple) -> str:
        parts = [str(item) for item in items]
        if sum(map(len, parts)) > MAX_VALUE:
            raise SecurityError(f"joined text too long (the limit is {MAX_VALUE:,})")
        return "".join(parts)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
ENV.globals = {"range": _range, "dict": dict, "min": min, "max": max, "abs": abs}
# ``random`` would make a replay differ from the live run (and from the next replay)
ENV.filters = {name: _guard_filter(name, f) for name, f in ENV.filters.items() if name != "random"}


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


ENV.filters["num"] = _guard_filter("num", _fmt_num)
ENV.filters["ranked"] = _guard_filter("ranked", _fmt_ranked)
ENV.filters["rcon_quote"] = _guard_filter("rcon_quote", rcon_quote)  # viewer text into a game command


def _check(ast: nodes.Template, allowed_names: frozenset[str] | None,
           fields: dict[str, Fields | None] | None = None) -> None:
    """Everything that can be refused at load, every problem at once (TemplateCompileError with
    ``problems``): banned statements, unknown filters and tests, unknown names, private attributes
    (``''.__class__``), constant operations bigger than a template may build (``'a' * 10**8``),
    and (with ``fields``) unknown fields of known values."""
    found: list[tuple[str, int]] = []
    every = list(ast.find_all(nodes.Node))  # one walk (each find_all walks the whole tree again)
    names = [n for n in every if isinstance(n, nodes.Name)]
    for node in every:
        if isinstance(node, _BANNED_NODES):
            kind = type(node).__name__.lower()
            found.append((f"'{kind}' is not allowed in rule text", getattr(node, "lineno", 1)))
        elif isinstance(node, (nodes.Filter, nodes.Test)) and node.name not in (
                known := ENV.filters if isinstance(node, nodes.Filter) else ENV.tests):
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            found.append((f"unknown {what} '{node.name}'" + did_you_mean(node.name, sorted(known)), node.lineno))
        if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Filter)) and (attr := _private(node)) is not None:
            inner, first = node.node, True
            while isinstance(inner, (nodes.Getattr, nodes.Getitem, nodes.Filter)):
                if _private(inner) is not None:
                    first = False  # the first private name on a chain says it
                inner = inner.node
            if first:
                found.append((f"'{attr}' is not allowed: names starting with '_' are private", node.lineno))
        elif isinstance(node, (nodes.BinExpr, nodes.Concat)):
            try:
                _const(node)
            except SecurityError as exc:
                found.append((f"{exc} (in a constant expression)", node.lineno))
            except Exception:  # not a constant (or an error the run would give): nothing to say at load
                pass
    unknown: set[str] = set()
    if allowed_names is not None:
        # (not meta.find_undeclared_variables: that generates the code once more, the most costly
        # step of a load; loops and macros are refused, so a name is bound only by ``set``)
        undeclared = {n.name for n in names if n.ctx == "load"} - {n.name for n in names if n.ctx != "load"}
        unknown = undeclared - allowed_names - set(ENV.globals)
        for name in sorted(unknown, key=lambda n: (_first_use(ast, n), n)):
            found.append((f"unknown variable '{name}' (known: {', '.join(sorted(allowed_names))})",
                          _first_use(ast, name)))
    if fields:
        shadowed = {n.name for n in names if n.ctx != "load"}
        for path, lineno in _field_paths(ast, guarded=False):
            if path[0] not in shadowed and path[0] not in unknown and not any(
                    isinstance(p, str) and p.startswith("_") for p in path):  # (said above)
                try:
                    _check_path(path, fields, lineno)
                except TemplateCompileError as exc:
                    found.append((str(exc), exc.lineno))
    if found:
        seen: set[tuple[str, int]] = set()
        unique = [f for f in found if not (f in seen or seen.add(f))]
        raise TemplateCompileError.many(unique)


def _private(node: nodes.Node) -> str | None:
    """The private name a node reads (``x.__class__``, ``x['_y']``, ``x|attr('__dict__')``), if any."""
    if isinstance(node, nodes.Getattr):
        attr = node.attr
    elif isinstance(node, nodes.Getitem):
        attr = node.arg.value if isinstance(node.arg, nodes.Const) else None
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        attr = node.args[0].value if isinstance(node.args[0], nodes.Const) else None
    else:
        return None
    return attr if isinstance(attr, str) and attr.startswith("_") else None


_CONST_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
              "//": operator.floordiv, "%": operator.mod, "**": operator.pow}


def _const(node: nodes.Node) -> Any:
    """The value of a constant expression, computed bottom-up with the sandbox's bounds (so
    nothing big is ever built here); raises SecurityError when the run would, another exception
    when it is not constant."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.BinExpr):
        left, right = _const(node.left), _const(node.right)
        if node.operator in ENV.intercepted_binops:
            return ENV.call_binop(None, node.operator, left, right)
        return _bounded(_CONST_OPS[node.operator](left, right))
    if isinstance(node, nodes.Concat):
        return ENV.concat(tuple(_const(n) for n in node.nodes))
    if isinstance(node, nodes.Neg):
        return -_const(node.node)
    if isinstance(node, nodes.Pos):
        return +_const(node.node)
    raise LookupError("not constant")


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
    ast = _parse_expression(source)
    _check(ast, allowed_names, fields)
    # what ``ENV.compile_expression(source)`` builds, from the tree already parsed and checked
    if _CHECK_ONLY.get():
        return _unrunnable
    assign = nodes.Assign(nodes.Name("result", "store"), ast.body[0].nodes[0], lineno=1)
    try:
        return TemplateExpression(ENV.from_string(nodes.Template([assign], lineno=1).set_environment(ENV)), True)
    except TemplateSyntaxError as exc:
        raise TemplateCompileError(exc.message or "syntax error", exc.lineno or 1) from None


def compile_condition(source: str, allowed_names: frozenset[str] | None = None,
                      fields: dict[str, Fields | None] | None = None) -> Callable[[dict], bool]:
    """Compile a bare expression into ``f(context) -> bool``."""
    expr = compile_value(source, allowed_names, fields)

    def condition(context: dict) -> bool:
        return bool(expr(context))

    return condition


class _Unrunnable:
    render = staticmethod(_unrunnable)


_UNRUNNABLE = _Unrunnable()


class Text:
    """A compiled text template; plain text without ``{{``/``{%`` skips Jinja entirely."""

    __slots__ = ("source", "_template")

    def __init__(self, source: str, allowed_names: frozenset[str] | None = None,
                 fields: dict[str, Fields | None] | None = None) -> None:
        self.source = source
        self._template = None
        if "{" in source:
            ast = _parse(source)
            _check(ast, allowed_names, fields)
            if _CHECK_ONLY.get():
                self._template = _UNRUNNABLE
                return
            try:
                self._template = ENV.from_string(ast)  # (the checked tree: parsed once)
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


MAX_SAFE_INT = MAX_INT  # beyond this, JSON readers (JavaScript) lose digits: such a number stays text


def _native(value: Any) -> Any:
    """The value of a ``data:`` expression as data: an int, float or bool that JSON carries
    exactly (no NaN or infinity, ints within ±MAX_SAFE_INT) and None stay themselves; anything
    else is the text ``{{ value }}`` renders to, exactly as a template prints it. The type comes
    from the value: a nickname "123" is a str, so it stays the text "123"."""
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is int and -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    if kind is float and math.isfinite(value):
        return value
    out = ENV.concat((value,))  # as a template prints it (Undefined raises here, as it does there)
    return out if len(out) <= MAX_STRING else out[:MAX_STRING]


class Value(Text):
    """A ``data:`` value. Like ``Text``, except that a string that is exactly one expression block,
    ``"{{ expr }}"``, keeps the expression's number, true/false or none (see ``_native``) instead
    of printing it. Compiled once, in the same sandbox and with the same checks as any template."""

    __slots__ = ("_expr",)

    def __init__(self, source: str, allowed_names: frozenset[str] | None = None,
                 fields: dict[str, Fields | None] | None = None) -> None:
        super().__init__(source, allowed_names, fields)  # every check a text gets
        self._expr: TemplateExpression | None = None
        if self._template is not None and self._template is not _UNRUNNABLE and source.startswith("{{") and source.endswith("}}"):
            body = _parse(source).body
            if (len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1
                    and not isinstance(body[0].nodes[0], nodes.TemplateData)):
                # what ``ENV.compile_expression`` builds, from the checked expression node
                assign = nodes.Assign(nodes.Name("result", "store"), body[0].nodes[0], lineno=1)
                tree = nodes.Template([assign], lineno=1).set_environment(ENV)
                try:
                    self._expr = TemplateExpression(ENV.from_string(tree), False)
                except TemplateSyntaxError as exc:
                    raise TemplateCompileError(exc.message or "cannot compile", exc.lineno or 1) from None

    @property
    def is_expression(self) -> bool:
        return self._expr is not None

    def value(self, context: dict) -> Any:
        """The rendered value: a native number, bool or None for a lone ``{{ expr }}``, else text."""
        if self._expr is None:
            return self.render(context)
        return _native(self._expr(context))
