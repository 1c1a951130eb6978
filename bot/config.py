"""The config file: every key documented in ``config.example.yaml``, every error as ``file:line:col``.

The schema below is the single list of keys: each is a parser (text, bool, duration, path, ...)
and a default. Every problem in a file is reported at once. Secrets may come from the environment
instead of the file (``ENV_SECRETS``); they are never logged (``Config.redacted()``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from bot.engine.durations import parse_duration
from bot.engine.yamlfile import Pos, YamlError, YMap, did_you_mean, load_yaml, one_line, read_text


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        problems = [one_line(p) for p in problems]  # a quoted value never breaks a problem's line
        super().__init__("\n".join(problems))
        self.problems = problems


SOURCE_TYPES = ("websocket", "tiktok", "webhook")


@dataclass
class WebSocketConfig:
    url: str = field(default="ws://localhost:21213", repr=False)  # TikFinity's; Euler's carries its apiKey
    stop_on_live_end: bool = True
    offline_poll_ms: int = 30_000
    too_many_wait_ms: int = 60_000


@dataclass
class TikTokConfig:
    unique_id: str = ""
    sign_api_key: str | None = field(default=None, repr=False)  # secret; also SIGN_API_KEY
    stop_on_live_end: bool = True
    offline_poll_ms: int = 60_000
    rate_limit_wait_ms: int = 60_000


@dataclass
class WebhookConfig:
    host: str = "127.0.0.1"
    port: int = 8790
    path: str = "/events"
    secret: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_WEBHOOK_SECRET
    max_body: int = 1 << 20
    max_events: int = 10_000
    tolerance_ms: int = 300_000
    allow_unsigned: bool = False


@dataclass
class SourceConfig:
    type: str | None = None  # None: no live source configured (replay only)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    tiktok: TikTokConfig = field(default_factory=TikTokConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)


@dataclass
class RedisConfig:
    """Scaling out on Redis (``livebot ingest``, ``livebot run --source redis://...``; ``bot.scale``)."""

    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may hold a password
    prefix: str = "livebot"  # every key starts with this
    group: str = "workers"  # the consumer group of the workers
    stream_maxlen: int = 100_000  # events kept per room stream (MAXLEN ~; 0: no trimming)
    actions_maxlen: int = 100_000  # actions kept per room stream (MAXLEN ~; 0: no trimming)
    actions_stream: bool = True  # publish actions to {prefix}:actions:{room}
    lease_ms: int = 10_000  # a room's lease; a dead worker's rooms move after this long
    checkpoint_ms: int = 1000  # checkpoint a busy room at least this often ...
    checkpoint_events: int = 1000  # ... or after this many events
    batch: int = 256  # entries read per room at a time
    idle_lag_ms: int = 500  # idle rooms' deadlines fire this long after the wall clock passes them
    dedup_ttl_ms: int = 86_400_000  # action markers of a room that never checkpoints again expire
    rules_by_room: Path | None = None  # folder: {folder}/{room}/ holds a room's rules if it exists
    drain_ms: int = 10_000  # ingest: how long events wait in memory for a failing Redis (at stop, or running)
    spill: Path | None = None  # ingest: folder for events Redis did not take (None: {record}/spill, else ./spill)


@dataclass
class IngestRoom:
    room: str
    type: str | None = None  # default: source.type
    url: str | None = field(default=None, repr=False)  # websocket (Euler's carries its apiKey)
    unique_id: str | None = None  # tiktok
    port: int | None = None  # webhook
    path: str | None = None  # webhook


@dataclass
class IngestConfig:
    rooms: list[IngestRoom] = field(default_factory=list)
    keep_raw: bool = False  # keep each event's raw payload in the stream (bigger)


@dataclass
class WebhookSinkConfig:
    url: str = field(repr=False)  # a token may travel in its path or query
    name: str = "webhook"
    secret: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_SINK_SECRET
    max_batch: int = 1
    timeout_ms: int = 5000


@dataclass
class ObsConfig:
    """OBS Studio through obs-websocket v5 (``bot.integrations.obs``)."""

    enabled: bool = False
    url: str = "ws://127.0.0.1:4455"
    password: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_OBS_PASSWORD
    min_gap_ms: int = 500
    max_per_minute: int = 60
    timeout_ms: int = 5000


@dataclass
class StreamerbotConfig:
    """Streamer.bot's WebSocket server (``bot.integrations.streamerbot``)."""

    enabled: bool = False
    url: str = "ws://127.0.0.1:8080/"
    password: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_STREAMERBOT_PASSWORD
    min_gap_ms: int = 0
    max_per_minute: int = 60
    timeout_ms: int = 5000


@dataclass
class RconConfig:
    """A game server's RCON (Minecraft...): ``bot.integrations.rcon``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 25575
    password: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_RCON_PASSWORD
    allow: list[str] = field(default_factory=list)  # the commands (first words) that may run
    min_gap_ms: int = 1000
    max_per_minute: int = 30
    timeout_ms: int = 5000


@dataclass
class MqttConfig:
    """An MQTT broker, for smart lights and other devices (``bot.integrations.mqtt``)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_MQTT_PASSWORD
    topic_prefix: str = "livebot/"
    qos: int = 1
    min_gap_ms: int = 0
    max_per_minute: int = 120
    timeout_ms: int = 5000


@dataclass
class IntegrationsConfig:
    obs: ObsConfig = field(default_factory=ObsConfig)
    streamerbot: StreamerbotConfig = field(default_factory=StreamerbotConfig)
    rcon: RconConfig = field(default_factory=RconConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)


@dataclass
class Config:
    rules: Path = Path("rules")
    streak_silence_ms: int = 5000
    dedup_window: int = 500_000
    console: bool = True
    jsonl: Path | None = None
    webhooks: list[WebhookSinkConfig] = field(default_factory=list)
    dead_letter: Path | None = None  # actions no sink could take (None: logged as errors)
    overlay_enabled: bool = True  # the OBS overlay at http://<http.host>:<http.port>/overlay/
    overlay_css: Path | None = None
    overlay_board: int = 5
    overlay_poll_updates_ms: int = 1000
    overlay_alert_gap_ms: int = 4000
    overlay_banner_ms: int = 30_000
    tts_per_minute: int = 6
    tts_user_gap_ms: int = 30_000
    tts_max_chars: int = 200
    sounds_folder: Path | None = None  # sound alerts (bot/sinks/overlay/sounds.py); None: off
    sounds_volume: float = 0.8
    sounds_per_minute: int = 10
    sounds_user_gap_ms: int = 10_000
    sounds_max_bytes: int = 5 << 20
    chat_enabled: bool = False  # say lines in the live chat as the creator (needs the tiktok extra)
    chat_session_id: str | None = field(default=None, repr=False)  # secret; also LIVEBOT_SESSION_ID
    chat_target_idc: str | None = None
    chat_per_minute: int = 6
    sink_queue: int = 1000
    sink_attempts: int = 5
    drain_ms: int = 5000
    room_id: str = ""
    source: SourceConfig = field(default_factory=SourceConfig)
    record: Path | None = None  # folder for session recordings (None: off)
    record_flush_ms: int = 1000
    report_folder: Path | None = None  # write an HTML report of each recorded stream when it ends
    report_rate: float = 0.005  # US$ per diamond, for the earnings estimate
    queue_capacity: int = 10_000
    state_db: Path | None = None  # SQLite file for lifetime totals and the stream in progress (None: off)
    state_save_ms: int = 5000
    state_journal: Path | None = None  # what each sink delivered since the last save (None: beside state_db)
    state_resume_ms: int = 30 * 60_000
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = 8787
    http_token: str | None = field(default=None, repr=False)  # needed by POST /subathon, /points when not on 127.0.0.1
    reload_watch: bool = True
    reload_poll_ms: int = 1000
    state_redis: str | None = field(default=None, repr=False)  # Redis URL for the state (bot.scale.store)
    redis: RedisConfig = field(default_factory=RedisConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    integrations: IntegrationsConfig = field(default_factory=IntegrationsConfig)

    def redacted(self) -> dict[str, Any]:
        """The config as plain data with every secret replaced by ``***`` (for logs)."""
        return _plain(self)


# Environment variables that fill a secret left empty in the file: (attribute path, variables).
ENV_SECRETS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("source", "tiktok", "sign_api_key"), ("LIVEBOT_SIGN_API_KEY", "SIGN_API_KEY")),
    (("source", "webhook", "secret"), ("LIVEBOT_WEBHOOK_SECRET",)),
    (("chat_session_id",), ("LIVEBOT_SESSION_ID",)),
    (("integrations", "obs", "password"), ("LIVEBOT_OBS_PASSWORD",)),
    (("integrations", "streamerbot", "password"), ("LIVEBOT_STREAMERBOT_PASSWORD",)),
    (("integrations", "rcon", "password"), ("LIVEBOT_RCON_PASSWORD",)),
    (("integrations", "mqtt", "password"), ("LIVEBOT_MQTT_PASSWORD",)),
    (("http_token",), ("LIVEBOT_HTTP_TOKEN",)),
)
SECRET_NAMES = frozenset({"sign_api_key", "secret", "session_id", "chat_session_id", "password", "http_token"})
URL_NAMES = frozenset({"url", "state_redis"})  # URLs whose password and query values are secret (apiKey=...)


