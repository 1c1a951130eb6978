"""Game commands from rules, kept safe: viewer text enters a command only quoted.

``rcon_quote`` (a template filter) turns any value into one JSON string literal in which every
character that could end a string or start a structure in a command (quotes, backslash, braces,
brackets, ``§`` formatting, control characters...) is written as a ``\\uXXXX`` escape; letters,
digits, spaces and ``_-.,!?:`` stay as they are. It is a valid JSON text component (``tellraw``)
and it cannot break out of a quoted string or an SNBT value. Long values are cut.

``check_command_template``: an ``rcon`` action's text (the command) may not put anything into the
command but literal text and expressions whose last filter is ``rcon_quote`` (or ``int``: a number
cannot carry text), without arguments (``int``'s default comes back as it is for a non-number), and
no ``{% filter %}`` block around it (``replace`` could turn an escaped quote back into a quote). The loader refuses any other rule with ``file:line:col``.

``command_words``: the words that name commands in a command line: the first, and for ``execute``
each word after a ``run`` (``execute at @r run summon ...`` runs ``summon``) — each must be in
the config's allow-list. A command holding ``;`` (Source-engine consoles run each part on its own)
or a control character is refused whole.
"""

from __future__ import annotations

import re
from typing import Any

COMMAND_KINDS = frozenset({"rcon"})
SAFE_FILTERS = frozenset({"rcon_quote", "int"})
MAX_QUOTED = 64  # characters of viewer text kept in one quoted value
MAX_COMMAND = 1400  # bytes: Minecraft takes 1446 per RCON packet
_SAFE_CHAR = re.compile(r"[\w ,.!?:-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def rcon_quote(value: Any) -> str:
    """``value`` as one safe, quoted string (see the module doc)."""
    text = _CONTROL.sub("", "" if value is None else str(value))[:MAX_QUOTED]
    return '"' + "".join(ch if _SAFE_CHAR.fullmatch(ch) else _escape(ch) for ch in text) + '"'


def check_command_template(source: str) -> list[tuple[int, str]]:
    """Problems (line in the text, message) of a command template that could put unquoted values
    into the command."""
    from jinja2 import nodes

    from bot.engine.templates import ENV

    if "{{" not in source and "{%" not in source:
        return []
    try:
        tree = ENV.parse(source)
    except Exception:  # the loader reports a template that does not parse
        return []
    problems = [(block.lineno, "a filter block may not wrap an rcon command: it could undo the quoting of "
                               "viewer text") for block in tree.find_all(nodes.FilterBlock)]
    for output in tree.find_all(nodes.Output):
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                continue
            if (isinstance(node, nodes.Filter) and node.name in SAFE_FILTERS and not node.args and not node.kwargs
                    and node.dyn_args is None and node.dyn_kwargs is None):
                continue  # no arguments: ``int(user.nickname)`` gives back its default, raw, for a non-number
            problems.append((node.lineno, "a value in an rcon command must go through the quoting filter: "
                                          "write {{ ... | rcon_quote }} (or | int for a number); viewer "
                                          "text never enters a command raw"))
    return problems


def command_words(command: str) -> list[str]:
    """The command names in ``command``: its first word, and each word after ``run``."""
    words = command.strip().split()
    if not words:
        return []
    names = [words[0]]
    names += [words[i + 1] for i, w in enumerate(words[:-1]) if w.lower() == "run"]
    return [n.lstrip("/").lower() for n in names]


def refuse_reason(command: str, allow: frozenset[str] | set[str]) -> str | None:
    """Why ``command`` may not run (None: it may)."""
    if not command.strip():
        return "the command is empty"
    if _CONTROL.search(command):
        return "the command holds a line break or another control character"
    if ";" in command:  # Source-engine consoles run each part as a command: only the first would be checked
        return "the command holds ';' (it separates commands in Source games; viewer text | rcon_quote never does)"
    if len(command.encode("utf-8")) > MAX_COMMAND:
        return f"the command is longer than {MAX_COMMAND} bytes"
    denied = [w for w in command_words(command) if w not in allow]
    if denied:
        return f"'{denied[0]}' is not in integrations.rcon.allow"
    return None
