"""Reading a config file: ``load_config`` walks the YAML against ``SCHEMA``, collects every problem
as ``file:line:col: what is wrong`` into one ``ConfigError``, then fills secrets left empty from the
environment (``with_env_secrets``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bot.config.model import Config, ConfigError
from bot.config.redact import ENV_SECRETS
from bot.config.schema import SCHEMA, Schema, _Positioned
from bot.engine.yamlfile import YamlError, YMap, did_you_mean, load_yaml, read_text


def _set(cfg: Config, attrs: tuple[str, ...], value: Any) -> None:
    obj: Any = cfg
    for a in attrs[:-1]:
        obj = getattr(obj, a)
    setattr(obj, attrs[-1], value)


def _get(cfg: Config, attrs: tuple[str, ...]) -> Any:
    obj: Any = cfg
    for a in attrs:
        obj = getattr(obj, a)
    return obj


def _walk(section: YMap, schema: Schema, prefix: str, cfg: Config, base: Path, problems: list[str]) -> None:
    for key, value in section.items():
        spec = schema.get(key)
        name = f"{prefix}{key}"
        if spec is None:
            problems.append(f"{section.key_pos[key]}: unknown key '{name}'{did_you_mean(key, list(schema))}")
        elif isinstance(spec, dict):
            if value is None:
                continue
            if not isinstance(value, YMap):
                problems.append(f"{section.value_pos[key]}: '{name}' must be a mapping")
            else:
                _walk(value, spec, f"{name}.", cfg, base, problems)
        else:
            attrs, parse = spec
            try:
                _set(cfg, attrs, parse(value, base))
            except _Positioned as exc:
                problems += exc.problems
            except ValueError as exc:
                message = str(exc)
                if message.startswith("must"):
                    message = f"'{key}' {message}"
                problems.append(f"{section.value_pos[key]}: {message}")


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    """Read and check a config file; raise ConfigError listing every problem.

    Secrets left empty in the file are taken from the environment (``ENV_SECRETS``)."""
    path = Path(path)
    try:
        doc = load_yaml(read_text(path), str(path))
    except OSError as exc:
        raise ConfigError([f"{path}:1:1: cannot read: {exc}"]) from None
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None
    cfg = Config()
    if doc is not None:
        if not isinstance(doc, YMap):
            raise ConfigError([f"{path}:1:1: the config is a mapping of keys (see config.example.yaml)"])
        problems: list[str] = []
        _walk(doc, SCHEMA, "", cfg, path.parent, problems)
        if problems:
            raise ConfigError(problems)
    return with_env_secrets(cfg, os.environ if env is None else env)


def with_env_secrets(cfg: Config, env: Any) -> Config:
    for sink in cfg.webhooks:
        if not sink.secret and env.get("LIVEBOT_SINK_SECRET"):
            sink.secret = env["LIVEBOT_SINK_SECRET"]
    for attrs, names in ENV_SECRETS:
        if not _get(cfg, attrs):
            for name in names:
                if env.get(name):
                    _set(cfg, attrs, env[name])
                    break
    return cfg
