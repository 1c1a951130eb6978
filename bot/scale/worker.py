"""``livebot run --source redis://...``: a worker that processes creator rooms from Redis streams.

Every worker joins the consumer group ``workers`` of each room stream it owns. A room is owned
by one worker at a time, through a lease ``{p}:owner:{room}`` (SET NX PX, renewed every third
of a lease), so its events are processed in order by one engine. Workers heartbeat into
``{p}:workers``; each takes free rooms up to its fair share, ceil(rooms / live workers), and
hands back its extra rooms (after a checkpoint) when another worker joins. A worker that dies
stops renewing: its leases expire and the others take its rooms.

Taking a room: load its engine snapshot (``bot.engine.snapshot.full_snapshot``) and lifetime totals, then
``XAUTOCLAIM`` the group's pending entries (the previous owner's unacknowledged ones) and
process them in id order, then new entries (``>``). Reads are done by a script that checks the
lease, so entries are only ever delivered to the room's owner, and a takeover sees them all.

Actions: a script publishes them to ``{p}:actions:{room}`` only if the action's marker
(event id or time, rule, kind, ordinal) is new, and only while the lease is ours. A replayed
entry fires the same actions (the snapshot restores everything that decides them) and finds
their markers: **every action is published exactly once**. The configured sinks (console,
JSONL) get the actions the script reported new, after it ran: exactly once as long as the
worker does not die between the script and the send; a worker killed in that instant loses
those actions for its local sinks (they are in the actions stream). Consumers that must not
miss one (overlays, webhooks) should read the actions stream.

Checkpoint (every ``checkpoint_every`` or ``checkpoint_events`` per room, at a release, at a
stream's end, at shutdown): one script checks the lease, stores the snapshot, acknowledges every
entry processed since the last checkpoint, and clears the markers; if the lease is lost nothing
is written and the room is dropped unacknowledged. The snapshot always matches the acknowledged
position, so a new owner replays exactly the unacknowledged entries.

Engine time is each event's receive time (``recv``, stamped by ingest; ``ts`` if absent), never
going backwards. A room with nothing to read fires its due deadlines (timers, streak flushes,
queued chat lines) ``idle_lag`` after the wall clock passes them, so a late event rarely finds
time already moved past it (ingest and worker hosts need synchronized clocks, e.g. NTP).

With ``http.enabled``, ``run_worker`` serves ``/healthz`` and ``/metrics`` on ``http.host``/``http.port``
(``bot.control.worker_server``), read from ``heartbeat``, ``last_ok``, ``failures`` and ``counters``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import structlog

from bot.actions.dispatcher import Dispatcher
from bot.config import Config
from bot.control.reload import RuleReloader
from bot.engine.rules import RuleSet
from bot.scale import scripts
from bot.scale.keys import Keys
from bot.scale.worker_checkpoints import Checkpoints
from bot.scale.worker_leases import Leases, Room, wall_ms
from bot.scale.worker_processing import LOGGED_BAD_ENTRIES, READ_TOTAL, Processing
from bot.scale.worker_redis import RedisRestarts
from bot.scale.worker_rules import RoomRules
from bot.sinks.base import Sink
from bot.sources.backoff import Backoff

log = structlog.get_logger("bot.worker")
MAX_WAIT_S = 0.25  # the longest blocking wait: stop requests are seen at least this often


class Worker(Leases, RedisRestarts, Processing, Checkpoints, RoomRules):
    """The worker: its state and its loop are here; its parts, each a class of methods it inherits,
    are in ``worker_leases`` (ownership), ``worker_redis`` (a restarted Redis), ``worker_processing``
    (read, process, publish), ``worker_checkpoints`` and ``worker_rules`` (rules per room)."""

    def __init__(self, cfg: Config, client: Any, *, rules_path: Path, ruleset: RuleSet | None = None,
                 sinks: Sequence[Sink] = (), worker_id: str | None = None) -> None:
        self.cfg = cfg
        self.rc = cfg.redis
        self.keys = Keys(self.rc.prefix)
        self.client = client
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.dispatcher = Dispatcher(sinks)
        self.default_rules = Path(rules_path)
        self.rulesets: dict[Path, RuleSet] = {}
        self.reloaders: dict[Path, RuleReloader] = {}
        self._refused: dict[Path, Any] = {}  # rule folders that failed to load, by fingerprint
        if ruleset is not None:
            self._remember_rules(self.default_rules, ruleset)
        self.rooms: dict[str, Room] = {}
        self.stop = asyncio.Event()
        self.counters: Counter[str] = Counter()
        self.alive = 1
        self.share = 0
        # For /healthz and /metrics (bot.control.worker_server): monotonic times of the loop's last
        # turn and of the last Redis step that succeeded; Redis errors in a row, and in all.
        self.heartbeat = time.monotonic()
        self.last_ok: float | None = None
        self.failures = 0
        self.redis_errors = 0
        self._resync: set[str] = set()  # rooms to take again from their checkpoint (after a Redis error)
        self._grouped: set[str] = set()  # rooms whose stream and consumer group this worker made sure of
        self._run_id: str | bool | None = None  # Redis' run id (INFO server): a new one is a restarted Redis
        self._s = {name: client.register_script(getattr(scripts, name))
                   for name in ("MEMBERSHIP", "LEAVE", "RELEASE", "READ", "PUBLISH", "CHECKPOINT")}

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> Counter[str]:
        """Until SIGTERM/SIGINT or ``stop``: then checkpoint and hand back every room."""
        import redis

        loop = asyncio.get_running_loop()
        handlers = {signal.SIGTERM: self._stopper("SIGTERM"), signal.SIGINT: self._stopper("SIGINT"),
                    signal.SIGHUP: self.reload_all}
        installed = []
        for sig, handler in handlers.items():
            try:
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
            except (RuntimeError, ValueError):  # not the main thread (tests)
                pass
        watcher = asyncio.create_task(self._watch_rules(), name="rules-watch")
        tick_s = self.rc.lease_ms / 3000
        next_tick = 0.0
        self.failures = 0
        backoff = Backoff(0.1, 5.0)  # (with jitter: workers do not all knock on a restarted Redis at once)
        clean = False
        log.info("worker_started", worker=self.id, lease_ms=self.rc.lease_ms, prefix=self.rc.prefix)
        try:
            while not self.stop.is_set():
                self.heartbeat = time.monotonic()
                try:
                    if self._resync:
                        await self._retake()
                    if time.monotonic() >= next_tick:
                        await self._tick()
                        next_tick = time.monotonic() + tick_s
                    got = await self._read()
                    await self._idle()
                    await self._checkpoint_due()
                    if not got:
                        await self._wait(max(0.001, min(MAX_WAIT_S, next_tick - time.monotonic())))
                    self.failures = 0
                    backoff.reset()
                    self._progress()
                except (redis.RedisError, OSError) as exc:
                    self.failures += 1
                    self.redis_errors += 1
                    delay = backoff.next_delay()
                    log.error("redis_failed", worker=self.id, error=f"{type(exc).__name__}: {exc}",
                              retry_in=delay)
                    # A step may have failed halfway (entries read, their actions never published):
                    # every room starts again from its last checkpoint once Redis answers.
                    self._resync.update(self.rooms)
                    try:
                        await asyncio.wait_for(self.stop.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
            clean = True
        finally:
            watcher.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self._shutdown(clean)
        return self.counters

    def _progress(self) -> None:
        """A Redis step succeeded (a long takeover or hand-back is progress, not a stall)."""
        self.heartbeat = self.last_ok = time.monotonic()

    def _stopper(self, name: str):
        def stop() -> None:
            log.info("stopping", signal=name, worker=self.id)
            self.stop.set()
        return stop

    async def _shutdown(self, clean: bool = True) -> None:
        """Checkpoint and hand back every room; after a crash (``clean`` false) hand them back
        without a checkpoint: what was processed since the last one may not be published, so
        the next owner replays it from there."""
        import redis

        try:
            for room in list(self.rooms.values()):
                if clean:
                    await self._release(room)
                else:
                    await self._s["RELEASE"](keys=[self.keys.owner(room.name)], args=[self.id])
            await self._s["LEAVE"](keys=[self.keys.workers], args=[self.id])
        except (redis.RedisError, OSError) as exc:
            log.error("shutdown_incomplete", worker=self.id, error=f"{type(exc).__name__}: {exc}",
                      rooms=len(self.rooms))
        await self.dispatcher.close()
        log.info("worker_stopped", worker=self.id, **dict(self.counters))


async def run_worker(cfg: Config, url: str, *, rules_path: Path, ruleset: RuleSet | None = None,
                     sinks: Sequence[Sink] = (), worker_id: str | None = None) -> Counter[str]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    server = None
    try:
        worker = Worker(cfg, client, rules_path=rules_path, ruleset=ruleset, sinks=sinks, worker_id=worker_id)
        if cfg.http_enabled:  # /healthz and /metrics (bot.control.worker_server)
            from bot.control.worker_server import ScaleServer

            server = ScaleServer.for_worker(worker, host=cfg.http_host, port=cfg.http_port)
            await server.start()
        return await worker.run()
    finally:
        if server is not None:
            await server.stop()
        await client.aclose()


__all__ = ["LOGGED_BAD_ENTRIES", "MAX_WAIT_S", "READ_TOTAL", "Room", "Worker", "run_worker", "wall_ms"]
