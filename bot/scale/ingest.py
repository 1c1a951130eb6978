"""``livebot ingest``: live sources, one per creator room, appending normalized events to Redis.

Each room's source (``bot.daemon.build_source``: websocket, tiktok or webhook) pushes into its
own bounded ``EventQueue`` (so one busy room sheds only its own joins and likes), stamped with
the receive time (``recv``, the engine's time for the event). A pump per room takes what is
queued and appends it to ``{prefix}:events:{room}`` with one pipelined ``XADD ... MAXLEN ~``
per batch. The room is registered in ``{prefix}:rooms`` and its stream gets the workers'
consumer group (created at id 0, so no event appended before the first worker is missed).

If Redis is unreachable the batch is kept and retried with backoff; meanwhile the queue fills
and sheds by its policy (gifts, follows and subscribes are never shed). In ingest, a stream's
end does not stop its source: it waits for the creator's next live.

``append_events`` and ``register_room`` are the library functions (tests and the benchmark
use them); ``encode_event`` / ``decode_entry`` are the stream's record format: the orjson of
``Event.to_dict()`` in the field ``e``. With ``http.enabled``, ``run_ingest`` serves ``/healthz`` and
``/metrics`` per room (``bot.control.worker_server``).
"""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from typing import Any, Iterable, Sequence

import orjson
import structlog

from bot.clock import WallClock
from bot.config import Config, check_for_run
from bot.events.model import CONNECT, DISCONNECT, Event
from bot.events.wire import decode_obj
from bot.scale.keys import Keys, check_room
from bot.sources.backoff import Backoff
from bot.sources.queue import EventQueue

log = structlog.get_logger("bot.ingest")
FIELD = b"e"


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
    [ev] = decode_obj(orjson.loads(raw))
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
    key = Keys(prefix).events(check_room(room))
    pipe = client.pipeline(transaction=False)
    clock = WallClock()
    n = 0
    for ev in events:
        if ev.received is None:
            ev.received = clock.now()
        pipe.xadd(key, {FIELD: encode_event(ev, keep_raw)}, maxlen=maxlen or None, approximate=True)
        n += 1
    if not n:
        return []
    return await pipe.execute()


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


class RoomPump:
    """One room: its live source into its queue, and the queue into its Redis stream."""

    def __init__(self, client: Any, room: str, source: Any, cfg: Config, stop: asyncio.Event) -> None:
        self.client = client
        self.room = room
        self.source = source
        self.queue = EventQueue(cfg.queue_capacity)
        self.prefix = cfg.redis.prefix
        self.group = cfg.redis.group
        self.maxlen = cfg.redis.stream_maxlen
        self.keep_raw = cfg.ingest.keep_raw
        self.batch = cfg.redis.batch
        self.stop = stop
        self.appended = 0
        self.failures = 0
        # For /healthz and /metrics (bot.control.worker_server): the pump's last turn (monotonic),
        # when its appends started failing (None while they succeed), the source's connection.
        self.heartbeat = time.monotonic()
        self.failing_since: float | None = None
        self.connected: bool | None = None

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
        """Append what is queued until stopped, then what is left."""
        import redis

        backoff = Backoff(0.2, 10.0)
        pending: list[Event] = []
        lost_redis = False
        while True:
            self.heartbeat = time.monotonic()
            if not pending:
                if self.stop.is_set() and not len(self.queue):
                    return
                pending = await self.queue.get(timeout=0.25, limit=self.batch)
                if not pending:
                    continue
            for ev in pending:
                if not ev.room_id:
                    ev.room_id = self.room
                if ev.type == CONNECT or ev.type == DISCONNECT:
                    self.connected = ev.type == CONNECT
            try:
                if lost_redis:  # a Redis that restarted empty has lost the room and its group: make them again
                    await register_room(self.client, self.room, prefix=self.prefix, group=self.group)
                    lost_redis = False
                await append_events(self.client, self.room, pending, prefix=self.prefix, maxlen=self.maxlen,
                                    keep_raw=self.keep_raw)
            except (redis.RedisError, OSError) as exc:
                self.failures += 1
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                lost_redis = True
                delay = backoff.next_delay()
                log.error("append_failed", room=self.room, events=len(pending), retry_in=round(delay, 2),
                          error=f"{type(exc).__name__}: {exc}", queued=len(self.queue))
                if self.stop.is_set() and self.failures > 20:
                    log.error("append_gave_up", room=self.room, lost=len(pending) + len(self.queue))
                    return
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            self.failing_since = None
            self.appended += len(pending)
            pending = []


async def run_ingest(cfg: Config, url: str | None = None, *, sources: dict[str, Any] | None = None,
                     stop: asyncio.Event | None = None) -> dict[str, int]:
    """Run every ``ingest.rooms`` source until SIGTERM/SIGINT (or ``stop``); returns the events
    appended per room. ``sources`` (room -> live source) replaces the configured ones in tests."""
    import redis.asyncio as aioredis

    from bot.daemon import build_source

    client = aioredis.from_url(url or cfg.redis.url)
    stop = stop or asyncio.Event()
    pumps = []
    for room in cfg.ingest.rooms:
        src = (sources or {}).get(room.room) or build_source(room_config(cfg, room))
        await register_room(client, room.room, prefix=cfg.redis.prefix, group=cfg.redis.group)
        pumps.append(RoomPump(client, room.room, src, cfg, stop))
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
    log.info("ingest_started", rooms=len(pumps), redis=_safe_url(url or cfg.redis.url))
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
        await asyncio.gather(*pump_tasks, return_exceptions=True)  # what was queued still goes out
        shed = {p.room: sum(v for k, v in p.queue.shed.items() if k != "like_hearts") for p in pumps}
        log.info("ingest_stopped", appended=sum(p.appended for p in pumps), shed=sum(shed.values()))
        if server is not None:
            await server.stop()
        await client.aclose()
    return {p.room: p.appended for p in pumps}


def _safe_url(url: str) -> str:
    """A URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
