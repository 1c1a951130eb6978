"""Room ownership for the Redis worker (``bot.scale.worker``): ``Room``, what a worker holds of a
room it owns, and ``Leases``, the part of ``Worker`` that keeps the leases: the membership tick
(heartbeat, lease renewal, fair share ceil(rooms / live workers), rendezvous preference), taking a
room (snapshot, lifetime totals, a stale stream folded in), handing one back after a checkpoint,
taking rooms again from their checkpoint after a Redis error, and dropping a room whose lease is
lost. Its methods run on a ``Worker`` and use the state ``Worker.__init__`` sets.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import structlog

from bot.config import engine_options
from bot.engine.core import Engine
from bot.engine.snapshot import full_restore
from bot.scale.keys import ROOM_NAME
from bot.scale.store import decode_snapshot
from bot.store.jsonfile import StoreError

log = structlog.get_logger("bot.worker")


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


class Leases:
    """``Worker``'s membership: heartbeat, leases, fair share, takeover and hand-back."""

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
