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
import hashlib
import math
import os
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import orjson
import structlog

from bot.actions.dispatcher import Dispatcher
from bot.actions.model import Action
from bot.config import Config, engine_options
from bot.control.reload import RuleReloader
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules
from bot.engine.rules import RuleSet
from bot.events.model import LIVE_END
from bot.scale import scripts
from bot.scale.scripts import split_entries
from bot.engine.snapshot import full_restore, full_snapshot
from bot.sources.backoff import Backoff
from bot.scale.ingest import decode_value, register_room
from bot.scale.keys import ROOM_NAME, Keys
from bot.scale.store import decode_snapshot
from bot.sinks.base import Sink
from bot.store.jsonfile import StoreError
from bot.store.keeper import session_summary

log = structlog.get_logger("bot.worker")
action_log = structlog.get_logger("bot.actions")
READ_TOTAL = 4096  # entries asked for per read over all rooms (keeps one loop turn short)
MAX_WAIT_S = 0.25  # the longest blocking wait: stop requests are seen at least this often
LOGGED_BAD_ENTRIES = 5


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Room:
    name: str
    engine: Engine
    rules_path: Path
    last: int = 0  # engine time (ms), never going backwards
    mode: bytes = b"0-0"  # b">" reads new entries; anything else is the XAUTOCLAIM cursor
    recovering: bool = True  # markers are kept until the previous owner's actions are all replayed
    taken_at: int = 0  # wall time of the takeover
    last_id: bytes = b"0-0"  # the last entry delivered to the group (for the blocking wait)
    caught_up: bool = False  # the last read found nothing new
    unacked: list[bytes] = field(default_factory=list)
    dirty: bool = False
    checkpoint_at: float = 0.0  # monotonic
    events: int = 0
    replayed: int = 0
    duplicates: int = 0
    bad: int = 0

    def time(self, t: int) -> int:
        if t < self.last:
            t = self.last
        self.last = t
        return t


