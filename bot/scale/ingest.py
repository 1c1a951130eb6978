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
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson
import structlog

from bot.appendfile import end_cut_line
from bot.clock import WallClock
from bot.config import Config, check_for_run, redact_url
from bot.events.model import CONNECT, DISCONNECT, Event
from bot.events.wire import decode_line
from bot.scale.keys import Keys, check_room
from bot.sources.backoff import Backoff
from bot.sources.queue import EventQueue

log = structlog.get_logger("bot.ingest")
FIELD = b"e"
SPILL_SUFFIX = ".jsonl"  # {spill}/{room}.jsonl: a room's events Redis did not take
REJECTED_SUFFIX = ".jsonl.rejected"  # {spill}/{room}.jsonl.rejected: its lines that were not events
STOP_GRACE_S = 2.0  # past redis.drain, a pump stuck in a Redis call is cancelled (and spills)


def encode_event(ev: Event, keep_raw: bool = False) -> bytes:
    return orjson.dumps(ev.to_dict(with_raw=keep_raw))


def decode_entry(fields: dict[bytes, bytes] | Sequence[bytes]) -> Event:
    """The event of a stream entry (its fields as a dict, or Redis' flat [field, value, ...]).
    Raises ValueError (``DecodeError``) or KeyError for an entry that is not ours."""
    if isinstance(fields, dict):
        raw = fields[FIELD]
    else:
        raw = dict(zip(fields[::2], fields[1::2]))[FIELD]
    return decode_value(raw)


def decode_value(raw: bytes) -> Event:
    """The event of one entry's ``e`` field; ValueError (``DecodeError``) if it is not one."""
    [ev] = decode_line(raw)
    return ev


