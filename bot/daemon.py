"""``livebot run``: the configured live source, the rules, the sinks and the recorder, until stopped.

- SIGTERM / SIGINT: stop reading, drain what is queued through the rules and sinks, flush the
  recorder and the state, exit 0.
- SIGHUP, or a rule file changing on disk: reload the rules atomically (``bot.control.reload``).
- The HTTP control server (``/healthz``, ``/metrics``, ``/status``) runs beside it.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog

from bot.actions.dispatcher import LiveDispatcher, RetryPolicy
from bot.actions.journal import DeliveryJournal
from bot.clock import Clock
from bot.config import Config, engine_options, room_name
from bot.control.reload import RuleReloader
from bot.control.server import ControlServer
from bot.engine.core import Engine
from bot.engine.rules import RuleSet
from bot.integrations import build_integrations, start_integrations
from bot.live import LiveResult, LiveRunner, LiveSource
from bot.sinks import ConsoleSink, JsonlSink
from bot.sinks.base import Sink
from bot.sinks.webhook import WebhookSink
from bot.sources.queue import EventQueue
from bot.sources.recorder import Recorder, file_stem
from bot.store.keeper import StateKeeper
from bot.scale.store import open_store

log = structlog.get_logger("bot.daemon")


def build_source(cfg: Config) -> LiveSource:
    """The live source the config names (imports each one only when it is used)."""
    src = cfg.source
    if src.type == "websocket":
        from bot.sources.websocket import WebSocketSource

        ws = src.websocket
        return WebSocketSource(ws.url, room_id=cfg.room_id, stop_on_live_end=ws.stop_on_live_end,
                               offline_poll_s=ws.offline_poll_ms / 1000, too_many_wait_s=ws.too_many_wait_ms / 1000)
    if src.type == "tiktok":
        from bot.sources.tiktok import TikTokSource

        tt = src.tiktok
        return TikTokSource(tt.unique_id, sign_api_key=tt.sign_api_key, stop_on_live_end=tt.stop_on_live_end,
                            offline_poll_s=tt.offline_poll_ms / 1000, rate_limit_wait_s=tt.rate_limit_wait_ms / 1000,
                            room_id=cfg.room_id)
    if src.type == "webhook":
        from bot.sources.webhook import WebhookSource

        wh = src.webhook
        return WebhookSource(secret=wh.secret, host=wh.host, port=wh.port, path=wh.path, max_body=wh.max_body,
                             max_events=wh.max_events, tolerance_s=wh.tolerance_ms / 1000,
                             allow_unsigned=wh.allow_unsigned, room_id=cfg.room_id)
    raise ValueError(f"unknown source type {src.type!r}")


def build_sinks(cfg: Config, out: Path | None = None) -> list[Sink]:
    sinks: list[Sink] = [ConsoleSink()] if cfg.console else []
    if out or cfg.jsonl:
        sinks.append(JsonlSink(out or cfg.jsonl, append=True))  # type: ignore[arg-type]
    if cfg.chat_enabled:
        from bot.sinks.chat import ChatSink, TikTokChatSender

        sender = TikTokChatSender(cfg.source.tiktok.unique_id, cfg.chat_session_id or "", cfg.chat_target_idc,
                                  sign_api_key=cfg.source.tiktok.sign_api_key)
        sinks.append(ChatSink(sender, max_per_minute=cfg.chat_per_minute))
    for wh in cfg.webhooks:
        sinks.append(WebhookSink(wh.url, secret=wh.secret, name=wh.name, max_batch=wh.max_batch,
                                 timeout=wh.timeout_ms / 1000))
    sinks += build_integrations(cfg)  # OBS, Streamer.bot, RCON, MQTT: each its own sink
    return sinks


def build_overlay(cfg: Config):
    """The OBS overlay sink (mounted on the control server by ``run_daemon``)."""
    from bot.sinks.overlay import OverlaySink
    from bot.sinks.overlay.sounds import SoundBoard

    sounds = None if cfg.sounds_folder is None else SoundBoard(
        cfg.sounds_folder, volume=cfg.sounds_volume, per_minute=cfg.sounds_per_minute,
        user_gap_ms=cfg.sounds_user_gap_ms, max_bytes=cfg.sounds_max_bytes)
    return OverlaySink(tts_per_minute=cfg.tts_per_minute, tts_user_gap_ms=cfg.tts_user_gap_ms,
                       tts_max_chars=cfg.tts_max_chars, alert_gap_s=cfg.overlay_alert_gap_ms / 1000,
                       host=cfg.http_host, port=cfg.http_port, css=cfg.overlay_css, board_size=cfg.overlay_board,
                       banner_ms=cfg.overlay_banner_ms, sounds=sounds)


def journal_path(cfg: Config) -> Path | None:
    """The delivery journal's file: ``state.journal``, else beside the SQLite state, else (state in
    Redis) in the recordings' folder or the working directory; None without state."""
    if cfg.state_journal is not None:
        return cfg.state_journal
    if cfg.state_db is not None and not cfg.state_redis:
        return cfg.state_db.with_name(cfg.state_db.name + ".delivered")
    if cfg.state_redis:  # the state is elsewhere; what this machine delivered is kept here
        return (cfg.record or Path(".")) / f".{file_stem(room_name(cfg))}.delivered"
    return None


def build_dispatcher(cfg: Config, sinks: list[Sink], journal: DeliveryJournal | None = None) -> LiveDispatcher:
    """Per-sink queues, retries with backoff, and a dead-letter file for what cannot be delivered."""
    return LiveDispatcher(sinks, dead_letter=cfg.dead_letter, max_queue=cfg.sink_queue,
                          retry=RetryPolicy(max_attempts=max(1, cfg.sink_attempts)),
                          drain_timeout=cfg.drain_ms / 1000, journal=journal)


