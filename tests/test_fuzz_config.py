"""Fuzzing the config loader: random text, random YAML over the real keys, and the shipped
config files mutated line by line.

Property: ``load_config`` returns a Config (whose redacted form is plain, writable data) or raises
``ConfigError`` whose every problem is one line ``file:line:col: message``; never another
exception, never a hang. ``LIVEBOT_FUZZ_EXAMPLES=20000`` runs each target that many times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from bot.config import SCHEMA, Config, ConfigError, load_config
from fuzzing import PROBLEM, fuzz, mutate_lines

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "config.example.yaml",
                                                           ROOT / "examples" / "docker-config.yaml")}


def check_config(folder: Path, text: str) -> Config | None:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path, env={})
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), repr(problem)
        return None
    orjson.dumps(cfg.redacted(), default=str)  # what the status page shows
    return cfg


def _keys(schema: dict, prefix: str = "") -> list[str]:
    out = []
    for key, spec in schema.items():
        out.append(key)
        if isinstance(spec, dict):
            out += _keys(spec, f"{prefix}{key}.")
    return out


KEYS = sorted(set(_keys(SCHEMA)))
SCALAR = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
          | st.text(max_size=20) | st.sampled_from([
              "5s", "1h30m", "-1s", "1" * 400 + "s", "ws://localhost:21213", "wss://x?apiKey=k", "http://h/p",
              "redis://127.0.0.1:6379/0", "websocket", "tiktok", "webhook", "/events", "events", "0.0.0.0", "::1",
              "@creator", "room-1", "", "a\nb", "rules"]))


def _section(schema: dict, depth: int = 0) -> st.SearchStrategy:
    """A random mapping over a schema level: known keys (sometimes nested right), a few unknown ones."""
    known = {k: (_section(v, depth + 1) if isinstance(v, dict) and depth < 3 else SCALAR) for k, v in schema.items()}
    values = st.one_of(*(st.tuples(st.just(k), s | SCALAR) for k, s in known.items()),
                       st.tuples(st.sampled_from(KEYS) | st.text(max_size=6), SCALAR))
    return st.lists(values, max_size=5).map(dict)


ROOMS = st.lists(st.dictionaries(st.sampled_from(["room", "type", "url", "unique_id", "port", "path", "x"]), SCALAR,
                                 max_size=4) | SCALAR, max_size=3)
SINKS = st.lists(st.dictionaries(st.sampled_from(["url", "name", "secret", "max_batch", "timeout", "x"]), SCALAR,
                                 max_size=4) | SCALAR, max_size=3)


def dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


@fuzz(300)
@given(st.text(max_size=300))
@example("source: &a [*a]")
@example("[" * 100_000)
@example("!!int x: 1")
@example("engine: {streak_silence: .inf}")
@example(f"engine: {{streak_silence: {'1' * 400}s}}")
@example('room_id: "a\\nb"\nsource: {type: "x\\ny"}')
def test_random_text(tmp_path_factory, text):
    check_config(tmp_path_factory.mktemp("cfg"), text)


@fuzz(300)
@given(_section(SCHEMA), ROOMS, SINKS)
@example({"sinks": {"webhooks": [{"url": "http://h", "timeout": float("inf")}]}}, [], [])
@example({"redis": {"lease": "1" * 400 + "d"}}, [], [])
@example({"record": {"flush_every": 1.844674407370955e+16}}, [], [])  # found by the 20,000-example run
def test_random_documents_over_the_real_keys(tmp_path_factory, doc, rooms, sinks):
    if rooms:
        doc.setdefault("ingest", {})
        if isinstance(doc["ingest"], dict):
            doc["ingest"]["rooms"] = rooms
    if sinks:
        doc.setdefault("sinks", {})
        if isinstance(doc["sinks"], dict):
            doc["sinks"]["webhooks"] = sinks
    check_config(tmp_path_factory.mktemp("cfg"), dump(doc))


@st.composite
def mutated_file(draw: Any) -> str:
    tokens = st.sampled_from([": ", "- ", "{", "}", "[", "]", "&a ", "*a", "!!int ", "!!binary ", "\t", "\x00", "'",
                              '"', "#", "null", "true", "-1", "1e400", "0x10", "5s", "wss://x?apiKey=SECRET"])
    return mutate_lines(draw, SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))],
                        ["delete", "duplicate", "indent", "dedent", "insert", "uncomment", "truncate"], tokens)


@fuzz(300)
@given(mutated_file())
def test_mutated_shipped_configs(tmp_path_factory, text):
    check_config(tmp_path_factory.mktemp("cfg"), text)


def test_the_shipped_configs_load(tmp_path):
    for text in SHIPPED.values():
        assert check_config(tmp_path, text) is not None