def redact_url(url: str) -> str:
    """``url`` with its user and password, and every query value, replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc if "@" not in parts.netloc else f"***@{parts.netloc.rpartition('@')[2]}"
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True)) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.name in SECRET_NAMES and value:
                out[f.name] = "***"
            elif f.name in URL_NAMES and isinstance(value, str):
                out[f.name] = redact_url(value)
            else:
                out[f.name] = _plain(value)
        return out
    if isinstance(obj, list):
        return [_plain(item) for item in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


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


MAX_DURATION_MS = 2**53 - 1  # what JSON readers take as a whole number (some 285,000 years)


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


_INGEST_ROOM_KEYS = ("room", "type", "url", "unique_id", "port", "path")


def _ingest_rooms(v: Any, base: Path) -> list[IngestRoom]:
    """A list of rooms, each ``{room: NAME, type: ..., url: ..., unique_id: ..., port: ..., path: ...}``."""
    from bot.scale.keys import check_room

    if v is None:
        return []
    if not isinstance(v, list):
        raise ValueError("must be a list of rooms ({room: NAME, ...})")
    out: list[IngestRoom] = []
    seen: set[str] = set()
    for i, item in enumerate(v):
        where = f"room {i + 1}" + (f" ({item.pos})" if hasattr(item, "pos") else "")
        if not isinstance(item, dict):
            raise ValueError(f"{where}: must be a mapping with at least 'room'")
        unknown = [k for k in item if k not in _INGEST_ROOM_KEYS]
        if unknown:
            raise ValueError(f"{where}: unknown key '{unknown[0]}'{did_you_mean(str(unknown[0]), _INGEST_ROOM_KEYS)}")
        try:
            name = check_room(item.get("room"))  # type: ignore[arg-type]
            if name in seen:
                raise ValueError(f"room {name!r} is listed twice")
            seen.add(name)
            room = IngestRoom(name, type=_choice(*SOURCE_TYPES)(item.get("type"), base),
                              url=None if item.get("url") is None else _url(item["url"], base),
                              unique_id=_optional_text(item.get("unique_id"), base),
                              port=None if item.get("port") is None else _port(item["port"], base),
                              path=None if item.get("path") is None else _http_path(item["path"], base))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        out.append(room)
    return out


class _Positioned(ValueError):
    """Problems that already carry their own ``file:line:col``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_WEBHOOK_SINK_KEYS = ("url", "name", "secret", "max_batch", "timeout")


