"""The ``integrations`` block of the config: OBS, Streamer.bot, RCON and MQTT.

Their dataclasses (``IntegrationConfig``, what every integration has, and one subclass each with its
own keys and defaults), the parsers only they use (hosts, RCON command words, MQTT QoS and topic
prefix, time limits), and ``_integration``, which builds each one's section of ``SCHEMA``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.parsers import Schema, _bool, _count, _duration, _optional_text, _positive, _text


@dataclass
class IntegrationConfig:
    """What every integration has: on/off, a password (a secret; also LIVEBOT_<NAME>_PASSWORD),
    pacing, a cap and a time limit. Each integration below adds its own and its own defaults."""

    enabled: bool = False
    password: str | None = field(default=None, repr=False)
    min_gap_ms: int = 0
    max_per_minute: int = 60
    timeout_ms: int = 5000


@dataclass
class ObsConfig(IntegrationConfig):
    """OBS Studio through obs-websocket v5 (``bot.integrations.obs``)."""

    url: str = "ws://127.0.0.1:4455"
    min_gap_ms: int = 500


@dataclass
class StreamerbotConfig(IntegrationConfig):
    """Streamer.bot's WebSocket server (``bot.integrations.streamerbot``)."""

    url: str = "ws://127.0.0.1:8080/"


@dataclass
class RconConfig(IntegrationConfig):
    """A game server's RCON (Minecraft...): ``bot.integrations.rcon``."""

    host: str = "127.0.0.1"
    port: int = 25575
    allow: list[str] = field(default_factory=list)  # the commands (first words) that may run
    min_gap_ms: int = 1000
    max_per_minute: int = 30


@dataclass
class MqttConfig(IntegrationConfig):
    """An MQTT broker, for smart lights and other devices (``bot.integrations.mqtt``)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    topic_prefix: str = "livebot/"
    qos: int = 1
    max_per_minute: int = 120


@dataclass
class IntegrationsConfig:
    obs: ObsConfig = field(default_factory=ObsConfig)
    streamerbot: StreamerbotConfig = field(default_factory=StreamerbotConfig)
    rcon: RconConfig = field(default_factory=RconConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)


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


def _timeout(v: Any, base: Path) -> int:
    ms = _duration(v, base)
    if ms <= 0:
        raise ValueError("must be a duration longer than 0, such as 5s")
    return ms


def _topic_prefix(v: Any, base: Path) -> str:
    prefix = _text(v, base)
    if any(c in prefix for c in "+#\x00"):
        raise ValueError("must be the start of a topic: no +, # or NUL")
    return prefix


def _integration(name: str, extra: dict[str, Any]) -> Schema:
    """The keys every integration has (enabled, password, pacing, cap, timeout), and its own."""
    at = ("integrations", name)
    return {
        "enabled": ((*at, "enabled"), _bool),
        **extra,
        "password": ((*at, "password"), _optional_text),
        "min_gap": ((*at, "min_gap_ms"), _duration),
        "max_per_minute": ((*at, "max_per_minute"), _positive),
        "timeout": ((*at, "timeout_ms"), _timeout),
    }
