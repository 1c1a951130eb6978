"""Secrets in the config: which keys are secret, where each may come from in the environment
(``ENV_SECRETS``), and how a config is shown without them (``redact_url``, ``_plain`` behind
``Config.redacted()``): passwords, keys and URL credentials and query values become ``***``.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit


# Environment variables that fill a secret left empty in the file: (attribute path, variables).
ENV_SECRETS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("source", "tiktok", "sign_api_key"), ("LIVEBOT_SIGN_API_KEY", "SIGN_API_KEY")),
    (("source", "webhook", "secret"), ("LIVEBOT_WEBHOOK_SECRET",)),
    (("chat_session_id",), ("LIVEBOT_SESSION_ID",)),
    (("integrations", "obs", "password"), ("LIVEBOT_OBS_PASSWORD",)),
    (("integrations", "streamerbot", "password"), ("LIVEBOT_STREAMERBOT_PASSWORD",)),
    (("integrations", "rcon", "password"), ("LIVEBOT_RCON_PASSWORD",)),
    (("integrations", "mqtt", "password"), ("LIVEBOT_MQTT_PASSWORD",)),
)
SECRET_NAMES = frozenset({"sign_api_key", "secret", "session_id", "chat_session_id", "password"})
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
