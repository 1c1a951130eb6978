"""The config's dataclasses: ``Config`` and its sections (source, Redis, ingest, webhook sinks), and
``ConfigError``.

These hold the parsed values and their defaults (the defaults ``config.example.yaml`` documents); the
integrations' own dataclasses live in ``bot.config.integrations``. Reading a file into them is
``bot.config.load``; the keys and their parsers are ``bot.config.schema``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.integrations import IntegrationsConfig
from bot.config.redact import _plain
from bot.engine.yamlfile import one_line


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
    http_control: bool = True  # the control page at / (bot.control.page)
    http_trace_events: int = 100  # the engine's trace keeps the last N events (0: no trace, no page)
    reload_watch: bool = True
    reload_poll_ms: int = 1000
    state_redis: str | None = field(default=None, repr=False)  # Redis URL for the state (bot.scale.store)
    redis: RedisConfig = field(default_factory=RedisConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    integrations: IntegrationsConfig = field(default_factory=IntegrationsConfig)

    def redacted(self) -> dict[str, Any]:
        """The config as plain data with every secret replaced by ``***`` (for logs)."""
        return _plain(self)
