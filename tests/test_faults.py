"""Fault injection: the faults of issue 9, each ending with the same question — was anything
acknowledged lost, was anything thanked twice? — answered with counts.

1. the source drops its connection again and again and replays a backlog on each reconnect;
2. a sink is down for a (virtual) minute, then back;
3. the recorder's disk is full, then has room again;
4. another connection holds the SQLite state database locked while the state is saved;
5. Redis is killed and restarted mid-stream (with AOF persistence), at the worst moment;
6. the wall clock is stepped back and forward by an hour, and an hour passes at once;
7. ``livebot run`` is SIGKILLed while events flow; its recording is replayed; it restarts.

Real servers on loopback (websockets, redis-server, the ``livebot`` process); no wall-clock
assertions: the few timeouts are hang guards. The figures are in RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
import websockets
from structlog.testing import capture_logs

import bot.live
import bot.sources.recorder as recorder_module
from bot.actions.delivery import RetryPolicy
from bot.actions.dispatcher import Dispatcher, LiveDispatcher
from bot.actions.model import Action
from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.events.model import Event, User
from bot.live import LiveClock, LiveRunner
from bot.runner import replay
from bot.sources.backoff import Backoff
from bot.sources.queue import stamp
from bot.sources.recorder import Recorder
from bot.sources.replay import ReplaySource
from bot.sources.websocket import WebSocketSource
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import CaptureSink, ScriptSource, chat, gift
from redis_server import kill_redis, restart_redis, start_redis
from ws_server import WsServer

GUARD = 30.0  # seconds: a hang guard, never a measurement
T0 = 1_763_665_200_000

THANKS = load_rules_text("""
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
""")


def thanked(actions) -> Counter:
    """How often each event was thanked, by its msg_id."""
    return Counter(a.event_id for a in actions if a.rule == "thanks")


async def settle(runner: LiveRunner, turns: int = 3) -> None:
    """Until what was put is handled and the loop has turned ``turns`` more times (each turn
    fires what is due by the clock's time)."""
    for _ in range(int(GUARD / 0.002)):
        if not len(runner.queue):
            break
        await asyncio.sleep(0.002)
    for _ in range(turns):
        beat = runner.heartbeat
        for _ in range(int(GUARD / 0.002)):
            if runner.heartbeat != beat:
                break
            await asyncio.sleep(0.002)


@pytest.fixture
def fast_loop(monkeypatch):
    monkeypatch.setattr(bot.live, "IDLE_WAKE_S", 0.01)


# == 1. the source drops every N events and replays a backlog on each reconnect ==================

def flat(event: str, i: int, who: int | None = None, **data) -> str:
    u = i % 7 if who is None else who
    base = {"userId": f"u{u}", "uniqueId": f"viewer{u}", "nickname": f"V{u}", "msgId": f"m{i}",
            "createTime": str(T0 + i * 100)}
    return orjson.dumps({"event": event, "data": {**base, **data}}).decode()


def mixed_feed(n: int) -> tuple[list[str], list[str]]:
    """TikFinity lines: gifts, chat, likes and joins, and one gift streak (ten frames, i = 45..54)
    that a drop cuts in two. Returns (lines, msg_ids of the gifts to thank, streak once)."""
    lines, gifts = [], []
    for i in range(n):
        if 45 <= i <= 54:
            lines.append(flat("gift", i, who=99, giftId=5655, giftName="Rose", diamondCount=1, giftType=1,
                              repeatCount=i - 44, repeatEnd=i == 54))
            if i == 54:
                gifts.append(f"m{i}")
        elif i % 4 == 0:
            lines.append(flat("gift", i, giftId=5760, giftName="Weights", diamondCount=1, giftType=2,
                              repeatCount=1, repeatEnd=False))
            gifts.append(f"m{i}")
        elif i % 4 == 1:
            lines.append(flat("chat", i, comment=f"hello {i}"))
        elif i % 4 == 2:
            lines.append(flat("like", i, likeCount=5, totalLikeCount=5 * i))
        else:
            lines.append(flat("member", i))
    return lines, gifts


class DroppingServer(WsServer):
    """Connection k replays the previous connection's chunk (the backlog) and sends the next
    ``chunk`` lines, then the network goes away in the middle of a message (half a frame, then
    an abort: no close frame, and whatever was still in the server's buffers is lost). The last
    connection ends the stream (4005)."""

    def __init__(self, lines: list[str], chunk: int) -> None:
        self.lines = lines
        self.chunk = chunk
        self.connections = 0
        self.sent = 0

    async def handler(self, ws) -> None:
        k = self.connections
        self.connections += 1
        start, end = max(0, (k - 1) * self.chunk), (k + 1) * self.chunk
        for line in self.lines[start:end]:
            await ws.send(line)
            self.sent += 1
        if end < len(self.lines):
            # the network goes away in the middle of the next message: half a frame, then nothing
            payload = self.lines[end].encode()
            header = bytes([0x81, 126]) + len(payload).to_bytes(2, "big") if len(payload) >= 126 else \
                bytes([0x81, len(payload)])
            ws.transport.write(header + payload[: len(payload) // 2])
            ws.transport.abort()
            return
        await ws.close(code=4005, reason="stream end")


async def test_source_drops_every_50_events_nothing_lost_nothing_thanked_twice(tmp_path):
    lines, gifts = mixed_feed(600)
    delays: list[float] = []

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    recorder = Recorder(tmp_path / "sessions", room="drops")
    sink = CaptureSink()
    engine = Engine(THANKS)
    async with DroppingServer(lines, chunk=50) as server:
        source = WebSocketSource(server.url, sleep=no_wait, backoff=Backoff(0.5, 8, random.Random(1)))
        runner = LiveRunner([source], engine, Dispatcher([sink]), recorder=recorder)
        result = await asyncio.wait_for(runner.run(), GUARD)

    # 12 connections, 11 of them dropped mid-stream; each reconnect replayed a backlog.
    assert server.connections == 12 and len(delays) == 11
    counts = thanked(sink.actions)
    assert list(counts) == gifts  # every gift thanked, in order...
    assert set(counts.values()) == {1}  # ...exactly once
    streak = [a.text for a in sink.actions if a.event_id == "m54"]
    assert streak == ["thanks V99 for 10x Rose"]  # the streak the drop cut in two: once, its final count
    # Every event the server sent arrived or was sent again; the backlog's copies were dropped.
    viewer_events = sum(n for t, n in result.events.items() if t not in ("connect", "disconnect", "live_end"))
    assert engine.counters["duplicates"] == viewer_events - len(lines)
    assert engine.counters["duplicates"] > 0 and viewer_events <= server.sent

    # The recording is complete: every line the feed had, and it replays to the same actions.
    [path] = recorder.files
    recorded = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert {r["msg_id"] for r in recorded if r["msg_id"]} == {f"m{i}" for i in range(len(lines))}
    assert recorder.failed == recorder.lost == 0
    again = CaptureSink()
    summary = await replay(ReplaySource(path), Engine(THANKS), Dispatcher([again]))
    assert summary.malformed == 0
    assert [a.to_dict() for a in again.actions] == [a.to_dict() for a in sink.actions]
    print(f"\n[drops] lines {len(lines)}, connections {server.connections} (11 dropped), frames sent "
          f"{server.sent}, received {viewer_events}, duplicates dropped {engine.counters['duplicates']}, "
          f"gifts {len(gifts)}, thanked {sum(counts.values())}, twice 0, recorded {len(recorded)}")


# == 2. a sink down for a (virtual) minute, then back ==========================================

class VirtualTime:
    """Monotonic seconds that move only when the test says; ``sleep`` waits for them."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = 0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._seq += 1
        self._sleepers.append((self.t + max(0.0, seconds), self._seq, fut))
        self._sleepers.sort(key=lambda s: s[:2])
        await fut

    async def run_until(self, t: float) -> None:
        """Move to ``t``, waking each sleeper at its time and letting everything run in between."""
        while True:
            for _ in range(20):
                await asyncio.sleep(0)
            self._sleepers = [s for s in self._sleepers if not s[2].done()]  # (cancelled waits)
            if not self._sleepers or self._sleepers[0][0] > t:
                break
            due, _, fut = self._sleepers.pop(0)
            self.t = max(self.t, due)
            fut.set_result(None)
        self.t = max(self.t, t)


class Outage:
    """A sink that raises while ``down(now)``; what it accepted, it keeps (with its send time)."""

    def __init__(self, name: str, clock: VirtualTime, start: float, end: float) -> None:
        self.name = name
        self.clock = clock
        self.start, self.end = start, end
        self.got: list[tuple[float, Action]] = []
        self.refused = 0

    async def send(self, actions) -> None:
        if self.start <= self.clock.now() < self.end:
            self.refused += 1
            raise ConnectionError("503 Service Unavailable")
        self.got += [(self.clock.now(), a) for a in actions]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("attempts, max_queue", [(6, 200), (20, 2000)], ids=["small-budget", "rides-it-out"])
async def test_a_sink_down_for_a_minute_delivers_or_dead_letters_every_action(tmp_path, attempts, max_queue):
    """Small budget: six tries a batch (seconds of backoff) and 200 queued actions: what the
    minute outlasts is dead-lettered (retries used up, or the queue overflowed). A budget that
    rides out the minute (20 tries, backoff capped at 30 s; 2,000 queued): all delivered late."""
    clock = VirtualTime()
    down = Outage("webhook", clock, start=10.0, end=70.0)  # down from 0:10 to 1:10
    overlay = Outage("overlay", clock, start=0.0, end=0.0)  # never down
    dead = tmp_path / "dead.jsonl"
    d = LiveDispatcher([down, overlay], dead_letter=dead, max_queue=max_queue, max_batch=20, clock=clock.now,
                       sleep=clock.sleep, rng=random.Random(7),
                       retry=RetryPolicy(max_attempts=attempts, base=0.5, cap=30))
    engine = Engine(THANKS)
    gifts = 0
    for second in range(150):  # 2.5 minutes, 8 gifts a second: 1,200 thank-yous
        await clock.run_until(float(second))
        actions = []
        for j in range(8):
            ev = gift(T0 + second * 1000 + j, "Rose", 1, who=f"v{gifts % 50}", msg_id=f"g{gifts}")
            actions += engine.feed(ev, ev.ts)
            gifts += 1
        await d.dispatch(actions)
    await clock.run_until(400.0)  # long enough for the retries of the last batch in the outage
    await asyncio.wait_for(d.close(), GUARD)

    dispatched = [f"g{i}" for i in range(gifts)]
    assert d.dispatched == gifts == 1200
    letters = [orjson.loads(x) for x in dead.read_bytes().splitlines()] if dead.exists() else []
    for sink in (down, overlay):
        s = d.stats[sink.name]
        delivered = [a.event_id for _, a in sink.got]
        lettered = [x["action"]["event_id"] for x in letters if x["sink"] == sink.name]
        # none lost, none twice: each action delivered or dead-lettered, exactly once
        assert sorted(delivered + lettered) == sorted(dispatched), sink.name
        assert s.sent + s.dead_lettered == s.dispatched == 1200 and s.queue_depth == s.in_flight == 0
        assert (s.sent, s.dead_lettered) == (len(delivered), len(lettered))
    # The healthy sink never noticed; the one that was down refused for a minute, then took
    # everything still queued, in order.
    assert len(overlay.got) == 1200 and not [x for x in letters if x["sink"] == "overlay"]
    s = d.stats["webhook"]
    reasons = Counter(x["reason"] for x in letters)
    if attempts == 6:
        assert set(reasons) == {"failed", "overflow"} and s.overflow == reasons["overflow"] > 0
    else:
        assert not letters and s.sent == 1200
    assert s.failed > 0 and s.retried > 0 and down.refused > 0
    assert all(t < 10 or t >= 70 for t, _ in down.got)
    after = [a.event_id for t, a in down.got if t >= 70]
    assert after and after == sorted(after, key=lambda e: int(e[1:]))
    assert [a.event_id for t, a in down.got if t < 10] == [f"g{i}" for i in range(80)]
    print(f"\n[sink down 60 s, {attempts} tries, queue {max_queue}] dispatched {d.dispatched}; webhook sent {s.sent} "
          f"(after recovery {len(after)}), dead-lettered {s.dead_lettered} ({dict(reasons)}), "
          f"sends refused {down.refused}; overlay sent {d.stats['overlay'].sent}; lost 0, twice 0")


# == 3. the recorder's disk is full, then has room again =======================================

class FillingDisk(io.RawIOBase):
    """A file on a disk with ``free`` bytes left (None: room enough). As write(2) does, a write
    that does not fit writes what fits, and the next one fails with ENOSPC."""

    def __init__(self, path: Path, free: int | None) -> None:
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self.free = free

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.free is not None and self.free <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = len(b) if self.free is None else min(len(b), self.free)
        self.file.write(bytes(b[:n]))
        if self.free is not None:
            self.free -= n
        return n

    def close(self) -> None:
        self.file.close()
        super().close()


async def run_script(runner: LiveRunner, source: ScriptSource, steps) -> None:
    """Run ``runner`` while ``steps(source)`` (a coroutine function) puts events."""
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(source.ready.wait(), GUARD)
    try:
        await asyncio.wait_for(steps(source), GUARD)
    finally:
        source.done.set()
        await asyncio.wait_for(task, GUARD)


async def test_a_full_disk_stops_the_recording_not_the_bot_and_recording_resumes(tmp_path, monkeypatch, fast_loop):
    disks: list[FillingDisk] = []

    def on_a_small_disk(path, mode):
        disks.append(FillingDisk(Path(path), free=6_000))  # room for some 25 events
        return io.BufferedWriter(disks[-1], buffer_size=1024)

    monkeypatch.setattr(recorder_module, "open", on_a_small_disk, raising=False)
    recorder = Recorder(tmp_path / "sessions", room="full", flush_every_s=0.0)  # flush at every event
    sink = CaptureSink()
    runner = LiveRunner([source := ScriptSource()], Engine(THANKS), Dispatcher([sink]), recorder=recorder,
                        clock=VirtualClock(T0))
    total = 300

    async def steps(src: ScriptSource) -> None:
        for i in range(total):
            if i == 200:
                disks[0].free = None  # room again (someone deleted old sessions)
            src.put(gift(0, "Rose", 1, who=f"v{i % 9}", msg_id=f"g{i}"))
            if i % 10 == 9:
                await settle(runner, 1)
        await settle(runner)

    with capture_logs() as logs:
        await run_script(runner, source, steps)

    # The bot kept serving: every gift thanked, once.
    counts = thanked(sink.actions)
    assert list(counts) == [f"g{i}" for i in range(total)] and set(counts.values()) == {1}
    # The disk-full errors were logged (clearly, a few times, not once per event) and counted.
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors and all("No space left on device" in e["error"] for e in errors)
    assert {e["event"] for e in errors} <= {"record_failed", "record_flush_failed"} and len(errors) <= 10
    assert recorder.failed > recorder.lost > 0
    assert [e["event"] for e in logs if e["event"] == "record_resumed"] == ["record_resumed"]
    # The recording resumed by itself, in the same file: it has every event but the ones whose
    # write failed (counted as lost), no broken line, and everything after the disk had room.
    [path] = recorder.files
    recorded = [orjson.loads(x)["msg_id"] for x in path.read_bytes().splitlines()]
    viewer = [m for m in recorded if m]
    assert len(viewer) + recorder.lost == total and len(set(viewer)) == len(viewer)
    assert viewer[-100:] == [f"g{i}" for i in range(200, total)]
    assert recorded[-1] == "" and recorder.written == len(recorded)  # the shutdown marker
    print(f"\n[disk full] events {total}, thanked {sum(counts.values())}, twice 0; recorder: written "
          f"{recorder.written}, lost while full {recorder.lost} (counted), failed writes/flushes "
          f"{recorder.failed}, error lines logged {len(errors)}; resumed: yes")


async def test_a_recording_to_dev_full_is_counted_and_the_bot_serves_on(tmp_path, monkeypatch, fast_loop):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    monkeypatch.setattr(recorder_module, "open", lambda path, mode: open("/dev/full", mode), raising=False)
    recorder = Recorder(tmp_path / "sessions", room="devfull")
    sink = CaptureSink()
    runner = LiveRunner([source := ScriptSource()], Engine(THANKS), Dispatcher([sink]), recorder=recorder,
                        clock=VirtualClock(T0))

    async def steps(src: ScriptSource) -> None:
        for i in range(2000):  # some 400 kB: the write buffer fills and overflows many times
            src.put(gift(0, "Rose", 1, who=f"v{i % 9}", msg_id=f"g{i}"))
        await settle(runner)

    with capture_logs() as logs:
        await run_script(runner, source, steps)
    assert len(thanked(sink.actions)) == 2000
    assert recorder.lost > 1000 and recorder.failed >= recorder.lost
    assert any(e["event"] == "record_failed" and "No space left" in e["error"] for e in logs)
    assert not any(e["event"] == "record_resumed" for e in logs)
    assert not recorder.is_open  # closed at shutdown, its close failure logged, nothing raised


async def test_a_recording_that_cannot_be_opened_is_tried_again_at_the_next_event(tmp_path, monkeypatch):
    real_open = open
    calls = []

    def no_inode_left(path, mode):
        calls.append(path)
        if len(calls) <= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode)

    monkeypatch.setattr(recorder_module, "open", no_inode_left, raising=False)
    recorder = Recorder(tmp_path / "sessions", room="x")
    for i in range(10):
        recorder.write(chat(T0 + i, f"c{i}", msg_id=f"c{i}"))
    recorder.close()
    assert recorder.lost == 3 and recorder.written == 7
    assert len(recorder.files) == 1  # (not one entry per failed attempt)
    assert [orjson.loads(x)["msg_id"] for x in recorder.files[0].read_bytes().splitlines()] == \
        [f"c{i}" for i in range(3, 10)]


# == 4. SQLite locked by another connection while the state is saved ===========================

async def test_a_locked_state_database_skips_a_save_and_the_next_one_succeeds(tmp_path, fast_loop):
    db = tmp_path / "state.db"
    # The connection's busy timeout is a minute: a save that waited for it would stall the bot's
    # loop for a minute at every save (the hang guard would fire); a snapshot waits 200 ms.
    store = SqliteStore(db, busy_timeout_ms=60_000)
    keeper = StateKeeper(store, "room", every_ms=1000)
    clock = VirtualClock(T0)
    sink = CaptureSink()
    runner = LiveRunner([source := ScriptSource()], Engine(THANKS), Dispatcher([sink]), keeper=keeper, clock=clock)
    sent = 0

    async def gifts(src: ScriptSource, n: int) -> None:
        nonlocal sent
        for _ in range(n):
            src.put(gift(0, "Rose", 10, who=f"v{sent % 4}", msg_id=f"g{sent}"))
            sent += 1
        await settle(runner)

    async def steps(src: ScriptSource) -> None:
        await gifts(src, 20)
        clock.advance(1500)
        await gifts(src, 1)
        assert keeper.saves >= 1 and keeper.failures == 0
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # e.g. someone's backup script, or a second bot by mistake
        try:
            saves = keeper.saves
            for _ in range(3):  # three save intervals under the lock; the stream goes on
                clock.advance(1500)
                await gifts(src, 20)
            assert keeper.failures >= 3 and keeper.saves == saves
            assert len(thanked(sink.actions)) == sent
        finally:
            other.execute("ROLLBACK")
            other.close()
        clock.advance(1500)
        await gifts(src, 20)
        assert keeper.saves == saves + 1  # the next save after the lock is gone succeeds

    with capture_logs() as logs:
        await run_script(runner, source, steps)

    counts = thanked(sink.actions)
    assert list(counts) == [f"g{i}" for i in range(sent)] and set(counts.values()) == {1}
    failed = [e for e in logs if e["event"] == "state_save_failed"]
    assert len(failed) == keeper.failures and all("database is locked" in e["error"] for e in failed)
    assert all(e["log_level"] == "error" for e in failed)
    # What was saved last is the whole stream (the shutdown save): a restart resumes all of it.
    resumed = StateKeeper(SqliteStore(db), "room").open(Engine(THANKS), clock.now())
    assert resumed.state.diamonds == 10 * sent
    print(f"\n[sqlite locked] gifts {sent}, thanked {sum(counts.values())}, twice 0; saves {keeper.saves}, "
          f"failed while locked {keeper.failures} (logged, counted); resumed diamonds {resumed.state.diamonds}")
    store.close()


# == 5. Redis killed and restarted mid-stream ====================================================

def redis_gift(room: str, i: int) -> Event:
    return Event("gift", T0 + i, room, f"{room}-{i:06d}", User(f"id-v{i % 5}", f"v{i % 5}", f"V{i % 5}"),
                 {"gift_id": 1, "name": "Rose", "diamonds": 1, "count": 1, "gift_type": 2, "streak_end": True},
                 received=time.time_ns() // 1_000_000)


async def until(check, what: str, timeout: float = GUARD) -> None:
    for _ in range(int(timeout / 0.02)):
        try:
            if await check():
                return
        except Exception:  # Redis is down: ask again
            pass
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_redis_killed_between_a_read_and_its_publish_then_restarted_loses_no_thanks(tmp_path):
    """Redis (AOF, fsync always) is SIGKILLed at the worst moment for a worker: entries were read
    (delivered to it, pending in the group) and their thank-yous not yet published. It comes back
    on the same port with its data. The worker must survive, reconnect, take its room again from
    the last checkpoint, replay what it had read, and thank every gift exactly once — including
    the gifts appended while Redis was down (ingest retries) and after it came back."""
    aioredis = pytest.importorskip("redis.asyncio")
    from bot.config import Config
    from bot.scale.ingest import append_events, register_room
    from bot.scale.keys import Keys
    from bot.scale.worker import Worker

    keys = Keys("livebot")
    server = start_redis(tmp_path / "redis", aof=True)
    url = server.url
    r = aioredis.from_url(url)
    (tmp_path / "rules.yaml").write_text('rules:\n  - id: thanks\n    on: gift\n    do: [{say: "thanks {{ user.nickname }}"}]\n')
    cfg = Config()
    cfg.overlay_enabled = False  # (thank-yous only: no board updates in the actions stream)
    cfg.redis.lease_ms = 3000
    cfg.reload_watch = False
    sink = CaptureSink()
    wclient = aioredis.from_url(url)
    worker = Worker(cfg, wclient, rules_path=tmp_path / "rules.yaml", sinks=[sink], worker_id="w1")
    restarted = asyncio.Event()
    publishes = 0
    real_publish = worker._publish

    async def publish(out):
        nonlocal publishes
        if out and any(actions for _, actions in out):
            publishes += 1
            if publishes == 3:  # read, processed, not yet published: Redis dies now
                kill_redis(server)

                async def restart() -> None:
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(restart_redis, server, True)
                    restarted.set()

                asyncio.get_running_loop().create_task(restart())
        return await real_publish(out)

    worker._publish = publish
    total = 200
    try:
        await register_room(r, "a")
        with capture_logs() as logs:
            task = asyncio.create_task(worker.run())

            async def ingest(i: int) -> None:  # as ingest's pump: retry until Redis takes it
                for _ in range(int(GUARD / 0.05)):
                    try:
                        await append_events(r, "a", [redis_gift("a", i)])
                        return
                    except Exception:
                        await asyncio.sleep(0.05)
                raise AssertionError("could not append")

            for i in range(120):
                await ingest(i)
                await asyncio.sleep(0.003)
            await asyncio.wait_for(restarted.wait(), GUARD)
            for i in range(120, total):  # after the restart
                await ingest(i)

            async def all_thanked() -> bool:
                return await r.xlen(keys.actions("a")) >= total

            await until(all_thanked, f"{total} thank-yous")
            worker.stop.set()
            counters = await asyncio.wait_for(task, GUARD)  # the worker survived: a clean stop

        published = [orjson.loads(f[b"a"])["event_id"] for _, f in await r.xrange(keys.actions("a"))]
        appended = [orjson.loads(f[b"e"])["msg_id"] for _, f in await r.xrange(keys.events("a"))]
        pending = (await r.xpending(keys.events("a"), "workers"))["pending"]
    finally:
        await r.aclose()
        await wclient.aclose()
        kill_redis(server)

    want = [f"a-{i:06d}" for i in range(total)]
    assert list(dict.fromkeys(appended)) == want  # every append Redis acknowledged survived the kill
    assert published == want  # every gift thanked, exactly once, in order
    assert [a.event_id for a in sink.actions] == want  # (the worker's own sink too, here)
    assert pending == 0
    events = [e["event"] for e in logs]
    assert "redis_failed" in events and "room_resync" in events and counters["rooms_resynced"] >= 1
    assert not any(e["event"] == "shutdown_incomplete" for e in logs)
    print(f"\n[redis killed -9 between read and publish, restarted with AOF] gifts {total} "
          f"(appended {len(appended)}), thanked {len(published)}, twice 0, pending 0; resynced "
          f"{counters['rooms_resynced']}, replayed duplicates skipped {counters['duplicates_skipped']}, "
          f"redis errors logged {events.count('redis_failed')}")


async def test_redis_restarted_without_persistence_events_after_the_restart_are_thanked(tmp_path):
    aioredis = pytest.importorskip("redis.asyncio")
    from bot.clock import WallClock
    from bot.config import Config
    from bot.scale.ingest import RoomPump, register_room
    from bot.scale.keys import Keys
    from bot.scale.worker import Worker

    keys = Keys("livebot")
    server = start_redis(tmp_path / "redis")
    url = server.url
    (tmp_path / "rules.yaml").write_text('rules:\n  - id: thanks\n    on: gift\n    do: [{say: "thanks {{ user.nickname }}"}]\n')
    cfg = Config()
    cfg.redis.lease_ms = 1000
    cfg.reload_watch = False
    r, iclient, wclient = (aioredis.from_url(url) for _ in range(3))
    stop = asyncio.Event()
    pump = RoomPump(iclient, "a", None, cfg, stop)
    worker = Worker(cfg, wclient, rules_path=tmp_path / "rules.yaml", sinks=[CaptureSink()], worker_id="w1")
    try:
        await register_room(r, "a")
        pumping = asyncio.create_task(pump.pump())
        working = asyncio.create_task(worker.run())
        for i in range(50):
            stamp(pump.queue, WallClock(), redis_gift("a", i))

        async def thanks() -> list:
            return [a["event_id"] for a in (orjson.loads(f[b"a"]) for _, f in await r.xrange(keys.actions("a")))
                    if a["rule"] == "thanks"]

        async def thanked_n(n: int) -> bool:  # (the overlay's board updates are in the stream too)
            return len(await thanks()) >= n

        await until(lambda: thanked_n(50), "the first 50 thank-yous")
        kill_redis(server)
        await asyncio.sleep(0.3)
        restart_redis(server)  # back, empty
        for i in range(50, 100):
            stamp(pump.queue, WallClock(), redis_gift("a", i))
        try:
            await until(lambda: thanked_n(50), "the 50 gifts sent after the restart to be thanked")
        finally:
            stop.set()
            worker.stop.set()
            await asyncio.wait_for(asyncio.gather(pumping, working), GUARD)
        assert await thanks() == [f"a-{i:06d}" for i in range(50, 100)]
        assert await r.sismember(keys.rooms, "a")  # registered again, with its group
    finally:
        for c in (r, iclient, wclient):
            await c.aclose()
        kill_redis(server)


# == 6. clock jumps ===============================================================================

CLOCK_RULES = load_rules_text("""
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: remind
    every: 10m
    do: [{cta: "follow!"}]
  - id: hi
    on: chat
    cooldown: 30s
    do: [{say: "hi {{ event.text }}"}]
""")


class Clocks:
    """The wall clock (what ``now`` says) and real time passing (``elapsed``), moved by the test:
    ``passes`` moves both (time goes by), ``step`` only the wall clock (NTP sets it)."""

    def __init__(self) -> None:
        self.wall = T0
        self.real = 0

    def now(self) -> int:
        return self.wall

    def elapsed(self) -> int:
        return self.real

    def passes(self, ms: int) -> None:
        self.wall += ms
        self.real += ms

    def step(self, ms: int) -> None:
        self.wall += ms


def streak(who: str, count: int, end: bool = False) -> Event:
    return gift(0, "Rose", 1, count, who=who, gift_type=1, streak_end=end)


async def test_clock_steps_and_jumps_fire_nothing_twice_and_freeze_nothing(fast_loop):
    clocks = Clocks()
    sink = CaptureSink()
    runner = LiveRunner([source := ScriptSource()], Engine(CLOCK_RULES), Dispatcher([sink]),
                        clock=LiveClock(clocks, elapsed=clocks.elapsed))
    HOUR = 3_600_000

    def says(rule: str) -> list[str]:
        return [a.text for a in sink.actions if a.rule == rule]

    async def steps(src: ScriptSource) -> None:
        async def put(ev: Event) -> None:
            src.put(ev)
            await settle(runner)

        async def passes(ms: int) -> None:
            clocks.passes(ms)
            await settle(runner)

        await put(chat(0, "a", who="ana"))
        await put(streak("bob", 3))  # a gift streak in progress...
        # -- NTP steps the wall clock back an hour --
        clocks.step(-HOUR)
        await passes(1000)
        await put(streak("bob", 5, end=True))  # ...ends after the step: thanked once, 5x
        assert says("thanks") == ["thanks bob for 5x Rose"]
        await put(streak("cat", 2))  # a streak whose end never comes...
        await passes(6000)
        assert says("thanks")[-1] == "thanks cat for 2x Rose"  # ...is flushed 5 s later, not in an hour
        await passes(30_000)
        await put(chat(0, "b", who="ana"))  # the 30 s cooldown ran out 30 s later, not in an hour
        assert says("hi") == ["hi a", "hi b"]
        # -- NTP steps the wall clock forward an hour --
        await put(streak("dan", 2))
        clocks.step(HOUR)
        await passes(1000)
        await put(streak("dan", 4, end=True))  # the streak is not cut in two by the step
        assert says("thanks")[-1] == "thanks dan for 4x Rose" and "thanks dan for 2x Rose" not in says("thanks")
        assert says("remind") == []  # no burst of reminders at the step...
        await passes(10 * 60_000)
        assert says("remind") == ["follow!"]  # ...one, ten minutes after the start, as scheduled
        # -- an hour passes at once (a suspended laptop, a stalled loop): time really went by --
        await put(streak("eve", 3))
        await passes(HOUR)
        assert says("thanks")[-1] == "thanks eve for 3x Rose"  # the open streak is flushed, once
        assert says("remind") == ["follow!"] * 2  # six periods missed: one reminder, not six
        assert runner.skipped_periods == 5
        await passes(10 * 60_000)
        assert says("remind") == ["follow!"] * 3  # and the schedule goes on

    with capture_logs() as logs:
        await run_script(runner, source, steps)

    counts = thanked(sink.actions)
    assert set(counts.values()) == {1} and len(says("thanks")) == 4  # bob, cat, dan, eve: once each
    times = [a.ts for a in sink.actions]
    assert times == sorted(times)  # engine time never went backwards
    assert runner.clock.steps == 2 and runner.clock.offset == 0  # back an hour, forward an hour: absorbed
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == \
        ["clock_stepped", "clock_stepped", "timer_periods_skipped"]
    assert not [e for e in logs if e["log_level"] == "error"]
    print(f"\n[clock] stepped back 1 h and forward 1 h (absorbed), then 1 h passed at once: "
          f"gift streaks thanked {sum(counts.values())}, twice 0; reminders {len(says('remind'))} "
          f"(missed periods skipped {runner.skipped_periods}); engine time monotonic")


async def test_a_virtual_clock_that_jumps_an_hour_fires_a_ten_minute_timer_once(fast_loop):
    """A clock with no measure of real time (as tests and benchmarks give): a jump forward is
    taken as time passing; a step back is absorbed."""
    clock = VirtualClock(T0)
    sink = CaptureSink()
    runner = LiveRunner([source := ScriptSource()], Engine(CLOCK_RULES), Dispatcher([sink]), clock=clock)

    async def steps(src: ScriptSource) -> None:
        src.put(chat(0, "a", who="ana"))
        await settle(runner)
        clock.advance(3_600_000)
        await settle(runner)
        src.put(chat(0, "b", who="bob"))
        await settle(runner)

    await run_script(runner, source, steps)
    assert [a.rule for a in sink.actions] == ["hi", "remind", "hi"]
    assert runner.skipped_periods == 5


# == 7. SIGKILL while events flow; the recording replayed; a restart ===========================

KILL_RULES = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} ({{ user.diamonds }})"}]
"""


def ws_gift(tag: str, i: int) -> bytes:
    return orjson.dumps({"event": "gift", "data": {
        "userId": f"u{i % 5}", "uniqueId": f"v{i % 5}", "nickname": f"V{i % 5}", "msgId": f"{tag}{i}",
        "giftId": 7, "giftName": "Rose", "diamondCount": 1, "giftType": 2, "repeatCount": 1, "repeatEnd": False}})


class KillFeed(WsServer):
    """First connection: gifts m0, m1, ... as fast as the bot takes them, until it is killed.
    Second connection: a reconnect backlog (the last ``backlog`` gifts sent), then new gifts n0..n99."""

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        self.sent = 0
        self.connections = 0
        self.second = asyncio.Event()
        self.stop = asyncio.Event()

    async def handler(self, ws) -> None:
        self.connections += 1
        try:
            if self.connections == 1:
                while True:
                    await ws.send(ws_gift("m", self.sent))
                    self.sent += 1
                    if self.sent % 20 == 0:
                        await asyncio.sleep(0.002)
            self.second.set()
            for i in range(max(0, self.sent - self.backlog), self.sent):
                await ws.send(ws_gift("m", i))
            for i in range(100):
                await ws.send(ws_gift("n", i))
            await self.stop.wait()
        except websockets.ConnectionClosed:
            pass


class LiveBot:
    """``livebot run`` in a child process; its JSON log read as it comes."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        (tmp / "config.yaml").write_text(
            "rules: rules.yaml\nsinks:\n  console: false\n  overlay:\n    enabled: false\n"
            f"source:\n  type: websocket\n  websocket:\n    url: {url}\n"
            "record:\n  folder: sessions\n  flush_every: 100ms\nstate:\n  database: state.db\n  save_every: 100ms\n"
            "http:\n  port: 0\nreload:\n  watch: false\n")
        (tmp / "rules.yaml").write_text(KILL_RULES)
        self.logs: list[dict] = []

    async def start(self, out: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--log-json", "run", "-c", str(self.tmp / "config.yaml"),
            "--out", str(self.tmp / out), stderr=asyncio.subprocess.PIPE, cwd=self.tmp,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.proc.stderr:  # type: ignore[union-attr]
            try:
                self.logs.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                self.logs.append({"event": "raw", "line": raw.decode(errors="replace")})

    def logged(self, event: str) -> list[dict]:
        return [e for e in self.logs if e.get("event") == event]

    async def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), GUARD)
        await self.reader
        return code


def complete_lines(path: Path, rule: str | None = None) -> tuple[list[dict], bytes]:
    """The file's complete lines, parsed (only actions of ``rule`` if given), and what follows the
    last newline (a partial line)."""
    data = path.read_bytes() if path.exists() else b""
    *lines, partial = data.split(b"\n")
    parsed = [orjson.loads(x) for x in lines]
    return [x for x in parsed if rule is None or x.get("rule") == rule], partial


async def wait_for(check, what: str) -> None:
    for _ in range(int(GUARD / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_while_events_flow_then_replay_and_restart(tmp_path):
    out = tmp_path / "actions.jsonl"
    async with KillFeed(backlog=500) as feed:
        bot = LiveBot(tmp_path, feed.url)
        await bot.start("actions.jsonl")
        await wait_for(lambda: len(complete_lines(out, "thanks")[0]) >= 2000 or bot.proc.returncode is not None,
                       "2,000 thank-yous")
        assert bot.proc.returncode is None, bot.logs[-5:]
        assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-write, as events keep coming
        sent_before = feed.sent
        live, live_partial = complete_lines(out, "thanks")
        [live_file] = (tmp_path / "sessions").iterdir()
        recording = tmp_path / "at-the-kill.jsonl"  # (the restart goes on writing the stream's file)
        recording.write_bytes(live_file.read_bytes())
        recorded, partial = complete_lines(recording)

        # Restart: the state comes back; the feed replays its backlog, then new gifts.
        bot2 = LiveBot(tmp_path, feed.url)
        await bot2.start("after.jsonl")
        await asyncio.wait_for(feed.second.wait(), GUARD)
        await wait_for(lambda: "n99" in {a["event_id"] for a in complete_lines(tmp_path / "after.jsonl", "thanks")[0]},
                       "the new gifts to be thanked")
        assert await bot2.stop(signal.SIGTERM) == 0
    after, _ = complete_lines(tmp_path / "after.jsonl", "thanks")

    # The recording: complete lines, then at most one partial line (the write the kill cut).
    assert all(r["type"] for r in recorded) and b"\n" not in partial
    rec_gifts = [r["msg_id"] for r in recorded if r["type"] == "gift"]
    assert rec_gifts == [f"m{i}" for i in range(len(rec_gifts))]  # in order, none missing
    # `livebot replay` reads it: the partial line (if any) is counted as malformed and skipped.
    run = subprocess.run([sys.executable, "-m", "bot", "replay", str(recording), "--rules", str(tmp_path / "rules.yaml"),
                          "--out", str(tmp_path / "replayed.jsonl"), "--quiet"], capture_output=True, text=True,
                         timeout=GUARD, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    malformed = int(re.search(r"malformed lines skipped: (\d+)", run.stderr).group(1))
    assert malformed == (1 if partial else 0)
    replayed = {a["event_id"]: a["text"] for a in complete_lines(tmp_path / "replayed.jsonl", "thanks")[0]}
    assert list(replayed) == rec_gifts
    # (The kill may or may not cut a line; this one surely is: the same file with half a line more.)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(recording.read_bytes().rstrip(b"\n") + b"\n" + recording.read_bytes()[:40])
    cut_replay = await replay(ReplaySource(cut), Engine(load_rules_text(KILL_RULES)), Dispatcher([CaptureSink()]))
    assert cut_replay.malformed == 1 and sum(cut_replay.read.values()) == len(recorded)
    # Every complete line is an event the bot handled: thanked before the kill, with the same
    # words the replay gives — or in the batch being handled when the kill came.
    live_ids = [a["event_id"] for a in live]
    assert live_ids == [f"m{i}" for i in range(len(live_ids))]
    live_text = {a["event_id"]: a["text"] for a in live}
    assert all(replayed[m] == live_text[m] for m in rec_gifts if m in live_text)
    unthanked = [m for m in rec_gifts if m not in live_text]
    assert unthanked == rec_gifts[len(rec_gifts) - len(unthanked):] and len(unthanked) <= 256

    # The restart resumed the stream's state from the last save, then fed again what the recording
    # holds past it (the gifts handled after the save), with the delivery journal keeping the sink
    # from writing again what it wrote before the kill. The backlog's gifts were then known and
    # dropped as duplicates, except those the killed process never took in; the new gifts were
    # thanked once each.
    [resumed] = bot2.logged("resumed")
    [caught] = bot2.logged("caught_up")
    after_ids = [a["event_id"] for a in after]
    assert len(set(after_ids)) == len(after_ids)
    assert [m for m in after_ids if m.startswith("n")] == [f"n{i}" for i in range(100)]
    backlog = [f"m{i}" for i in range(max(0, sent_before - 500), sent_before)]
    twice = [m for m in after_ids if m in live_text]
    lost = [m for m in backlog + rec_gifts if m not in live_text and m not in after_ids]
    assert twice == []
    assert lost == []  # nothing the bot took in went unthanked
    after_m = [m for m in after_ids if m.startswith("m")]
    assert set(after_m) == {m for m in backlog + rec_gifts if m not in live_text}
    # The state lost nothing: the totals go on from every gift thanked, before the kill or after.
    saved = resumed["diamonds"]
    assert caught["events"] >= len(rec_gifts) - saved
    last_total = {}
    for a in after:
        last_total[a["user"]] = int(a["text"].rsplit("(", 1)[1].rstrip(")"))
    assert sum(last_total.values()) == len(set(live_ids) | set(after_m)) + 100
    suppressed = sum(s.get("already_delivered", 0) for s in bot2.logged("dispatcher_closed")[0].values()
                     if isinstance(s, dict))
    print(f"\n[SIGKILL] gifts sent before the kill {sent_before}; thanked before {len(live_ids)}; recorded "
          f"{len(rec_gifts)} complete lines + {'1 partial line' if partial else 'no partial line'} (replay: "
          f"malformed {malformed}); recorded but unthanked at the kill {len(unthanked)}; state saved up to "
          f"gift {saved}; caught up from the recording {caught['events']} events, {suppressed} actions not sent "
          f"again (journal); after restart: backlog 500, thanked twice {len(twice)}, lost {len(lost)}, "
          f"late thanks {len(after_m)}, new 100/100")


async def test_a_state_save_never_covers_a_gift_whose_thanks_are_still_queued(tmp_path, fast_loop):
    """What makes a SIGKILL right after a save safe: when the state is saved (and a restart will
    drop the backlog's copy of a gift as a duplicate), the JSONL sink has written that gift's
    thank-you. Checked at every save of a busy stream, through the live dispatcher."""
    from bot.sinks import JsonlSink

    out = tmp_path / "actions.jsonl"
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room", every_ms=100)
    engine = Engine(THANKS)
    clock = VirtualClock(T0)
    runner = LiveRunner([source := ScriptSource()], engine, LiveDispatcher([JsonlSink(out)]), keeper=keeper, clock=clock)
    behind: list[int] = []
    real_save = store.save_snapshot

    def save_snapshot(room, snap, saved_at=None):
        written = {a["event_id"] for a in complete_lines(out)[0]}
        handled = {f"g{i}" for i in range(runner.result.events["gift"])}
        behind.append(len(handled - written))
        real_save(room, snap, saved_at)

    store.save_snapshot = save_snapshot

    async def steps(src: ScriptSource) -> None:
        def likes(block: int, n: int) -> None:
            for i in range(n):
                src.put(Event("like", 0, msg_id=f"l{block}-{n}-{i}", user=User("id-x", "x", "X"), data={"count": 1}))

        for block in range(60):  # a batch of gifts and likes, then one of likes only (no actions)
            for i in range(block * 50, block * 50 + 50):
                src.put(gift(0, "Rose", 1, who=f"v{i % 7}", msg_id=f"g{i}"))
            likes(block, runner.batch - 50)
            if block % 2:
                clock.advance(150)  # the save falls due in the next batch: likes only
            likes(block, runner.batch)
            await asyncio.sleep(0)
        await settle(runner)

    await run_script(runner, source, steps)
    await runner.dispatcher.close()
    assert len(behind) >= 10 and keeper.failures == 0
    assert behind == [0] * len(behind), behind
    store.close()


def test_a_locked_database_at_a_stream_end_folds_that_stream_in_at_the_next_end(tmp_path):
    """The lock falls on the one write that is not repeated every few seconds: folding a finished
    stream into the viewers' lifetime totals. It fails (logged, counted); the viewers of that
    stream are folded in with the next stream's, not forgotten."""
    db = tmp_path / "state.db"
    store = SqliteStore(db, busy_timeout_ms=100)
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(THANKS), T0)
    for i in range(6):  # stream 1: ana and bob
        engine.feed(gift(T0 + i, "Rose", 10, who="ana" if i % 2 else "bob", msg_id=f"a{i}"), T0 + i)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with capture_logs() as logs:
        engine = keeper.finish(engine, T0 + 10)
    other.execute("ROLLBACK")
    other.close()
    assert keeper.failures == 1 and [e["event"] for e in logs] == ["state_finish_failed"]
    assert "database is locked" in logs[0]["error"]
    for i in range(2):  # stream 2: cat only
        engine.feed(gift(T0 + 100 + i, "Rose", 10, who="cat", msg_id=f"b{i}"), T0 + 100 + i)
    keeper.finish(engine, T0 + 200)
    lifetime = SqliteStore(db).lifetime()
    assert {k: v["diamonds"] for k, v in lifetime.items()} == {"id-ana": 30, "id-bob": 30, "id-cat": 20}
    store.close()


# == 7b. SIGKILLed three times in a row, once right after a restart ===============================

class BacklogFeed(WsServer):
    """Every connection: a reconnect backlog (the last ``backlog`` gifts made, oldest first), then
    new gifts with ids counting on (m<made>, ...) at about 1000/s, until the test asks for the final
    set (f0..f<final-1>, then nothing more). A newer connection ends an older one's sending (the
    killed bot's socket may not be seen closed yet). ``sent[k]``: the msg ids sent on connection k."""

    def __init__(self, backlog: int, final: int = 100) -> None:
        self.backlog = backlog
        self.final = final
        self.made = 0  # m0 .. m<made-1> exist
        self.sent: list[list[str]] = []
        self.finish = asyncio.Event()
        self.stop = asyncio.Event()

    async def handler(self, ws) -> None:
        k = len(self.sent)
        self.sent.append(log := [])

        async def send(tag: str, i: int) -> bool:
            if k != len(self.sent) - 1:
                return False  # a newer connection took over
            await ws.send(ws_gift(tag, i))
            log.append(f"{tag}{i}")
            return True

        try:
            for i in range(max(0, self.made - self.backlog), self.made):
                if not await send("m", i):
                    return
            while not self.finish.is_set():
                for _ in range(5):
                    self.made += 1
                    if not await send("m", self.made - 1):
                        return
                await asyncio.sleep(0.005)
            for i in range(self.final):
                if not await send("f", i):
                    return
            await self.stop.wait()
        except websockets.ConnectionClosed:
            pass


async def test_killed_three_times_in_a_row_thanks_every_gift_exactly_once(tmp_path):
    """``livebot run`` is SIGKILLed after 1,500 thank-yous, restarted and SIGKILLed again as soon as
    the restart writes its first thank-you (the catch-up from the recording, or the first of the
    feed's backlog), restarted and SIGKILLed after 700 more, restarted once more and stopped with
    SIGTERM once the feed's final gifts are thanked. Each process writes its own actions file.
    Over all of them: nothing the bot took in went unthanked, nothing was thanked twice."""
    feed_backlog = 500
    kill_when = [("after 1500 thank-yous", 1500), ("at the restart's first thank-you", 1),
                 ("after 700 thank-yous", 700)]
    outs: list[Path] = []
    bots: list[LiveBot] = []
    killed_at: list[int] = []  # thank-yous in that process's file when it was killed
    async with BacklogFeed(backlog=feed_backlog) as feed:
        for run, (_, n) in enumerate(kill_when):
            out = tmp_path / f"run{run}.jsonl"
            bot = LiveBot(tmp_path, feed.url)
            await bot.start(out.name)
            outs.append(out)
            bots.append(bot)
            await wait_for(lambda: len(complete_lines(out, "thanks")[0]) >= n or bot.proc.returncode is not None,
                           f"{n} thank-yous in {out.name}")
            assert bot.proc.returncode is None, bot.logs[-5:]
            assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
            killed_at.append(len(complete_lines(out, "thanks")[0]))

        # The last restart: some gifts, then the final set; all thanked, then a clean stop.
        final_from = len(feed.sent)  # the connections of the last process (the killed ones are dead)
        out = tmp_path / "run3.jsonl"
        bot = LiveBot(tmp_path, feed.url)
        await bot.start(out.name)
        outs.append(out)
        bots.append(bot)
        await wait_for(lambda: len(complete_lines(out, "thanks")[0]) >= 300 or bot.proc.returncode is not None,
                       "300 thank-yous after the last restart")
        feed.finish.set()
        last = f"f{feed.final - 1}"
        await wait_for(lambda: any(a["event_id"] == last for a in complete_lines(out, "thanks")[0])
                       or bot.proc.returncode is not None, "the final gifts to be thanked")
        assert await bot.stop(signal.SIGTERM) == 0, bot.logs[-5:]

    thanks = Counter(a["event_id"] for o in outs for a in complete_lines(o, "thanks")[0])
    recorded: set[str] = set()
    for recording in sorted((tmp_path / "sessions").iterdir()):
        recorded |= {r["msg_id"] for r in complete_lines(recording)[0] if r["type"] == "gift"}
    sent_ever = {m for conn in feed.sent for m in conn}
    after_last_restart = {m for conn in feed.sent[final_from:] for m in conn}
    # What the bot took in, and so must have thanked:
    # - every gift in a recording file. Whatever a process knows of a gift — its saved state
    #   (whose recent ids drop the gift from a later backlog as a duplicate) or a later catch-up —
    #   is in a recording: a process records each event as it handles it, a save flushes the
    #   recording first, and the catch-up reads nothing but the recording;
    # - every gift sent after the last restart (backlog and new): that process stops cleanly,
    #   after the last of them (the feed sends in order) was thanked.
    # Any other gift was, to every later process, one it had never seen: one a killed process had
    # not read (in flight at the kill), or read but neither recorded (the recorder's last buffer)
    # nor thanked. If a later connection carried it again (the feed's backlog: the last 500 gifts
    # made, far more than a kill leaves in flight at ~1000/s), the process on it took it in anew:
    # from the last restart on it is in the set above, before that the same reasoning applies to
    # that process. A gift no later connection carried fell out of the feed's backlog before any
    # process took it in: the feed's loss, not the bot's (counted below as "never reached").
    must = recorded | after_last_restart
    assert must <= sent_ever
    lost = sorted(must - set(thanks))
    twice = sorted(m for m, c in thanks.items() if c > 1)
    never_reached = sorted(sent_ever - must - set(thanks))
    assert {f"f{i}" for i in range(feed.final)} <= after_last_restart
    assert set(thanks) <= sent_ever

    caught = ", ".join("/".join(str(c["events"]) for c in b.logged("caught_up")) or "-" for b in bots[1:])
    resumed = [len(b.logged("resumed")) for b in bots[1:]]
    requeued = [sum(r["actions"] for r in b.logged("requeued")) for b in bots[1:]]
    closed = bots[-1].logged("dispatcher_closed")
    suppressed = sum(s.get("already_delivered", 0) for s in closed[0].values() if isinstance(s, dict)) if closed else 0
    kills = ", ".join(f"{what}: {k}" for (what, _), k in zip(kill_when, killed_at))
    summary = (f"[SIGKILL x3] kills {len(kill_when)} ({kills}); "
               f"connections {len(feed.sent)}; gifts made {feed.made} + final {feed.final}, sent (with backlogs) "
               f"{sum(map(len, feed.sent))}; recorded {len(recorded)}; thanked {len(thanks)} gifts in "
               f"{sum(thanks.values())} lines; caught up {caught} events (resumed {resumed}, requeued {requeued}); "
               f"not sent again at the last start {suppressed}; never reached {len(never_reached)}; "
               f"twice {len(twice)}, lost {len(lost)}")
    print("\n" + summary)
    assert all(resumed), summary  # every restart resumed a saved state
    assert twice == [], (summary, twice[:20])
    assert lost == [], (summary, lost[:20])
    # The state counted every gift thanked, once: each viewer's total in the last thank-you the last
    # process wrote for them (one diamond a gift) adds up to the gifts thanked. (The process killed
    # right after its restart usually dies before its first save; the next one resumes the save
    # before it and catches up that one's recording, not the killed one's: what the killed one
    # took in comes back through the feed's backlog, which holds all of it at a 100 ms save_every.)
    last_total = {}
    for a in complete_lines(outs[-1], "thanks")[0]:
        last_total[a["user"]] = int(a["text"].rsplit("(", 1)[1].rstrip(")"))
    assert len(last_total) == 5 and sum(last_total.values()) == len(thanks), (summary, last_total)


GAP_RULES = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} ({{ user.diamonds }})"}]
  - id: welcome
    on: gift
    once: user
    do: [{say: "welcome {{ user.nickname }}"}]
"""


def gap_gift(tag: str, i: int) -> bytes:
    """40 viewers in turn, each giving 50 gifts in a row (so most first gifts come late)."""
    u = (i // 50) % 40 if tag == "m" else i % 40
    return orjson.dumps({"event": "gift", "data": {
        "userId": f"u{u}", "uniqueId": f"v{u}", "nickname": f"V{u}", "msgId": f"{tag}{i}",
        "giftId": 7, "giftName": "Rose", "diamondCount": 1, "giftType": 2, "repeatCount": 1, "repeatEnd": False}})


async def test_a_process_killed_before_its_first_save_is_caught_up_from_the_same_recording(tmp_path, monkeypatch):
    """Process 0 saves every 100 ms and is killed; process 1 resumes, saves only every 10 s, and
    is killed before its first save; process 2 resumes the same (process 0's) snapshot. Process 1
    went on writing the stream's recording file, so process 2 catches up with everything process 1
    handled too: the totals count every gift thanked, and nobody is welcomed (`once: user`) twice."""
    monkeypatch.setattr(sys.modules[__name__], "ws_gift", gap_gift)
    outs, bots = [], []
    async with BacklogFeed(backlog=500) as feed:
        async def run(k: int, save_every: str, n: int) -> LiveBot:
            out = tmp_path / f"run{k}.jsonl"
            bot = LiveBot(tmp_path, feed.url)
            config = bot.tmp / "config.yaml"
            config.write_text(config.read_text().replace("save_every: 100ms", f"save_every: {save_every}"))
            (bot.tmp / "rules.yaml").write_text(GAP_RULES)
            await bot.start(out.name)
            outs.append(out)
            bots.append(bot)
            await wait_for(lambda: len(complete_lines(out, "thanks")[0]) >= n or bot.proc.returncode is not None,
                           f"{n} thank-yous")
            assert bot.proc.returncode is None, bot.logs[-5:]
            return bot

        await (await run(0, "100ms", 1000)).stop(signal.SIGKILL)
        await (await run(1, "10s", 2500)).stop(signal.SIGKILL)
        bot = await run(2, "100ms", 2500)
        feed.finish.set()
        await wait_for(lambda: any(a["event_id"] == "f39" for a in complete_lines(outs[-1], "thanks")[0]),
                       "the final gifts")
        assert await bot.stop(signal.SIGTERM) == 0
    thanks = Counter(a["event_id"] for o in outs for a in complete_lines(o, "thanks")[0])
    welcomes = Counter(a["user"] for o in outs for a in complete_lines(o, "welcome")[0])
    last_total = {}
    for a in complete_lines(outs[-1], "thanks")[0]:
        last_total[a["user"]] = int(a["text"].rsplit("(", 1)[1].rstrip(")"))
    [recording] = (tmp_path / "sessions").iterdir()  # one stream, one file, three processes
    caught = [c["events"] for b in bots[1:] for c in b.logged("caught_up")]
    print(f"\n[killed before its first save] caught up {caught}; gifts thanked {len(thanks)}, twice "
          f"{sum(c > 1 for c in thanks.values())}; the last totals sum to {sum(last_total.values())}; "
          f"welcomed {len(welcomes)} viewers, twice {sum(c > 1 for c in welcomes.values())}")
    assert all(c == 1 for c in thanks.values())
    assert sum(last_total.values()) == len(thanks)
    assert all(c == 1 for c in welcomes.values()) and len(welcomes) == 40
    assert len(caught) == 2 and caught[1] > caught[0]  # process 2 read what process 1 wrote too
