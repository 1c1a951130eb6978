"""The per-room processing of the Redis worker (``bot.scale.worker``): ``Processing``, the part of
``Worker`` that reads every owned room's entries in one fenced script (pending ones first after a
takeover, then new ones), feeds them to the room's engine in receive-time order, publishes the
actions exactly once (markers first, then the sinks get the new ones), fires idle rooms' due
deadlines by the wall clock, and waits for new entries. Its methods run on a ``Worker`` and use
the state ``Worker.__init__`` sets.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import orjson
import structlog

from bot.actions.model import Action
from bot.events.model import LIVE_END
from bot.scale.ingest import decode_value
from bot.scale.scripts import split_entries
from bot.scale.worker_leases import Room, wall_ms

log = structlog.get_logger("bot.worker")
action_log = structlog.get_logger("bot.actions")
READ_TOTAL = 4096  # entries asked for per read over all rooms (keeps one loop turn short)
LOGGED_BAD_ENTRIES = 5


class Processing:
    """``Worker``'s reading and processing: fenced reads, the engines, exactly-once publishing."""

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
