"""The config file: every key documented in ``config.example.yaml``, every error as ``file:line:col``.

The schema is the single list of keys: each is a parser (text, bool, duration, path, ...)
and a default. Every problem in a file is reported at once. Secrets may come from the environment
instead of the file (``ENV_SECRETS``); they are never logged (``Config.redacted()``).

Where things are (every name below is importable from ``bot.config`` as before):

- ``bot.config.model``: ``Config``, its section dataclasses and ``ConfigError``.
- ``bot.config.integrations``: the ``integrations`` block (OBS, Streamer.bot, RCON, MQTT).
- ``bot.config.parsers``: the value parsers (text, bool, duration, URL, ...).
- ``bot.config.schema``: ``SCHEMA``, key -> (attribute, parser); new keys go here.
- ``bot.config.load``: ``load_config`` and ``with_env_secrets``.
- ``bot.config.redact``: secret keys, ``ENV_SECRETS``, ``redact_url``.
- ``bot.config.checks``: ``room_name``, ``engine_options``, ``check_for_run``.
"""

from __future__ import annotations

from bot.config.checks import check_for_run, engine_options, room_name
from bot.config.integrations import (IntegrationConfig, IntegrationsConfig, MqttConfig, ObsConfig, RconConfig,
                                     StreamerbotConfig)
from bot.config.load import load_config, with_env_secrets
from bot.config.model import (SOURCE_TYPES, Config, ConfigError, IngestConfig, IngestRoom, RedisConfig, SourceConfig,
                              TikTokConfig, WebhookConfig, WebhookSinkConfig, WebSocketConfig)
from bot.config.parsers import MAX_DURATION_MS, Parser, Schema
from bot.config.redact import ENV_SECRETS, SECRET_NAMES, URL_NAMES, redact_url
from bot.config.schema import SCHEMA
from bot.engine.yamlfile import Pos

__all__ = ["Config", "ConfigError", "Pos", "SOURCE_TYPES", "check_for_run", "load_config",
           # also importable from here, as before the split into modules:
           "ENV_SECRETS", "IngestConfig", "IngestRoom", "IntegrationConfig", "IntegrationsConfig", "MAX_DURATION_MS",
           "MqttConfig", "ObsConfig", "Parser", "RconConfig", "RedisConfig", "SCHEMA", "SECRET_NAMES", "Schema",
           "SourceConfig", "StreamerbotConfig", "TikTokConfig", "URL_NAMES", "WebSocketConfig", "WebhookConfig",
           "WebhookSinkConfig", "engine_options", "redact_url", "room_name", "with_env_secrets"]
