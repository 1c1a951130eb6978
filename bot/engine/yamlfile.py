"""Read YAML keeping each value's position, so errors can say ``file:line:col``.

Booleans follow YAML 1.2: only ``true``/``false``. PyYAML's YAML 1.1 default turns a bare
``on:`` key (our trigger key), and poll options such as ``yes``/``no``, into booleans.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Pos:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def did_you_mean(word: str, known: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'when'?)`` for a near miss, else `` (known: a, b, c)``."""
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    if not close:
        return f" (known: {', '.join(known)})"
    # difflib's ratio favours the longer word ('exect' -> 'expect'); a typo is as likely one wrong
    # letter ('exact'): every candidate as few edits away as the best one is named.
    edits = [_edits(word, c) for c in close]
    best = [c for c, e in zip(close, edits) if e == min(edits)]
    return " (did you mean " + " or ".join(f"'{c}'" for c in best) + "?)"


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (short words only: keys and names)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


# What ``str.splitlines`` breaks a line at: a problem quoting a value must stay on its line.
_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
MAX_PROBLEM = 500  # characters: a problem quoting a huge value keeps its start and its end


def one_line(text: str) -> str:
    """``text`` as one line of reasonable length: line breaks escaped (``\\n``), the middle of
    a very long text (a huge value quoted in a message) elided."""
    text = _BREAKS.sub(lambda m: repr(m.group())[1:-1], text)
    if len(text) > MAX_PROBLEM:
        text = f"{text[:MAX_PROBLEM - 150]} … {text[-140:]}"
    return text


class YamlError(ValueError):
    def __init__(self, pos: Pos, message: str) -> None:
        message = one_line(message)
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message


def read_text(path) -> str:
    """A YAML file's text. Not UTF-8 (a Latin-1 file, a binary): YamlError at the first bad byte's
    line and column. OSError as it comes."""
    data = open(path, "rb").read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(Pos(str(path), line, col), f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be read "
                        "(save the file as UTF-8)") from None


# Bounds on what one document may build, so a hostile or broken file is refused, never a hang:
# aliases can nest exponentially ("billion laughs") or refer to themselves, and deep nesting
# would exhaust Python's recursion.
MAX_NESTING = 100  # levels of mappings and lists
MAX_VALUES = 100_000  # values reached again through aliases (a file's own values are bounded by its size)