async def register_room(client: Any, room: str, *, prefix: str = "livebot", group: str = "workers") -> None:
    """Make ``room`` known to the workers: in the rooms set, with its stream and consumer group."""
    import redis

    keys = Keys(prefix)
    check_room(room)
    try:
        await client.xgroup_create(keys.events(room), group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    await client.sadd(keys.rooms, room)


async def append_events(client: Any, room: str, events: Iterable[Event], *, prefix: str = "livebot",
                        maxlen: int = 100_000, keep_raw: bool = False) -> list[bytes]:
    """Append events to the room's stream in one pipelined round trip; returns their entry ids.
    Events without a receive time get the current time (as a live source would stamp them)."""
    ids, _ = await append_checked(client, room, events, prefix=prefix, maxlen=maxlen, keep_raw=keep_raw, check=False)
    return ids


async def append_checked(client: Any, room: str, events: Iterable[Event], *, prefix: str = "livebot",
                         maxlen: int = 100_000, keep_raw: bool = False,
                         check: bool = True) -> tuple[list[bytes], bool]:
    """``append_events``, and (``check``) in the same round trip whether the room is still in
    ``{p}:rooms``: (entry ids, registered). A Redis that restarted without its data has lost the
    room and its consumer group, and the client reconnects silently, so no append fails: the
    pump registers the room again when this says False (the group at id 0, so the events just
    appended are read too)."""
    keys = Keys(prefix)
    key = keys.events(check_room(room))
    pipe = client.pipeline(transaction=False)
    if check:
        pipe.sismember(keys.rooms, room)
    clock = WallClock()
    n = 0
    for ev in events:
        if ev.received is None:
            ev.received = clock.now()
        pipe.xadd(key, {FIELD: encode_event(ev, keep_raw)}, maxlen=maxlen or None, approximate=True)
        n += 1
    if not n:
        return [], True
    ids = await pipe.execute()
    if not check:
        return ids, True
    return ids[1:], bool(ids[0])


async def read_events(client: Any, room: str, *, prefix: str = "livebot") -> list[tuple[bytes, Event]]:
    """Every event kept in the room's stream, oldest first (for tests and tools)."""
    out = []
    for entry_id, fields in await client.xrange(Keys(prefix).events(check_room(room))):
        out.append((entry_id, decode_entry(fields)))
    return out


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


def spill_folder(cfg: Config) -> Path:
    """Where ingest spills the events Redis did not take: ``redis.spill``, else ``spill`` inside
    ``record.folder``, else ``spill`` in the working directory."""
    if cfg.redis.spill is not None:
        return cfg.redis.spill
    if cfg.record is not None:
        return cfg.record / "spill"
    return Path("spill")


def spill_file(folder: Path, room: str) -> Path:
    """A room's spill file: ``{folder}/{room}.jsonl``."""
    return folder / f"{check_room(room)}{SPILL_SUFFIX}"


class RoomPump:
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

    # -- the spill file ----------------------------------------------------------------------------

    def _spill_found(self) -> bool:
        """True if a spill file (of an earlier run, or this one) waits to be appended."""
        try:
            size = self.spill_path.stat().st_size
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("spill_unreadable", room=self.room, path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}")
            return False
        if size <= self._spill_offset:
            if not size:  # made, but nothing written to it before a crash
                with contextlib.suppress(OSError):
                    self.spill_path.unlink()
            return False
        log.warning("spill_found", room=self.room, path=str(self.spill_path), bytes=size - self._spill_offset)
        return True

    def _write_spill(self, events: list[Event]) -> bool:
        """Append events to the spill file (flushed to disk); False, logged, if that failed."""
        data = b"".join(encode_event(ev, self.keep_raw) + b"\n" for ev in events)
        try:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            if not self._tail_ok:  # a line cut short by a crash must not swallow the next event
                end_cut_line(self.spill_path)
            self._tail_ok = False
            with open(self.spill_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._tail_ok = True
        except OSError as exc:
            log.error("spill_failed", room=self.room, events=len(events), path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}")
            return False
        self.spilled += len(events)
        self._spill_waiting = True
        return True

    def _spill_held(self) -> None:
        """While running: what waits in memory goes to the spill file (kept in memory if it cannot)."""
        events = self._pending + self._prepared(self.queue.get_nowait(limit=len(self.queue)))
        if not events:
            return
        if self._write_spill(events):
            self._pending = []
            log.warning("events_spilled", room=self.room, events=len(events), path=str(self.spill_path),
                        reason="redis failing", spilled=self.spilled)
        else:
            self._pending = events  # in order: tried again (or spilled) later

    def _spill_all(self, reason: str) -> None:
        """At the end: everything not appended to the spill file; whatever cannot be written there
        is logged whole (the last place left), never dropped silently."""
        events = self._pending + self._prepared(self.queue.get_nowait(limit=len(self.queue)))
        self._pending = []
        if events:
            if self._write_spill(events):
                log.warning("events_spilled", room=self.room, events=len(events), path=str(self.spill_path),
                            reason=reason, spilled=self.spilled)
            else:
                self.unsaved += len(events)
                log.error("events_not_spilled", room=self.room, events=len(events), path=str(self.spill_path),
                          reason=reason, lines=[encode_event(ev, self.keep_raw).decode() for ev in events])
        if self._spill_offset:
            self._compact()

    def _compact(self) -> None:
        """Drop the part of the spill file appended already, so the next start does not append it
        again (replaced atomically; if this fails, those events are appended twice: duplicates)."""
        tmp = self.spill_path.with_name(self.spill_path.name + ".tmp")
        try:
            with open(self.spill_path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(self._spill_offset)
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.spill_path)
        except OSError as exc:
            log.warning("spill_compact_failed", room=self.room, path=str(self.spill_path),
                        error=f"{type(exc).__name__}: {exc}", appended_again_at_start=self._spill_run)
            return
        self._spill_offset = self._spill_line = self._rejected_upto = 0

    def _read_spill(self, limit: int) -> tuple[list[Event], int, int, bool]:
        """Up to ``limit`` events from the spill file's unappended part: (events, offset and line
        after them, at the end of the file). Lines that are not events are set aside."""
        events: list[Event] = []
        offset, lineno = self._spill_offset, self._spill_line
        with open(self.spill_path, "rb") as f:
            f.seek(offset)
            while len(events) < limit:
                line = f.readline()
                if not line:
                    return events, offset, lineno, True
                offset += len(line)
                lineno += 1
                text = line.strip()
                if not text:
                    continue
                try:
                    ev = decode_value(text)
                except Exception as exc:  # anything that is not one of our events
                    self._reject(line, lineno, exc)
                    continue
                events.append(ev)
            return events, offset, lineno, not f.read(1)

    def _reject(self, line: bytes, lineno: int, exc: Exception) -> None:
        if lineno <= self._rejected_upto:  # read again after a failed append: set aside already
            return
        self._rejected_upto = lineno
        self.rejected += 1
        where = f"{self.spill_path}:{lineno}"
        try:
            with open(self.rejected_path, "ab") as f:
                f.write(line if line.endswith(b"\n") else line + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            log.error("spill_line_rejected", where=where, room=self.room, error=f"{type(exc).__name__}: {exc}",
                      kept=None, keep_error=f"{type(err).__name__}: {err}", line=line.decode("utf-8", "replace"))
            return
        log.error("spill_line_rejected", where=where, room=self.room, error=f"{type(exc).__name__}: {exc}",
                  kept=str(self.rejected_path))

    async def _unspill(self) -> bool:
        """Append the next batch of the spill file; delete the file once all of it is appended.
        Redis errors propagate (the batch is tried again); False if the file cannot be read."""
        try:
            events, offset, lineno, at_end = self._read_spill(self.batch)
        except OSError as exc:
            log.error("spill_unreadable", room=self.room, path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}", left_in_place=True)
            self._spill_waiting = False  # go on with live events; the file stays for the operator
            return False
        if events:
            for ev in events:
                if not ev.room_id:
                    ev.room_id = self.room
            await self._append(events)
            self.appended += len(events)
            self.unspilled += len(events)
            self._spill_run += len(events)
        self._spill_offset, self._spill_line = offset, lineno
        if at_end:
            self._spill_done()
        return True

    def _spill_done(self) -> None:
        """Everything in the spill file is appended: delete it."""
        self._spill_waiting = False
        try:
            self.spill_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # keep the offset: later spills go after it, and are appended from there
            log.error("spill_not_deleted", room=self.room, path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}", appended_again_at_start=self._spill_offset)
            return
        log.info("spill_replayed", room=self.room, events=self._spill_run, rejected=self.rejected,
                 path=str(self.spill_path))
        self._spill_offset = self._spill_line = self._rejected_upto = self._spill_run = 0
        self._tail_ok = False


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


def _other_spills(folder: Path, ours: set[Path]) -> None:
    """Spill files of rooms this ingest does not serve are left alone, but said."""
    try:
        others = sorted(str(f) for f in folder.glob(f"*{SPILL_SUFFIX}") if f not in ours)
    except OSError:
        return
    if others:
        log.warning("spill_other_rooms", files=others, hint="add their rooms to ingest.rooms to append them")