def _webhook_sinks(v: Any, base: Path) -> list[WebhookSinkConfig]:
    """``sinks.webhooks``: a list of ``{url, name, secret, max_batch, timeout}``."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise ValueError("must be a list of {url: ..., secret: ...}")
    out: list[WebhookSinkConfig] = []
    positioned: list[str] = []  # every unknown key of every entry, each at its place
    for i, item in enumerate(v):
        where = f"sinks.webhooks[{i}]"
        for key in item if isinstance(item, dict) else ():
            if key not in _WEBHOOK_SINK_KEYS:
                at = f"{item.key_pos[key]}: " if isinstance(item, YMap) else ""
                positioned.append(f"{at}{where}: unknown key '{key}'{did_you_mean(key, _WEBHOOK_SINK_KEYS)}")
    if positioned:
        raise _Positioned(positioned)
    for i, item in enumerate(v):
        where = f"sinks.webhooks[{i}]"
        if not isinstance(item, dict) or "url" not in item:
            raise ValueError(f"{where} must be a mapping with a 'url'")
        url = _text(item["url"], base)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{where}.url must be an http:// or https:// URL")
        out.append(WebhookSinkConfig(url=url, name=_text(item.get("name", f"webhook{i + 1}"), base),
                                     secret=_optional_text(item.get("secret"), base),
                                     max_batch=max(1, _count(item.get("max_batch", 1), base)),
                                     timeout_ms=_duration(item.get("timeout", "5s"), base)))
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise ValueError("sinks.webhooks: each needs its own 'name'")
    return out


def _command_words(v: Any, base: Path) -> list[str]:
    """``integrations.rcon.allow``: a list of command names (first words, such as summon or say)."""
    import re

    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(w, str) for w in v):
        raise ValueError("must be a list of command names, such as [summon, say]")
    words = [w.strip().lstrip("/").lower() for w in v]
    for w in words:
        if not re.fullmatch(r"[a-z0-9_:.-]{1,64}", w):
            raise ValueError(f"must be a list of command names (one word each, such as summon); not {w!r}")
    return words


def _host(v: Any, base: Path) -> str:
    host = _text(v, base).strip()
    if not host or any(c in host for c in "/ @"):
        raise ValueError("must be a host name or address, such as 127.0.0.1")
    return host


def _qos(v: Any, base: Path) -> int:
    if _count(v, base) > 2:
        raise ValueError("must be 0, 1 or 2")
    return v


def _integration(name: str, extra: dict[str, Any]) -> Schema:
    """The keys every integration has (enabled, password, pacing, cap, timeout), and its own."""
    at = ("integrations", name)
    return {
        "enabled": ((*at, "enabled"), _bool),
        **extra,
        "password": ((*at, "password"), _optional_text),
        "min_gap": ((*at, "min_gap_ms"), _duration),
        "max_per_minute": ((*at, "max_per_minute"), _positive),
        "timeout": ((*at, "timeout_ms"), _duration),
    }


# key in the file -> (attribute path on Config, parser). Nested mappings are dicts.
Schema = dict[str, "tuple[tuple[str, ...], Parser] | Schema"]
SCHEMA: Schema = {
    "rules": (("rules",), _path),
    "room_id": (("room_id",), _text),
    "engine": {
        "streak_silence": (("streak_silence_ms",), _duration),
        "dedup_window": (("dedup_window",), _count),
    },
    "sinks": {
        "console": (("console",), _bool),
        "jsonl": (("jsonl",), _optional_path),
        "webhooks": (("webhooks",), lambda v, base: _webhook_sinks(v, base)),
        "dead_letter": (("dead_letter",), _optional_path),
        "queue": (("sink_queue",), _count),
        "attempts": (("sink_attempts",), _count),
        "drain_timeout": (("drain_ms",), _duration),
        "overlay": {
            "enabled": (("overlay_enabled",), _bool),
            "css": (("overlay_css",), _optional_path),
            "board_size": (("overlay_board",), _count),
            "poll_updates": (("overlay_poll_updates_ms",), _duration),
            "alert_gap": (("overlay_alert_gap_ms",), _duration),
            "banner": (("overlay_banner_ms",), _duration),
            "tts": {
                "per_minute": (("tts_per_minute",), _count),
                "user_gap": (("tts_user_gap_ms",), _duration),
                "max_chars": (("tts_max_chars",), _count),
            },
            "sounds": {  # sound alerts (bot/sinks/overlay/sounds.py)
                "folder": (("sounds_folder",), _optional_path),
                "volume": (("sounds_volume",), _volume),
                "per_minute": (("sounds_per_minute",), _count),
                "user_gap": (("sounds_user_gap_ms",), _duration),
                "max_bytes": (("sounds_max_bytes",), _positive),
            },
        },
        "chat": {
            "enabled": (("chat_enabled",), _bool),
            "session_id": (("chat_session_id",), _optional_text),
            "tt_target_idc": (("chat_target_idc",), _optional_text),
            "max_per_minute": (("chat_per_minute",), _count),
        },
    },
    "source": {
        "type": (("source", "type"), _choice(*SOURCE_TYPES)),
        "queue_capacity": (("queue_capacity",), _count),
        "websocket": {
            "url": (("source", "websocket", "url"), _url),
            "stop_on_live_end": (("source", "websocket", "stop_on_live_end"), _bool),
            "offline_poll": (("source", "websocket", "offline_poll_ms"), _duration),
            "too_many_wait": (("source", "websocket", "too_many_wait_ms"), _duration),
        },
        "tiktok": {
            "unique_id": (("source", "tiktok", "unique_id"), _text),
            "sign_api_key": (("source", "tiktok", "sign_api_key"), _optional_text),
            "stop_on_live_end": (("source", "tiktok", "stop_on_live_end"), _bool),
            "offline_poll": (("source", "tiktok", "offline_poll_ms"), _duration),
            "rate_limit_wait": (("source", "tiktok", "rate_limit_wait_ms"), _duration),
        },
        "webhook": {
            "host": (("source", "webhook", "host"), _text),
            "port": (("source", "webhook", "port"), _port),
            "path": (("source", "webhook", "path"), _http_path),
            "secret": (("source", "webhook", "secret"), _optional_text),
            "max_body": (("source", "webhook", "max_body"), _count),
            "max_events": (("source", "webhook", "max_events"), _count),
            "tolerance": (("source", "webhook", "tolerance_ms"), _duration),
            "allow_unsigned": (("source", "webhook", "allow_unsigned"), _bool),
        },
    },
    "record": {
        "folder": (("record",), _optional_path),
        "flush_every": (("record_flush_ms",), _duration),
    },
    "report": {
        "folder": (("report_folder",), _optional_path),
        "rate": (("report_rate",), _rate),
    },
    "http": {
        "enabled": (("http_enabled",), _bool),
        "host": (("http_host",), _text),
        "port": (("http_port",), _port),
        "token": (("http_token",), _optional_text),
    },
    "reload": {
        "watch": (("reload_watch",), _bool),
        "poll": (("reload_poll_ms",), _duration),
    },
    "state": {
        "redis": (("state_redis",), _optional_redis_url),
        "database": (("state_db",), _optional_path),
        "save_every": (("state_save_ms",), _duration),
        "journal": (("state_journal",), _optional_path),
        "resume_within": (("state_resume_ms",), _duration),
    },
    "redis": {
        "url": (("redis", "url"), _redis_url),
        "prefix": (("redis", "prefix"), _redis_prefix),
        "group": (("redis", "group"), _redis_prefix),
        "stream_maxlen": (("redis", "stream_maxlen"), _count),
        "actions_maxlen": (("redis", "actions_maxlen"), _count),
        "actions_stream": (("redis", "actions_stream"), _bool),
        "lease": (("redis", "lease_ms"), _lease),
        "checkpoint_every": (("redis", "checkpoint_ms"), _duration),
        "checkpoint_events": (("redis", "checkpoint_events"), _positive),
        "batch": (("redis", "batch"), _positive),
        "idle_lag": (("redis", "idle_lag_ms"), _duration),
        "dedup_ttl": (("redis", "dedup_ttl_ms"), _duration),
        "rules_by_room": (("redis", "rules_by_room"), _optional_path),
        "drain": (("redis", "drain_ms"), _duration),
        "spill": (("redis", "spill"), _optional_path),
    },
    "ingest": {
        "rooms": (("ingest", "rooms"), _ingest_rooms),
        "keep_raw": (("ingest", "keep_raw"), _bool),
    },
    "integrations": {
        "obs": _integration("obs", {"url": (("integrations", "obs", "url"), _url)}),
        "streamerbot": _integration("streamerbot", {"url": (("integrations", "streamerbot", "url"), _url)}),
        "rcon": _integration("rcon", {
            "host": (("integrations", "rcon", "host"), _host),
            "port": (("integrations", "rcon", "port"), _port),
            "allow": (("integrations", "rcon", "allow"), _command_words),
        }),
        "mqtt": _integration("mqtt", {
            "host": (("integrations", "mqtt", "host"), _host),
            "port": (("integrations", "mqtt", "port"), _port),
            "username": (("integrations", "mqtt", "username"), _optional_text),
            "topic_prefix": (("integrations", "mqtt", "topic_prefix"), _text),
            "qos": (("integrations", "mqtt", "qos"), _qos),
        }),
    },
}


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


def room_name(cfg: Config) -> str:
    """This stream's name for its state and recordings: ``room_id``, else the source type."""
    return cfg.room_id or cfg.source.type or "live"


