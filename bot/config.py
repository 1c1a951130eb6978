"""The config file: every key documented in ``config.example.yaml``, every error as ``file:line:col``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.engine.durations import parse_duration
from bot.engine.yamlfile import Pos, YamlError, YMap, did_you_mean, load_yaml


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Config:
    rules: Path = Path("rules")
    streak_silence_ms: int = 5000
    dedup_window: int = 500_000
    console: bool = True
    jsonl: Path | None = None
    room_id: str = ""


_SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("rules", "room_id", "engine", "sinks"),
    "engine": ("streak_silence", "dedup_window"),
    "sinks": ("console", "jsonl"),
}


def load_config(path: str | Path) -> Config:
    """Read and check a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError([f"{path}:1:1: cannot read: {exc}"]) from None
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None
    problems: list[str] = []
    cfg = Config()
    if doc is None:
        return cfg
    if not isinstance(doc, YMap):
        raise ConfigError([f"{path}:1:1: the config is a mapping of keys (see config.example.yaml)"])
    base = path.parent

    def check_keys(section: YMap, name: str) -> None:
        for key in section:
            if key not in _SCHEMA[name]:
                where = f"{name}." if name else ""
                problems.append(f"{section.key_pos[key]}: unknown key '{where}{key}'{did_you_mean(key, _SCHEMA[name])}")

    def value(section: YMap, key: str, kind: type, what: str) -> Any:
        v = section[key]
        if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
            problems.append(f"{section.value_pos[key]}: '{key}' must be {what}")
            return None
        return v

    def sub(name: str) -> YMap | None:
        if name not in doc:
            return None
        if not isinstance(doc[name], YMap):
            problems.append(f"{doc.value_pos[name]}: '{name}' must be a mapping")
            return None
        check_keys(doc[name], name)
        return doc[name]

    check_keys(doc, "")
    if "rules" in doc and (v := value(doc, "rules", str, "a path to a rule file or folder")) is not None:
        cfg.rules = base / v
    if "room_id" in doc and (v := value(doc, "room_id", str, "text")) is not None:
        cfg.room_id = v
    if (engine := sub("engine")) is not None:
        if "streak_silence" in engine:
            try:
                cfg.streak_silence_ms = parse_duration(engine["streak_silence"])
            except ValueError as exc:
                problems.append(f"{engine.value_pos['streak_silence']}: {exc}")
        if "dedup_window" in engine and (v := value(engine, "dedup_window", int, "a whole number")) is not None:
            cfg.dedup_window = v
    if (sinks := sub("sinks")) is not None:
        if "console" in sinks and (v := value(sinks, "console", bool, "true or false")) is not None:
            cfg.console = v
        if "jsonl" in sinks and sinks["jsonl"] is not None:
            if (v := value(sinks, "jsonl", str, "a file path")) is not None:
                cfg.jsonl = base / v
    if problems:
        raise ConfigError(problems)
    return cfg


__all__ = ["Config", "ConfigError", "Pos", "load_config"]
