"""The config's value parsers: ``(value, config folder) -> parsed value``, or ``ValueError`` with a
message that starts with "must" (``load_config`` puts the key and its ``file:line:col`` in front).

Text, true/false, counts, ports, rates, durations, paths, ws:// and redis:// URLs, choices, and the
``Parser`` and ``Schema`` types ``bot.config.schema`` is written in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from bot.engine.durations import parse_duration
from bot.engine.yamlfile import did_you_mean
from bot.events.model import MAX_INT


# -- parsers: (value, config folder) -> parsed value, or ValueError with a message -----------------

Parser = Callable[[Any, Path], Any]


def _text(v: Any, _: Path) -> str:
    if not isinstance(v, str):
        raise ValueError("must be text")
    return v


def _optional_text(v: Any, base: Path) -> str | None:
    return None if v is None else _text(v, base)


def _bool(v: Any, _: Path) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _count(v: Any, _: Path) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("must be a whole number")
    return v


def _port(v: Any, base: Path) -> int:
    if _count(v, base) > 65535:
        raise ValueError("must be a port number (0-65535)")
    return v


def _rate(v: Any, _: Path) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError("must be a number of at least 0, such as 0.005")
    return float(v)


MAX_DURATION_MS = MAX_INT  # what JSON readers take as a whole number (some 285,000 years)


def _duration(v: Any, _: Path) -> int:
    try:
        ms = parse_duration(v)
    except OverflowError:  # .inf, or more digits than a float holds
        ms = MAX_DURATION_MS + 1
    if ms > MAX_DURATION_MS:
        raise ValueError("must be a duration such as 30s or 10m, not that long")
    return ms


def _path(v: Any, base: Path) -> Path:
    return base / _text(v, base)


def _optional_path(v: Any, base: Path) -> Path | None:
    return None if v is None else _path(v, base)


def _url(v: Any, base: Path) -> str:
    url = _text(v, base)
    if not url.startswith(("ws://", "wss://")):
        raise ValueError("must be a ws:// or wss:// URL")
    try:  # what the websocket client would fail on at connect time (never quoted: it may hold a key)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("must be a ws:// or wss:// URL with a valid host and port") from None
    if not parts.hostname:
        raise ValueError("must be a ws:// or wss:// URL with a host")
    return url


def _http_path(v: Any, base: Path) -> str:
    p = _text(v, base)
    if not p.startswith("/"):
        raise ValueError("must start with /")
    return p


def _choice(*options: str) -> Parser:
    def parse(v: Any, base: Path) -> str | None:
        if v is None:
            return None
        if v not in options:
            raise ValueError(f"must be one of: {', '.join(options)}{did_you_mean(str(v), options) if isinstance(v, str) else ''}")
        return v
    return parse


def _volume(v: Any, base: Path) -> float:
    if _rate(v, base) > 1:
        raise ValueError("must be a number from 0 to 1, such as 0.8")
    return float(v)


def _positive(v: Any, base: Path) -> int:
    if _count(v, base) < 1:
        raise ValueError("must be a whole number of at least 1")
    return v


def _redis_url(v: Any, base: Path) -> str:
    url = _text(v, base)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return url


def _optional_redis_url(v: Any, base: Path) -> str | None:
    return None if v is None else _redis_url(v, base)


def _redis_prefix(v: Any, base: Path) -> str:
    import re

    p = _text(v, base)
    if not re.match(r"^[A-Za-z0-9_.:-]{1,64}$", p):
        raise ValueError("must be 1-64 letters, digits, '_', '.', ':' or '-'")
    return p


def _lease(v: Any, base: Path) -> int:
    ms = _duration(v, base)
    if ms < 300:
        raise ValueError("must be at least 300ms")
    return ms


Schema = dict[str, "tuple[tuple[str, ...], Parser] | Schema"]