class Worker:
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

    # -- membership: heartbeat, leases, fair share ---------------------------------------------

    async def _tick(self) -> None:
        if await self._check_restart():  # before the leases are renewed: a lost one is taken again
            await self._retake()
        held = list(self.rooms)
        _now, alive, renewed, names = await self._s["MEMBERSHIP"](
            keys=[self.keys.workers, self.keys.rooms] + [self.keys.owner(r) for r in held],
            args=[self.id, self.rc.lease_ms])
        for name, ok in zip(held, renewed):
            if not ok:
                self._drop(name, "lease lost")
        rooms = sorted(n.decode() for n in names if ROOM_NAME.match(n.decode()))
        self.alive = max(1, int(alive))
        self.share = math.ceil(len(rooms) / self.alive)
        if len(self.rooms) > self.share:
            extra = sorted(self.rooms, key=self._preference)[: len(self.rooms) - self.share]
            for name in extra:
                await self._release(self.rooms[name])
        elif len(self.rooms) < self.share:
            candidates = [r for r in rooms if r not in self.rooms]
            owners = await self.client.mget([self.keys.owner(r) for r in candidates]) if candidates else []
            free = sorted((r for r, o in zip(candidates, owners) if o is None), key=self._preference, reverse=True)
            for name in free:
                if len(self.rooms) >= self.share or self.stop.is_set():
                    break
                if await self.client.set(self.keys.owner(name), self.id, nx=True, px=self.rc.lease_ms):
                    await self._take(name)
        self._forget_unused_rules()

    async def _check_restart(self) -> bool:
        """Redis' run id, once a tick: the client reconnects silently, so a Redis restarted between
        two steps (perhaps without its data: no rooms set, no streams, no groups, no leases, no
        snapshots) may show no error at all. Then every room held is taken again from what Redis
        has (``_retake``), and its stream, group and place in the rooms set are made again."""
        if self._run_id is False:  # INFO is not allowed (a restricted ACL user): only errors tell
            return False
        import redis

        try:
            info = await self.client.info("server")
        except redis.ResponseError as exc:  # (NOPERM): keep working without the check, said once
            log.warning("redis_run_id_unavailable", worker=self.id, error=str(exc),
                        hint="allow INFO to notice a Redis restarted without its data between two steps")
            self._run_id = False
            return False
        run_id = info.get("run_id")
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        if restarted:
            self.counters["redis_restarts"] += 1
            log.warning("redis_restarted", worker=self.id, rooms=len(self.rooms))
            self._grouped.clear()
            self._resync.update(self.rooms)
        return restarted

    async def _ensure_group(self, name: str) -> None:
        """The room's stream, its consumer group (at id 0) and its place in the rooms set: made once
        per room (``register_room``, as ingest does), and again only after Redis lost them."""
        if name not in self._grouped:
            await register_room(self.client, name, prefix=self.rc.prefix, group=self.rc.group)
            self._grouped.add(name)

    def _preference(self, room: str) -> bytes:
        """Rendezvous hashing: workers starting together prefer different rooms."""
        return hashlib.blake2b(f"{room}\0{self.id}".encode(), digest_size=8).digest()

    async def _take(self, name: str) -> None:
        """We hold the lease: load the room's state, then replay its pending entries."""
        path = self._rules_path(name)
        ruleset = self._ruleset(path)
        if ruleset is None:  # its rules do not load: leave the room (its events wait in the stream)
            await self._s["RELEASE"](keys=[self.keys.owner(name)], args=[self.id])
            return
        stream = self.keys.events(name)
        await self._ensure_group(name)
        raw_snap = await self.client.hmget(self.keys.snapshot(name), ["saved_at", "data"])
        lifetime = {k.decode(): orjson.loads(v) for k, v in (await self.client.hgetall(self.keys.lifetime(name))).items()}
        engine = Engine(ruleset, **engine_options(self.cfg), lifetime=lifetime)
        now = wall_ms()
        room = Room(name, engine, path, taken_at=now, checkpoint_at=time.monotonic())
        stale: tuple[int, Engine] | None = None
        try:
            found = decode_snapshot(name, raw_snap)
        except StoreError as exc:
            log.error("snapshot_unusable", room=name, error=str(exc))
            found = None
        if found is not None:
            saved_at, snap = found
            try:
                full_restore(engine, snap)
            except ValueError as exc:
                log.error("snapshot_unusable", room=name, error=str(exc))
                room.engine = engine.fresh(lifetime)
            else:
                if now - saved_at > self.cfg.state_resume_ms:
                    stale = (saved_at, engine)
                else:
                    room.last = saved_at
        for group in await self.client.xinfo_groups(stream):
            if group["name"] == self.rc.group.encode():
                room.last_id = group["last-delivered-id"]
        self.rooms[name] = room
        self.counters["rooms_taken"] += 1
        self._progress()
        log.info("room_taken", room=name, worker=self.id, resumed=found is not None and stale is None,
                 rules=str(path), share=self.share, workers=self.alive)
        if stale is not None:  # a stream that never ended cleanly: fold it in first
            saved_at, old = stale
            log.info("finishing_stale_stream", room=name, saved_ms_ago=now - saved_at)
            await self._finish(room, old, saved_at, acked=0)

    async def _release(self, room: Room) -> None:
        """Checkpoint, then hand the room back (another worker may take it at once)."""
        if await self._checkpoint([room], force=True):
            await self._s["RELEASE"](keys=[self.keys.owner(room.name)], args=[self.id])
            stream = self.keys.events(room.name)
            try:  # (deleting a consumer drops its pending entries: only when it has none)
                if not await self.client.xpending_range(stream, self.rc.group, "-", "+", 1, consumername=self.id):
                    await self.client.xgroup_delconsumer(stream, self.rc.group, self.id)
            except Exception:  # the stream was deleted meanwhile: nothing to clean
                pass
            self.rooms.pop(room.name, None)
            log.info("room_released", room=room.name, worker=self.id, events=room.events)

    async def _retake(self) -> None:
        """After a Redis error: forget what each room processed since its last checkpoint and take
        it again from there, as a new owner would (its unacknowledged entries are claimed and
        replayed; the markers of actions already published stop a second thank-you). Otherwise
        an entry read just before the error, whose actions were never published, would be
        acknowledged by the next checkpoint: a gift never thanked."""
        for name in sorted(self._resync):
            room = self.rooms.get(name)
            if room is None:  # released or lost meanwhile
                self._resync.discard(name)
                continue
            owner = self.keys.owner(name)
            ours = await self.client.get(owner) == self.id.encode() or \
                await self.client.set(owner, self.id, nx=True, px=self.rc.lease_ms)
            if not ours:
                self._resync.discard(name)
                self._drop(name, "lease lost during a Redis error")
                continue
            self.counters["rooms_resynced"] += 1
            log.info("room_resync", room=name, worker=self.id, unacked=len(room.unacked))
            del self.rooms[name]
            try:
                await self._take(name)
            except BaseException:
                self.rooms.setdefault(name, room)  # still ours, still to be taken again
                raise
            self._resync.discard(name)

    def _drop(self, name: str, why: str) -> None:
        """The lease is gone: forget the room without acknowledging anything."""
        room = self.rooms.pop(name, None)
        if room is not None:
            self.counters["rooms_lost"] += 1
            log.warning("room_lost", room=name, worker=self.id, why=why, unacked=len(room.unacked))

    # -- reading and processing --------------------------------------------------------------

    async def _read(self) -> int:
        """One fenced read over every room; process what came. Returns the entries read, or 1
        while some room is still replaying (the loop must not wait then)."""
        rooms = list(self.rooms.values())
        if not rooms:
            return 0
        count = max(8, min(self.rc.batch, READ_TOTAL // len(rooms)))
        keys: list[str] = []
        for room in rooms:
            keys += [self.keys.owner(room.name), self.keys.events(room.name)]
        args: list[Any] = [self.id, self.rc.group, count] + [room.mode for room in rooms]
        results = await self._s["READ"](keys=keys, args=args)
        got = 0
        out: list[tuple[Room, list[Action]]] = []
        for room, res in zip(rooms, results):
            if res is None:
                self._drop(room.name, "lease lost")
                continue
            tag = res[0]
            if tag == b"!":
                log.error("read_failed", room=room.name, error=res[1].decode() if isinstance(res[1], bytes) else res[1])
                if b"NOGROUP" in (res[1] if isinstance(res[1], bytes) else b""):  # Redis lost it: make it again
                    self._grouped.discard(room.name)
                    await self._ensure_group(room.name)
                continue
            entries = split_entries(res[1])
            if tag == b">":
                room.caught_up = not entries
                if entries:
                    room.last_id = entries[-1][0]
            else:
                room.caught_up = False
                if res[2]:
                    self.counters["trimmed_before_processing"] += res[2]
                    log.error("entries_trimmed", room=room.name, lost=res[2],
                              hint="the stream's MAXLEN dropped entries that were never processed")
                room.replayed += len(entries)
                room.mode = b">" if tag == b"0-0" else tag
                got = max(got, 1)
            got += len(entries)
            if entries:
                before = room.events
                await self._process(room, entries, out)
                self.counters["events"] += room.events - before
        await self._publish(out)
        for room in rooms:
            if room.recovering and room.mode == b">" and room.name in self.rooms:
                due = room.engine.next_deadline()
                if room.last >= room.taken_at or due is None or due > room.taken_at:
                    room.recovering = False
                    room.dirty = True  # the next checkpoint clears the previous owner's markers
                    log.info("room_recovered", room=room.name, worker=self.id, replayed=room.replayed,
                             duplicates=room.duplicates)
                    await self._forget_dead_consumers(room)
        return got

    async def _forget_dead_consumers(self, room: Room) -> None:
        """Consumers of earlier owners with nothing pending any more (their entries were claimed)."""
        stream = self.keys.events(room.name)
        for c in await self.client.xinfo_consumers(stream, self.rc.group):
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if name != self.id and not c["pending"] and c["idle"] > self.rc.lease_ms:
                await self.client.xgroup_delconsumer(stream, self.rc.group, name)

    async def _process(self, room: Room, entries: list, out: list[tuple[Room, list[Action]]]) -> None:
        actions: list[Action] = []
        engine = room.engine
        for entry_id, raw in entries:
            room.unacked.append(entry_id)
            try:
                ev = decode_value(raw)
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError and DecodeError are ValueErrors
                room.bad += 1
                self.counters["bad_entries"] += 1
                if room.bad <= LOGGED_BAD_ENTRIES:
                    log.warning("bad_entry", room=room.name, id=entry_id.decode(), error=f"{type(exc).__name__}: {exc}")
                continue
            now = room.time(ev.received if ev.received is not None else ev.ts)
            ev.received = now
            room.events += 1
            actions += engine.feed(ev, now)
            if ev.type == LIVE_END:  # (the lines the chat budget still holds are not all sent at once)
                closing, held = engine.close_live(now)
                actions += closing
                if held:
                    self.counters["chat_held_at_close"] += len(held)
                    log.warning("chat_lines_held_at_close", room=room.name, lines=len(held), reason="shutdown",
                                texts=[a.text for a in held])
                out.append((room, actions))
                await self._publish(out)
                if room.name not in self.rooms:
                    return
                actions = []
                await self._finish(room, engine, now, acked=len(room.unacked))
                if room.name not in self.rooms:
                    return
                engine = room.engine
        if actions:
            out.append((room, actions))
        room.dirty = True

    async def _publish(self, out: list[tuple[Room, list[Action]]]) -> None:
        """Publish each room's actions (markers first); hand the new ones to the sinks."""
        if not out:
            return
        batch = [(room, actions) for room, actions in out if actions and room.name in self.rooms]
        out.clear()
        if not batch:
            return
        pipe = self.client.pipeline(transaction=False)
        for room, actions in batch:
            args: list[Any] = [self.id, self.rc.dedup_ttl_ms, "1" if self.rc.actions_stream else "0",
                               self.rc.actions_maxlen]
            seen: Counter[tuple] = Counter()
            for a in actions:
                base = (a.event_id, a.ts if a.event_id is None else 0, a.rule, a.kind)
                args.append(orjson.dumps([*base, seen[base]]))
                seen[base] += 1
                args.append(orjson.dumps(a.to_dict()))
            await self._s["PUBLISH"](keys=[self.keys.owner(room.name), self.keys.done(room.name),
                                           self.keys.actions(room.name)], args=args, client=pipe)
        results = await pipe.execute()
        for (room, actions), res in zip(batch, results):
            if res == -1:
                self._drop(room.name, "lease lost")
                continue
            new = [actions[i - 1] for i in res]
            dupes = len(actions) - len(new)
            if dupes:
                room.duplicates += dupes
                self.counters["duplicates_skipped"] += dupes
            self.counters["actions"] += len(new)
            room.dirty = True
            if new:
                for a in new:
                    action_log.debug("action", room=room.name, rule=a.rule, kind=a.kind, user=a.user,
                                     event_id=a.event_id)
                await self.dispatcher.dispatch(new)

    async def _idle(self) -> None:
        """Rooms with nothing new fire what is due by the wall clock (less ``idle_lag``)."""
        target = wall_ms() - self.rc.idle_lag_ms
        out: list[tuple[Room, list[Action]]] = []
        for room in self.rooms.values():
            engine = room.engine
            if not room.caught_up or room.mode != b">" or target <= room.last or engine.state.started is None:
                continue  # (no stream in progress: no timers into an empty room, and no clock moved
                #          ahead of a backlog that has yet to arrive)
            due = engine.next_deadline()
            if engine.timers is not None and (due is None or due > target):
                continue
            room.last = target
            actions = engine.advance(target)
            room.dirty = room.dirty or due is not None
            if actions:
                out.append((room, actions))
        await self._publish(out)

    async def _wait(self, timeout: float) -> None:
        """Block until a room's stream has something new (or ``timeout``)."""
        if self.stop.is_set():
            return
        rooms = [r for r in self.rooms.values() if r.mode == b">"]
        wall = wall_ms()
        for room in rooms:
            due = room.engine.next_deadline()
            if due is not None:
                timeout = min(timeout, max(0.001, (due + self.rc.idle_lag_ms - wall) / 1000))
            if room.dirty or room.unacked:
                left = room.checkpoint_at + self.rc.checkpoint_ms / 1000 - time.monotonic()
                timeout = min(timeout, max(0.001, left))
        if not rooms:
            try:
                await asyncio.wait_for(self.stop.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            return
        await self.client.xread({self.keys.events(r.name): r.last_id for r in rooms}, count=1,
                                block=max(1, int(timeout * 1000)))

    # -- checkpoints -----------------------------------------------------------------------------

    async def _checkpoint_due(self) -> None:
        now = time.monotonic()
        every = self.rc.checkpoint_ms / 1000
        due = [r for r in self.rooms.values() if (r.unacked or r.dirty)
               and (now - r.checkpoint_at >= every or len(r.unacked) >= self.rc.checkpoint_events)]
        if due:
            await self._checkpoint(due)

    def _checkpoint_args(self, room: Room, snap: bytes, lifetime: dict[str, Any] | None = None,
                         summary: dict[str, Any] | None = None, acked: int | None = None) -> list[Any]:
        ids = room.unacked if acked is None else room.unacked[:acked]
        args: list[Any] = [self.id, self.rc.group, self.rc.lease_ms, snap, room.last,
                           "0" if room.recovering else "1", len(lifetime or ())]
        for k, v in (lifetime or {}).items():
            args += [k, orjson.dumps(v)]
        args.append(orjson.dumps(summary) if summary is not None else "")
        args += ids
        return args

    def _checkpoint_keys(self, name: str) -> list[str]:
        k = self.keys
        return [k.owner(name), k.events(name), k.snapshot(name), k.done(name), k.lifetime(name), k.sessions(name),
                k.all_sessions]

    async def _checkpoint(self, rooms: list[Room], force: bool = False) -> bool:
        """Fenced checkpoints of these rooms in one round trip; False if any lease was lost."""
        rooms = [r for r in rooms if r.name in self.rooms and (force or r.unacked or r.dirty)]
        if not rooms:
            return True
        pipe = self.client.pipeline(transaction=False)
        for room in rooms:
            snap = orjson.dumps(full_snapshot(room.engine)) if room.engine.state.started is not None else b""
            await self._s["CHECKPOINT"](keys=self._checkpoint_keys(room.name),
                                        args=self._checkpoint_args(room, snap), client=pipe)
        ok = True
        results = await pipe.execute()
        self._progress()
        now = time.monotonic()
        for room, res in zip(rooms, results):
            if res != 1:
                self._drop(room.name, "lease lost at checkpoint")
                ok = False
                continue
            self.counters["checkpoints"] += 1
            room.unacked = []
            room.dirty = False
            room.checkpoint_at = now
        return ok

    async def _finish(self, room: Room, engine: Engine, now: int, acked: int) -> None:
        """The stream ended (or a stale one is found): fold it into lifetime totals and the
        session list, start a fresh engine, acknowledge up to the end: one fenced script."""
        lifetime = engine.state.lifetime_snapshot()
        changed = {k: lifetime[k] for k in [*engine.state.viewers_by_key, *engine.features.lifetime()]}  # (+ lifetime goals)
        summary = session_summary(engine, room.name, now) if engine.state.started is not None else None
        fresh = engine.fresh(lifetime)
        res = await self._s["CHECKPOINT"](keys=self._checkpoint_keys(room.name),
                                          args=self._checkpoint_args(room, b"", changed, summary, acked))
        if res != 1:
            self._drop(room.name, "lease lost at stream end")
            return
        room.engine = fresh
        room.unacked = room.unacked[acked:]
        room.checkpoint_at = time.monotonic()
        self.counters["streams_finished"] += 1
        log.info("stream_finished", room=room.name, events=sum((summary or {}).get("events", {}).values()),
                 diamonds=(summary or {}).get("diamonds", 0))

    # -- rules per room ------------------------------------------------------------------------

    def _rules_path(self, room: str) -> Path:
        folder = self.rc.rules_by_room
        if folder is not None and (folder / room).is_dir():
            return folder / room
        return self.default_rules

    def _remember_rules(self, path: Path, ruleset: RuleSet) -> None:
        self.rulesets[path] = ruleset
        self.reloaders[path] = RuleReloader(path, ruleset, lambda rs, p=path: self._apply_rules(p, rs),
                                            poll_s=self.cfg.reload_poll_ms / 1000)

    def _ruleset(self, path: Path) -> RuleSet | None:
        if path in self.rulesets:
            return self.rulesets[path]
        from bot.control.reload import fingerprint

        seen = fingerprint(path, [])
        if self._refused.get(path) == seen:
            return None
        try:
            ruleset = load_rules(path)
        except (RuleLoadError, OSError) as exc:
            self._refused[path] = seen
            problems = getattr(exc, "problems", [str(exc)])
            log.error("room_rules_refused", rules=str(path), problems=len(problems))
            for problem in problems:
                log.error("rule_problem", problem=problem)
            return None
        self._refused.pop(path, None)
        self._remember_rules(path, ruleset)
        return ruleset

    def _apply_rules(self, path: Path, ruleset: RuleSet) -> None:
        self.rulesets[path] = ruleset
        for room in self.rooms.values():
            if room.rules_path == path:
                room.engine.replace_rules(ruleset, room.last)

    def _forget_unused_rules(self) -> None:
        used = {r.rules_path for r in self.rooms.values()} | {self.default_rules}
        for path in [p for p in self.rulesets if p not in used]:
            del self.rulesets[path]
            del self.reloaders[path]

    def reload_all(self) -> None:
        for reloader in list(self.reloaders.values()):
            reloader.reload("SIGHUP")

    async def _watch_rules(self) -> None:
        """Hot reload: rule files changing on disk, and a room's own folder appearing or going."""
        if not self.cfg.reload_watch:
            return
        poll = self.cfg.reload_poll_ms / 1000
        while not self.stop.is_set():
            await asyncio.sleep(poll)
            changed = [r for r in list(self.reloaders.values()) if r.changed()]
            if changed:
                await asyncio.sleep(min(0.2, poll))  # a file is often written in several steps
                for reloader in changed:
                    reloader.reload("file changed")
            for room in list(self.rooms.values()):
                path = self._rules_path(room.name)
                if path != room.rules_path:
                    ruleset = self._ruleset(path)
                    if ruleset is not None:
                        room.rules_path = path
                        room.engine.replace_rules(ruleset, room.last)
                        log.info("room_rules_switched", room=room.name, rules=str(path))


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
