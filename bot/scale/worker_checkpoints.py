"""Checkpoints of the Redis worker (``bot.scale.worker``): ``Checkpoints``, the part of ``Worker``
that stores each busy room's engine snapshot and acknowledges what it processed since, in one
fenced script per room (nothing is written once the lease is lost), and that folds an ended
stream into the lifetime totals and the session list. Its methods run on a ``Worker`` and use
the state ``Worker.__init__`` sets.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog

from bot.engine.core import Engine
from bot.engine.snapshot import full_snapshot
from bot.scale.worker_leases import Room
from bot.store.keeper import session_summary

log = structlog.get_logger("bot.worker")


class Checkpoints:
    """``Worker``'s fenced checkpoints and stream ends."""

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
