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
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


class YamlError(ValueError):
    def __init__(self, pos: Pos, message: str) -> None:
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message


class _Loader(yaml.SafeLoader):
    pass


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


def _convert(file: str, node: yaml.Node, loader: _Loader, lines: list[str]) -> Any:
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise YamlError(_pos(file, key_node), f"duplicate key '{key_node.value}'")
                seen.add(key_node.value)
        loader.flatten_mapping(node)  # resolves << merge keys (anchors as snippets); later keys win
        out = YMap()
        out.pos, out.key_pos, out.value_pos = _pos(file, node), {}, {}
        for key_node, value_node in node.value:
            key = _convert(file, key_node, loader, lines)
            if not isinstance(key, str):
                raise YamlError(_pos(file, key_node), f"keys must be text, got {key!r}")
            out[key] = _convert(file, value_node, loader, lines)
            out.key_pos[key] = _pos(file, key_node)
            out.value_pos[key] = _value_pos(file, value_node, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = YList(_convert(file, item, loader, lines) for item in node.value)
        items.pos, items.item_pos = _pos(file, node), [_value_pos(file, item, lines) for item in node.value]
        return items
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, file: str) -> Any:
    """Parse one YAML document into plain values plus ``YMap``/``YList`` positions."""
    loader = None
    try:
        loader = _Loader(text)  # reads the whole text: refuses control characters such as NUL
        node = loader.get_single_node()
        if node is None:
            return None
        return _convert(file, node, loader, _LINE_BREAK.split(text))
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