class _TooMuch(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self.max_items: tuple[int, str] | None = None  # (most items of a top-level list, the message past it)
        self.values = 0  # values converted again through an alias (see MAX_VALUES)
        self.converted: set[int] = set()  # the nodes converted once

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _TooMuch(self.peek_event().start_mark, f"YAML: nested more than {MAX_NESTING} levels deep")
            if self.max_items is not None and self._depth == 3 and isinstance(index, int) \
                    and index >= self.max_items[0]:  # an item of a top-level list, past the limit: stop reading
                raise _TooMuch(self.peek_event().start_mark, self.max_items[1])
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Resolve ``<<`` merge keys as PyYAML does (own keys win, then the first merged mapping),
        keeping one entry per key: merges of merges cannot grow exponentially."""
        merge: list[tuple[yaml.Node, yaml.Node]] = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag == "tag:yaml.org,2002:merge":
                del node.value[index]
                subnodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for subnode in reversed(subnodes):  # merged last wins: the first listed
                    if not isinstance(subnode, yaml.MappingNode):
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"expected a mapping or list of mappings for merging, but found {subnode.id}",
                            subnode.start_mark)
                    self.flatten_mapping(subnode)
                    merge.extend(subnode.value)
            elif key_node.tag == "tag:yaml.org,2002:value":
                key_node.tag = "tag:yaml.org,2002:str"
                index += 1
            else:
                index += 1
        if merge:
            pairs: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
            for key_node, value_node in merge + node.value:  # a dict: first place, last value
                key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                pairs[key] = (key_node, value_node)
            node.value = list(pairs.values())


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class YMap(dict):
    """A mapping that remembers where it, each key and each value stood."""

    pos: Pos
    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]


class YList(list):
    """A sequence that remembers where it and each item stood."""

    pos: Pos
    item_pos: list[Pos]


def _pos(file: str, node: yaml.Node) -> Pos:
    return Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)


_LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")


def _value_pos(file: str, node: yaml.Node, lines: list[str]) -> Pos:
    """Where a value's text starts: for a block scalar (``say: |``), its first content line, so
    that line N of the text is line ``pos.line + N - 1`` of the file."""
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") and node.value:
        first = node.start_mark.line + 1  # 0-based: the line after the | or > indicator
        indent = next((len(line) - len(line.lstrip(" ")) for line in lines[first:node.end_mark.line + 1]
                       if line.strip()), node.start_mark.column)
        return Pos(file, first + 1, indent + 1)
    return _pos(file, node)


def _convert(file: str, node: yaml.Node, loader: _Loader, lines: list[str], depth: int = 1) -> Any:
    if id(node) in loader.converted:  # an alias: the same node converted again
        loader.values += 1
        if loader.values > MAX_VALUES:
            raise YamlError(_pos(file, node), f"YAML: aliases expand to more than {MAX_VALUES:,} values "
                                              "(an alias of an alias of ...?)")
    else:
        loader.converted.add(id(node))
    if depth > MAX_NESTING:
        raise YamlError(_pos(file, node), f"YAML: nested more than {MAX_NESTING} levels deep "
                                          "(an alias used inside itself?)")
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # a list or mapping as a key: {[a]: 1}, {{}: 1}
                raise YamlError(_pos(file, key_node), "keys must be text, not a list or mapping")
            if key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise YamlError(_pos(file, key_node), f"duplicate key '{key_node.value}'")
                seen.add(key_node.value)
        loader.flatten_mapping(node)  # resolves << merge keys (anchors as snippets); later keys win
        out = YMap()
        out.pos, out.key_pos, out.value_pos = _pos(file, node), {}, {}
        for key_node, value_node in node.value:
            key = _convert(file, key_node, loader, lines, depth + 1)
            if not isinstance(key, str):
                raise YamlError(_pos(file, key_node), f"keys must be text, got {str(key)[:60]!r}")
            out[key] = _convert(file, value_node, loader, lines, depth + 1)
            out.key_pos[key] = _pos(file, key_node)
            out.value_pos[key] = _value_pos(file, value_node, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = YList(_convert(file, item, loader, lines, depth + 1) for item in node.value)
        items.pos, items.item_pos = _pos(file, node), [_value_pos(file, item, lines) for item in node.value]
        return items
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:  # an explicit tag on a bad value
        raise YamlError(_pos(file, node), f"YAML: cannot read {str(node.value)[:40]!r} as {node.tag}: "
                                          f"{type(exc).__name__}") from None


def load_yaml(text: str, file: str, max_items: tuple[int, str] | None = None) -> Any:
    """Parse one YAML document into plain values plus ``YMap``/``YList`` positions. With
    ``max_items`` (n, message): a top-level list (``rules:``) with more than n items is refused
    at its item n + 1 as soon as it is read there, not after reading the rest."""
    loader = None
    try:
        loader = _Loader(text)  # reads the whole text: refuses control characters such as NUL
        loader.max_items = max_items
        node = loader.get_single_node()
        if node is None:
            return None
        return _convert(file, node, loader, _LINE_BREAK.split(text))
    except _TooMuch as exc:
        raise YamlError(Pos(file, exc.mark.line + 1, exc.mark.column + 1), exc.message) from None
    except yaml.reader.ReaderError as exc:
        at = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, at) + 1
        col = at - text.rfind("\n", 0, at)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        why = ("control characters such as NUL cannot appear in YAML"
               if exc.reason == "special characters are not allowed" else exc.reason)
        raise YamlError(Pos(file, line, col), f"YAML: character {char} is not allowed: {why}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 1, 1)
        raise YamlError(pos, f"YAML syntax: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlError(Pos(file, 1, 1), f"YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