def engine_options(cfg: Config) -> dict[str, Any]:
    """The Engine's settings from the config; the same for `run` and `replay -c`, so a replay of a
    recorded stream fires the same actions (the overlay's live poll counts and board included)."""
    return {"streak_silence_ms": cfg.streak_silence_ms, "dedup_window": cfg.dedup_window,
            "poll_update_ms": cfg.overlay_poll_updates_ms if cfg.overlay_enabled else 0,
            "board_size": cfg.overlay_board if cfg.overlay_enabled else 0}


def check_for_run(cfg: Config, where: str) -> list[str]:
    """What ``livebot run`` needs beyond a well-formed file: a source, and what that source needs."""
    src = cfg.source
    if cfg.chat_enabled and (not cfg.chat_session_id or not src.tiktok.unique_id.strip("@ ")):
        return [f"{where}: 'sinks.chat' needs 'session_id' (or LIVEBOT_SESSION_ID) and 'source.tiktok.unique_id'"]
    if cfg.overlay_enabled and not cfg.http_enabled:
        return [f"{where}: 'sinks.overlay' is served by the HTTP server: enable 'http' or set 'sinks.overlay.enabled: false'"]
    if cfg.report_folder is not None and cfg.record is None:
        return [f"{where}: 'report.folder' needs 'record.folder': a report is made from the stream's recording"]
    taken = [w.name for w in cfg.webhooks if w.name in ("obs", "streamerbot", "rcon", "mqtt")
             and getattr(cfg.integrations, w.name).enabled]
    if taken:
        return [f"{where}: the webhook named '{taken[0]}' has the name of the enabled integration: rename it"]
    if cfg.integrations.rcon.enabled and importlib.util.find_spec("rcon") is None:
        return [f"{where}: 'integrations.rcon' needs the rcon package (GPLv3, optional): pip install 'livebot[rcon]'"]
    if cfg.integrations.rcon.enabled and not cfg.integrations.rcon.allow:
        return [f"{where}: 'integrations.rcon.allow' is empty: list the commands rules may run (such as [summon, say])"]
    if src.type is None:
        return [f"{where}: 'source.type' is required for run (one of: {', '.join(SOURCE_TYPES)})"]
    if src.type == "tiktok" and not src.tiktok.unique_id.strip("@ "):
        return [f"{where}: 'source.tiktok.unique_id' is required (the creator's @handle)"]
    if src.type == "webhook" and not src.webhook.secret and not src.webhook.allow_unsigned:
        return [f"{where}: the webhook source needs 'source.webhook.secret' (or LIVEBOT_WEBHOOK_SECRET); "
                "set 'allow_unsigned: true' only on a trusted network"]
    return []


__all__ = ["Config", "ConfigError", "Pos", "SOURCE_TYPES", "check_for_run", "load_config"]
