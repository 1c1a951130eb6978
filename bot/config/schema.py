"""``SCHEMA``: every key of the config file, the attribute of ``Config`` it sets and its parser.

Also the parsers of the list-valued keys, which check each entry (``ingest.rooms``,
``sinks.webhooks``) and ``_Positioned``, the error that carries problems already placed at their own
``file:line:col``. A new key goes here (one parser each) and in ``config.example.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config.integrations import _command_words, _host, _integration, _qos, _topic_prefix
from bot.config.model import SOURCE_TYPES, IngestRoom, WebhookSinkConfig
from bot.config.parsers import (Schema, _bool, _choice, _count, _duration, _http_path, _lease, _optional_path,
                                _optional_redis_url, _optional_text, _path, _port, _positive, _rate, _redis_prefix,
                                _redis_url, _text, _url, _volume)
from bot.engine.yamlfile import YMap, did_you_mean


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


# key in the file -> (attribute path on Config, parser). Nested mappings are dicts.
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
        "control": (("http_control",), _bool),
        "trace_events": (("http_trace_events",), _count),
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
            "topic_prefix": (("integrations", "mqtt", "topic_prefix"), _topic_prefix),
            "qos": (("integrations", "mqtt", "qos"), _qos),
        }),
    },
}