async def run_daemon(cfg: Config, ruleset: RuleSet, *, source: LiveSource | None = None,
                     sinks: list[Sink] | None = None, clock: Clock | None = None) -> LiveResult:
    """Run until a signal or the source ends; returns what was counted. ``clock`` is the wall
    clock unless given (the soak benchmark drives it with a virtual one)."""
    engine = Engine(ruleset, **engine_options(cfg))
    sinks = build_sinks(cfg) if sinks is None else list(sinks)
    overlay = build_overlay(cfg) if cfg.overlay_enabled and cfg.http_enabled else None
    if overlay is not None:
        sinks.append(overlay)
    store = open_store(cfg)
    journal = DeliveryJournal(path) if store is not None and (path := journal_path(cfg)) is not None else None
    dispatcher = build_dispatcher(cfg, sinks, journal)
    recorder = Recorder(cfg.record, room=room_name(cfg),
                        flush_every_s=cfg.record_flush_ms / 1000) if cfg.record else None
    keeper = StateKeeper(store, room_name(cfg), every_ms=cfg.state_save_ms,
                         resume_within_ms=cfg.state_resume_ms) if store else None
    if keeper is not None and journal is not None:
        keeper.on_saved.append(journal.rotate)  # the saved state knows everything delivered so far
        if journal.resuming:
            log.info("journal_loaded", path=str(journal.path), delivered_before=journal.resuming)
    reports = ReportWriter(cfg, actions=next((s.path for s in dispatcher.sinks if isinstance(s, JsonlSink)), None))
    runner = LiveRunner([source or build_source(cfg)], engine, dispatcher, recorder=recorder,
                        queue=EventQueue(cfg.queue_capacity), keeper=keeper, clock=clock,
                        on_stream_end=reports.stream_ended if cfg.report_folder else None)
    reloader = RuleReloader(cfg.rules, ruleset, runner.replace_rules, poll_s=cfg.reload_poll_ms / 1000)
    server = ControlServer(runner, host=cfg.http_host, port=cfg.http_port, reloader=reloader,
                           config=cfg.redacted(), token=cfg.http_token) if cfg.http_enabled else None
    if overlay is not None and server is not None:
        overlay.server.add_routes(server.app)  # one port: the overlay beside /status and /metrics
        # goals and the subathon clock as the engine has them, for a page that connects before any update
        overlay.server.state.features.fallback = lambda: runner.engine.features.current(runner.clock.now())

    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: _stopper(runner, "SIGTERM"), signal.SIGINT: _stopper(runner, "SIGINT"),
                signal.SIGHUP: lambda: reloader.reload("SIGHUP")}
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    watcher = asyncio.create_task(reloader.watch(runner.stop)) if cfg.reload_watch else None
    try:
        await _listen(server, runner.sources, cfg)
        if server is not None:
            if overlay is not None:
                overlay.server.port = server.port
                log.info("overlay_ready", url=overlay.url, obs="add this URL as a Browser source")
        await start_integrations(dispatcher.sinks)  # one that is down: a warning with its name
        log.info("started", source=cfg.source.type, rules=len(ruleset.rules), record=str(cfg.record or ""),
                 http=f"http://{cfg.http_host}:{server.port}/status" if server else "off")
        result = await runner.run()
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)
        if watcher is not None:
            watcher.cancel()
        await dispatcher.close()
        runner.save_after_dispatch()
        await reports.wait()
        if server is not None:
            await server.stop()
        if store is not None:
            store.close()
    log.info("stopped", events=sum(result.events.values()), actions=sum(result.actions.values()),
             shed=sum(result.shed.values()), recorded=recorder.written if recorder else 0)
    return result


async def _listen(server: ControlServer | None, sources: list, cfg: Config) -> None:
    """Bind every port before anything runs: a port in use is one line (StartupError), exit 2."""
    from bot.preflight import listen_error

    if server is not None:
        try:
            await server.start()
        except OSError as exc:
            raise listen_error(exc, server.host, server.port, "http.port") from None
    for source in sources:
        if callable(listen := getattr(source, "listen", None)):
            try:
                await listen()
            except OSError as exc:
                raise listen_error(exc, source.host, source.port, f"source.{source.name}.port") from None


class ReportWriter:
    """Writes each recorded stream's HTML report when the stream ends, in a worker thread."""

    def __init__(self, cfg: Config, actions: Path | None) -> None:
        self.cfg = cfg
        self.actions = actions
        self.tasks: set[asyncio.Task] = set()
        self.written: list[Path] = []

    def stream_ended(self, recording: Path | None) -> None:
        if recording is None or self.cfg.report_folder is None:
            return
        task = asyncio.get_running_loop().create_task(self._write(recording, self.cfg.report_folder))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _write(self, recording: Path, folder: Path) -> None:
        from bot.report import write_report

        html = folder / (recording.stem + ".html")
        await asyncio.sleep(0.5)  # the sinks' queues take the stream's last actions first
        try:
            folder.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(write_report, recording, self.actions, html, rate=self.cfg.report_rate,
                                    streak_silence_ms=self.cfg.streak_silence_ms, dedup_window=self.cfg.dedup_window)
            self.written.append(html)
            log.info("report_written", path=str(html))
        except Exception as exc:  # a report is never worth the daemon
            log.error("report_failed", path=str(html), error=f"{type(exc).__name__}: {exc}")

    async def wait(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


def _stopper(runner: LiveRunner, name: str):
    def stop() -> None:
        log.info("stopping", signal=name)
        runner.stop.set()
    return stop
