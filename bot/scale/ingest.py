"""``livebot ingest``: live sources, one per creator room, appending normalized events to Redis.

Each room's source (``bot.daemon.build_source``: websocket, tiktok or webhook) pushes into its
own bounded ``EventQueue`` (so one busy room sheds only its own joins and likes), stamped with
the receive time (``recv``, the engine's time for the event). A pump per room takes what is
queued and appends it to ``{prefix}:events:{room}`` with one pipelined ``XADD ... MAXLEN ~``
per batch. The room is registered in ``{prefix}:rooms`` and its stream gets the workers'
consumer group (created at id 0, so no event appended before the first worker is missed).
Each batch's round trip also asks whether the room is still registered: the Redis client
reconnects silently, so a Redis restarted without its data between two batches makes no append
fail; the pump registers the room and its group again at once (``append_checked``).

If Redis is unreachable the batch is kept and retried with backoff; meanwhile the queue fills
and sheds by its policy (gifts, follows and subscribes are never shed). Events wait in memory
for at most ``redis.drain``: once appends have failed that long, a room's held events, and every
newer one until Redis is back, go to its spill file ``{redis.spill}/{room}.jsonl`` (``Event.to_dict``
lines, as ``livebot replay`` reads). On SIGTERM/SIGINT ingest appends what is queued for at most
``redis.drain`` and spills the rest. Spilled events are appended back first, in order, when Redis
takes appends again and at the next start; the file is deleted once all of it is appended (a crash
before that appends some twice: workers drop events whose ``msg_id`` they saw). In ingest, a
stream's end does not stop its source: it waits for the creator's next live.

``append_events`` and ``register_room`` are the library functions (tests and the benchmark
use them); ``encode_event`` / ``decode_entry`` are the stream's record format: the orjson of
``Event.to_dict()`` in the field ``e``. With ``http.enabled``, ``run_ingest`` serves ``/healthz`` and
``/metrics`` per room (``bot.control.worker_server``).

Here: the rooms' config, ``RoomPump`` (source, queue, appends, the drain at stop) and
``run_ingest``; the stream format and library functions are in ``bot.scale.streams``, the spill
file in ``bot.scale.spill``; every name of those is importable from here too.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from bot.clock import WallClock
from bot.config import Config, check_for_run, redact_url
from bot.events.model import CONNECT, DISCONNECT, Event
from bot.scale.spill import REJECTED_SUFFIX, SPILL_SUFFIX, SpillFile, _other_spills, spill_file, spill_folder
from bot.scale.streams import (FIELD, append_checked, append_events, decode_entry, decode_value, encode_event,
                               read_events, register_room)
from bot.sources.backoff import Backoff
from bot.sources.queue import EventQueue

log = structlog.get_logger("bot.ingest")
STOP_GRACE_S = 2.0  # past redis.drain, a pump stuck in a Redis call is cancelled (and spills)


def room_config(cfg: Config, room: Any) -> Config:
    """The config of one ingest room: the file's ``source`` section with the room's overrides."""
    rc = copy.deepcopy(cfg)
    rc.room_id = room.room
    src = rc.source
    if room.type is not None:
        src.type = room.type
    if room.url is not None:
        src.websocket.url = room.url
    if room.unique_id is not None:
        src.tiktok.unique_id = room.unique_id
    if room.port is not None:
        src.webhook.port = room.port
    if room.path is not None:
        src.webhook.path = room.path
    src.websocket.stop_on_live_end = False  # one stream ending is not the end of ingest
    src.tiktok.stop_on_live_end = False
    return rc


def check_for_ingest(cfg: Config, where: str) -> list[str]:
    if not cfg.ingest.rooms:
        return [f"{where}: 'ingest.rooms' lists no room (each: {{room: NAME, ...}} with its source settings)"]
    problems = []
    for room in cfg.ingest.rooms:
        problems += [f"{p} (room {room.room!r})" for p in check_for_run(room_config(cfg, room), where)]
    return problems


class RoomPump(SpillFile):
    """One room: its live source into its queue, and the queue into its Redis stream.

    When Redis fails, events wait in memory for at most ``redis.drain``; then they go, in order,
    to the room's spill file (``spill_file``), and so does everything after them until Redis
    takes the file back (``_unspill``: in order, before any newer event; the file is deleted only
    once all of it is appended). On stop the pump appends for at most ``redis.drain`` and spills
    what is left, and so it does if it is cancelled or fails: no event is dropped silently."""

    def __init__(self, client: Any, room: str, source: Any, cfg: Config, stop: asyncio.Event, *,
                 spill_dir: Path | None = None) -> None:
        self.client = client
        self.room = room
        self.source = source
        self.queue = EventQueue(cfg.queue_capacity)
        self.prefix = cfg.redis.prefix
        self.group = cfg.redis.group
        self.maxlen = cfg.redis.stream_maxlen
        self.keep_raw = cfg.ingest.keep_raw
        self.batch = cfg.redis.batch
        self.drain_s = cfg.redis.drain_ms / 1000
        folder = spill_folder(cfg) if spill_dir is None else spill_dir
        self.spill_path = spill_file(folder, room)
        self.rejected_path = folder / f"{room}{REJECTED_SUFFIX}"
        self.stop = stop
        self.appended = 0  # events appended to the stream (spilled ones appended back included)
        self.failures = 0  # appends that failed (retried), in all
        self.spilled = 0  # events written to the spill file
        self.unspilled = 0  # spilled events appended back to the stream
        self.rejected = 0  # spill file lines that were not events (set aside in rejected_path)
        self.unsaved = 0  # events neither appended nor spilled (the spill file could not be written): logged whole
        # For /healthz and /metrics (bot.control.worker_server): the pump's last turn (monotonic),
        # when its appends started failing (None while they succeed), the source's connection.
        self.heartbeat = time.monotonic()
        self.needs_register = False  # Redis was down at start, failed, or lost the room: registered at the next success
        self.registered_again = 0  # batches that found the room gone from Redis (it came back empty)
        self.failing_since: float | None = None
        self.connected: bool | None = None
        self._pending: list[Event] = []  # taken from the queue, not appended yet
        self._deadline: float | None = None  # when the drain time is up, once stopping
        self._spill_waiting = False  # the spill file holds events to append before any newer one
        self._spill_offset = 0  # bytes of the spill file appended back already (by this process)
        self._spill_line = 0  # lines of it read so far (for file:line)
        self._spill_run = 0  # events appended back from the spill file since it was found or made
        self._rejected_upto = 0  # lines up to here were set aside already
        self._tail_ok = False  # the spill file ends with a newline (checked before the first write)

    async def run_source(self) -> None:
        """The source, restarted with backoff if it ends or crashes, until stopped."""
        backoff = Backoff(1.0, 60.0)
        clock = WallClock()
        while not self.stop.is_set():
            try:
                await self.source.run(self.queue, clock, self.stop)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("source_failed", room=self.room, error=f"{type(exc).__name__}: {exc}")
            if self.stop.is_set():
                return
            try:
                await asyncio.wait_for(self.stop.wait(), backoff.next_delay())
            except asyncio.TimeoutError:
                pass

    async def pump(self) -> None:
        """Append the spill file's events, then what is queued, until stopped; then what is left,
        for at most ``drain_s``; what is still left goes to the spill file."""
        try:
            await self._pump()
        except BaseException as exc:  # cancelled (run_ingest's hard stop) or a bug: spill, never drop
            self._spill_all(f"pump {'cancelled' if isinstance(exc, asyncio.CancelledError) else 'failed'}")
            raise

    async def _pump(self) -> None:
        import redis

        errors = (redis.RedisError, OSError, asyncio.TimeoutError)
        backoff = Backoff(0.2, 10.0)
        self._spill_waiting = self._spill_found()
        while True:
            now = time.monotonic()
            self.heartbeat = now
            deadline = self._stop_deadline()
            if deadline is not None:
                if not (self._pending or len(self.queue) or self._spill_waiting):
                    return
                if now >= deadline:
                    self._spill_all("drain time up")
                    return
            try:
                if self.needs_register:  # a Redis that restarted empty has lost the room and its group
                    await self._bounded(register_room(self.client, self.room, prefix=self.prefix, group=self.group))
                    self.needs_register = False
                if self._spill_waiting:  # the spilled events go first, in order
                    if not await self._unspill():
                        continue  # the file could not be read: logged, left for the operator
                else:
                    if not self._pending:
                        self._pending = self._prepared(await self.queue.get(timeout=0.25, limit=self.batch))
                        if not self._pending:
                            continue
                    await self._append(self._pending)
                    self.appended += len(self._pending)
                    self._pending = []
            except errors as exc:
                self.failures += 1
                now = time.monotonic()
                if self.failing_since is None:
                    self.failing_since = now
                self.needs_register = True  # (cheap, and a Redis that failed may come back empty)
                delay = backoff.next_delay()
                log.error("append_failed", room=self.room, events=len(self._pending), retry_in=round(delay, 2),
                          error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                          queued=len(self.queue), spill_waiting=self._spill_waiting)
                deadline = self._stop_deadline()
                if deadline is not None:
                    if now >= deadline:
                        self._spill_all("redis failing at stop")
                        return
                elif now - self.failing_since >= self.drain_s:  # held in memory long enough: to disk
                    self._spill_held()
                await self._nap(delay)
                continue
            backoff.reset()
            self.failing_since = None

    async def _append(self, events: list[Event]) -> None:
        """One batch, and whether Redis still knows the room (asked in the same round trip, so a
        Redis that came back empty between batches is noticed though no append failed): if not,
        the room and its group are made again before the next batch (``needs_register``)."""
        _, registered = await self._bounded(append_checked(self.client, self.room, events, prefix=self.prefix,
                                                           maxlen=self.maxlen, keep_raw=self.keep_raw))
        if not registered:
            self.registered_again += 1
            log.warning("room_not_registered", room=self.room, events=len(events),
                        hint="Redis lost its data (restarted without persistence?): registering the room again")
            self.needs_register = True

    def _prepared(self, events: list[Event]) -> list[Event]:
        for ev in events:
            if not ev.room_id:
                ev.room_id = self.room
            if ev.type == CONNECT or ev.type == DISCONNECT:
                self.connected = ev.type == CONNECT
        return events

    def _stop_deadline(self) -> float | None:
        """Once stopped: when the drain time is up (None while running)."""
        if self._deadline is None and self.stop.is_set():
            self._deadline = time.monotonic() + self.drain_s
        return self._deadline

    async def _bounded(self, step: Any) -> Any:
        """A Redis step; once stopping, it may not outlast the drain time (one begun before the
        stop is cut by the client's socket timeout, or by run_ingest's hard stop)."""
        deadline = self._stop_deadline()
        if deadline is None:
            return await step
        return await asyncio.wait_for(step, max(0.05, deadline - time.monotonic()))

    async def _nap(self, delay: float) -> None:
        """Wait before the next try; woken by stop, and never past the drain time."""
        deadline = self._stop_deadline()
        if deadline is not None:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            return
        try:
            await asyncio.wait_for(self.stop.wait(), delay)
        except asyncio.TimeoutError:
            pass


async def run_ingest(cfg: Config, url: str | None = None, *, sources: dict[str, Any] | None = None,
                     stop: asyncio.Event | None = None) -> dict[str, int]:
    """Run every ``ingest.rooms`` source until SIGTERM/SIGINT (or ``stop``); returns the events
    appended per room. ``sources`` (room -> live source) replaces the configured ones in tests.
    Once stopped, it returns within about ``redis.drain`` (plus a short grace): whatever Redis
    did not take by then is in the rooms' spill files."""
    import redis
    import redis.asyncio as aioredis

    from bot.daemon import build_source

    client = aioredis.from_url(url or cfg.redis.url)
    stop = stop or asyncio.Event()
    folder = spill_folder(cfg)
    pumps = []
    for room in cfg.ingest.rooms:
        src = (sources or {}).get(room.room) or build_source(room_config(cfg, room))
        pump = RoomPump(client, room.room, src, cfg, stop, spill_dir=folder)
        try:
            await asyncio.wait_for(register_room(client, room.room, prefix=cfg.redis.prefix, group=cfg.redis.group),
                                   STOP_GRACE_S)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:  # the pump registers it once Redis is back
            pump.needs_register = True
            log.error("redis_unavailable_at_start", room=room.room, error=f"{type(exc).__name__}: {exc}")
        pumps.append(pump)
    _other_spills(folder, {p.spill_path for p in pumps})
    server = None
    if cfg.http_enabled:  # /healthz and /metrics (bot.control.worker_server)
        from bot.control.worker_server import ScaleServer, redis_fail_threshold

        server = ScaleServer.for_ingest(pumps, host=cfg.http_host, port=cfg.http_port,
                                        redis_fail_s=redis_fail_threshold(cfg.redis.lease_ms))
        await server.start()
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGTERM, signal.SIGINT)
    for sig in sigs:
        loop.add_signal_handler(sig, stop.set)
    log.info("ingest_started", rooms=len(pumps), redis=redact_url(url or cfg.redis.url), spill=str(folder),
             drain_s=cfg.redis.drain_ms / 1000)
    source_tasks = [asyncio.create_task(p.run_source(), name=f"source:{p.room}") for p in pumps]
    pump_tasks = [asyncio.create_task(p.pump(), name=f"pump:{p.room}") for p in pumps]
    try:
        await stop.wait()
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)
        stop.set()
        for t in source_tasks:  # as LiveRunner: a source that has not ended by itself is cancelled
            if not t.done():
                t.cancel()
        await asyncio.gather(*source_tasks, return_exceptions=True)
        # What was queued still goes out, for at most the drain time (each pump keeps to it; a
        # Redis call that hangs is cut here, and the pump spills what it held when cancelled).
        if pump_tasks:
            _, late = await asyncio.wait(pump_tasks, timeout=cfg.redis.drain_ms / 1000 + STOP_GRACE_S)
            for t in late:
                t.cancel()
        for p, res in zip(pumps, await asyncio.gather(*pump_tasks, return_exceptions=True)):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                log.error("pump_failed", room=p.room, error=f"{type(res).__name__}: {res}")
        shed = {p.room: sum(v for k, v in p.queue.shed.items() if k != "like_hearts") for p in pumps}
        log.info("ingest_stopped", appended=sum(p.appended for p in pumps), shed=sum(shed.values()),
                 spilled=sum(p.spilled for p in pumps), unspilled=sum(p.unspilled for p in pumps),
                 spill_files=sorted(str(p.spill_path) for p in pumps if p.spill_path.exists()),
                 not_spilled=sum(p.unsaved for p in pumps))
        if server is not None:
            await server.stop()
        try:
            await asyncio.wait_for(client.aclose(), STOP_GRACE_S)
        except (Exception, asyncio.TimeoutError) as exc:
            log.warning("redis_close_failed", error=f"{type(exc).__name__}: {exc}")
    return {p.room: p.appended for p in pumps}


__all__ = ["FIELD", "REJECTED_SUFFIX", "SPILL_SUFFIX", "STOP_GRACE_S", "RoomPump", "append_checked",
           "append_events", "check_for_ingest", "decode_entry", "decode_value", "encode_event", "read_events",
           "register_room", "room_config", "run_ingest", "spill_file", "spill_folder"]
