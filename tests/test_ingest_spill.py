"""``livebot ingest`` when Redis fails: a bounded stop, and events spilled to disk, never dropped.

Against a real redis-server that the tests kill (SIGKILL) or freeze (SIGSTOP), and a real
WebSocket source reading a loopback TikFinity-style server: SIGTERM returns within the drain
time (with a hang guard, never a timing), the room's spill file holds exactly the events Redis did
not take, and the next start appends them first, in order, then deletes the file. A spill line
that is not an event is reported as file:line and set aside, and the rest goes on."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from bot.config import Config, load_config
from bot.events.model import GIFT, Event, User
from bot.scale.ingest import (RoomPump, encode_event, read_events, register_room, run_ingest, spill_file,
                              spill_folder)
from bot.scale.keys import Keys
from bot.sources.queue import stamp
from redis_server import kill_redis, redis_pid, redis_running, restart_redis, running
from ws_server import WsServer

redis_asyncio = pytest.importorskip("redis.asyncio")
GUARD = 60.0  # seconds: a hang guard, never a measurement
K = Keys("livebot")


# -- helpers -------------------------------------------------------------------------------------

def tikfinity_gift(i: int) -> bytes:
    """A TikFinity flat line: one gift, message id m{i}."""
    return orjson.dumps({"event": "gift", "data": {
        "userId": f"u{i % 5}", "uniqueId": f"v{i % 5}", "nickname": f"V{i % 5}", "msgId": f"m{i}",
        "createTime": str(1_763_665_200_000 + i * 100), "giftId": 7, "giftName": "Rose", "diamondCount": 1,
        "giftType": 2, "repeatCount": 1, "repeatEnd": False}})


def gift(room: str, msg_id: str, i: int = 0) -> Event:
    return Event(GIFT, 1_000 + i, room, msg_id, User(f"id{i}", f"v{i}", f"V{i}"),
                 {"gift_id": 7, "name": "Rose", "diamonds": 1, "count": 1, "gift_type": 2, "streak_end": False},
                 received=2_000 + i)


def ids(n: range) -> list[str]:
    return [f"m{i}" for i in n]


class TikFinity(WsServer):
    """A loopback WebSocket server like TikFinity's: each ``send`` goes to the connected client."""

    def __init__(self) -> None:
        self.clients: set = set()
        self.connected = asyncio.Event()

    async def handler(self, ws) -> None:
        self.clients.add(ws)
        self.connected.set()
        try:
            await ws.wait_closed()
        finally:
            self.clients.discard(ws)
            if not self.clients:
                self.connected.clear()

    async def send(self, n: range) -> None:
        await until(lambda: self.connected.is_set(), "the ingest's source to connect")
        for ws in list(self.clients):
            for i in n:
                await ws.send(tikfinity_gift(i).decode())


async def until(check, what: str, timeout: float = GUARD):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def redis_up(server) -> bool:
    r = redis_asyncio.from_url(server.url)
    try:
        return bool(await r.ping())
    except Exception:
        return False
    finally:
        await r.aclose()


def spilled_lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()] if path.exists() else []


def log_lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.startswith(b"{")]


async def gifts_in_stream(r, room: str) -> list[str]:
    return [ev.msg_id for _, ev in await read_events(r, room) if ev.type == GIFT]


async def metrics(port: int) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def write_config(tmp: Path, feed_url: str, drain: str = "2s") -> Path:
    path = tmp / "ingest.yaml"
    path.write_text(f"source: {{type: websocket}}\nhttp: {{enabled: true, host: 127.0.0.1, port: 0}}\n"
                    f"redis: {{drain: {drain}, spill: spill, lease: 1s}}\n"
                    f"ingest:\n  rooms:\n    - {{room: alice, url: '{feed_url}'}}\n")
    return path


class Ingest:
    """``livebot ingest`` in a child process, stopped with SIGTERM; its JSON log lines in a file."""

    def __init__(self, tmp: Path, config: Path, url: str, name: str) -> None:
        self.tmp, self.config, self.url = tmp, config, url
        self.log = tmp / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> int:
        with open(self.log, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--log-json", "ingest", "-c", str(self.config), "--redis", self.url,
                stdout=asyncio.subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def listening():
            if self.proc.returncode is not None:
                raise AssertionError(f"ingest exited: {self.log.read_text()}")
            return next((x["port"] for x in self.lines() if x["event"] == "http_listening"), None)

        return await until(listening, "ingest's http_listening line")

    def lines(self) -> list[dict]:
        return log_lines(self.log)

    async def sigterm(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), GUARD)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


# -- SIGTERM with Redis down; the next start --------------------------------------------------------

async def test_sigterm_with_redis_down_spills_exactly_the_unappended_events_and_the_next_start_appends_them_first(
        tmp_path):
    async with redis_running(tmp_path / "redis") as (server, r):
        first = second = None
        try:
            async with TikFinity() as feed:
                config = write_config(tmp_path, feed.url)
                spill = tmp_path / "spill" / "alice.jsonl"
                first = Ingest(tmp_path, config, server.url, "first")
                port = await first.start()
                await feed.send(range(0, 10))
                await until(lambda: gifts_in_stream(r, "alice"), "the first gifts in the stream")
                await until(lambda: _equal(gifts_in_stream(r, "alice"), ids(range(10))), "ten gifts appended")

                kill_redis(server)  # Redis dies; the creator's gifts keep coming
                await feed.send(range(10, 30))

                def holding_twenty():  # what the pump holds (its batch + the queue), as its log says
                    return any(x["event"] == "append_failed" and x["events"] + x["queued"] == 20 for x in first.lines())

                await until(holding_twenty, "ingest to hold the 20 gifts it cannot append")
                m = await metrics(port)
                assert m[("livebot_ingest_events_spilled_total", ("room", "alice"))] == 0  # drain (2 s) not up yet
                assert m[("livebot_ingest_append_failures_total", ("room", "alice"))] >= 1
                assert not spill.exists()

                assert await first.sigterm() == 0  # within the drain time (the guard only catches a hang)

                assert [x["msg_id"] for x in spilled_lines(spill)] == ids(range(10, 30))
                assert all(x["type"] == "gift" and x["room_id"] == "alice" and x["recv"] for x in spilled_lines(spill))
                lines = first.lines()
                [spilled] = [x for x in lines if x["event"] == "events_spilled"]
                assert spilled["events"] == 20 and spilled["path"] == str(spill) and spilled["room"] == "alice"
                [stopped] = [x for x in lines if x["event"] == "ingest_stopped"]
                assert stopped["spilled"] == 20 and stopped["spill_files"] == [str(spill)]
                assert stopped["not_spilled"] == 0
                assert not any(x["event"] == "append_gave_up" for x in lines)

                # Redis comes back (empty) and ingest starts again: the spilled gifts go first, in order.
                restart_redis(server)
                await until(lambda: redis_up(server), "redis to be back")
                second = Ingest(tmp_path, config, server.url, "second")
                port = await second.start()
                await feed.send(range(30, 35))  # new gifts, while (or after) the spill file is appended
                await until(lambda: _equal(gifts_in_stream(r, "alice"), ids(range(10, 35))),
                            "the spilled gifts, then the new ones, in the stream")
                assert not spill.exists()
                [replayed] = [x for x in second.lines() if x["event"] == "spill_replayed"]
                assert replayed["events"] == 20 and replayed["path"] == str(spill) and replayed["rejected"] == 0
                assert [x["event"] for x in second.lines()].index("spill_found") < \
                    [x["event"] for x in second.lines()].index("spill_replayed")
                back = [ev.msg_id for _, ev in await read_events(r, "alice")]
                assert back[:20] == ids(range(10, 30))  # before anything of the new run (its connect included)
                m = await metrics(port)
                assert m[("livebot_ingest_appended_total", ("room", "alice"))] == len(back)
                assert m[("livebot_ingest_events_spilled_total", ("room", "alice"))] == 0
                assert await second.sigterm() == 0
                assert not spill.exists()
        finally:
            for proc in (first, second):
                if proc is not None:
                    await proc.kill()


async def _equal(got, want) -> bool:
    try:
        return await got == want
    except redis_asyncio.ConnectionError:  # the test's own connection to a Redis that was killed
        return False


# -- Redis down for longer than the drain time while running ---------------------------------------

async def test_events_held_longer_than_the_drain_time_go_to_the_spill_file_and_back_in_order(tmp_path):
    from structlog.testing import capture_logs

    async with redis_running(tmp_path / "redis") as (server, r):
        stop = asyncio.Event()
        async with TikFinity() as feed:
            cfg = load_config(write_config(tmp_path, feed.url, drain="1s"))
            spill = tmp_path / "spill" / "alice.jsonl"
            with capture_logs() as logs:
                async with running(run_ingest(cfg, server.url, stop=stop), stop) as task:
                    def listening():
                        if task.done():
                            task.result()
                        return next((e["port"] for e in logs if e["event"] == "http_listening"), None)

                    port = await until(listening, "ingest's http_listening line")
                    await feed.send(range(0, 5))
                    await until(lambda: _equal(gifts_in_stream(r, "alice"), ids(range(5))), "five gifts appended")

                    kill_redis(server)
                    await feed.send(range(5, 15))
                    await until(lambda: [x["msg_id"] for x in spilled_lines(spill)] == ids(range(5, 15)),
                                "the held gifts in the spill file")
                    await feed.send(range(15, 25))  # newer gifts follow them there while Redis is down
                    await until(lambda: [x["msg_id"] for x in spilled_lines(spill)] == ids(range(5, 25)),
                                "the newer gifts after them in the spill file")
                    assert all(e["reason"] == "redis failing" for e in logs if e["event"] == "events_spilled")
                    m = await metrics(port)
                    assert m[("livebot_ingest_events_spilled_total", ("room", "alice"))] == 20
                    assert m[("livebot_ingest_append_failing", ("room", "alice"))] == 1

                    restart_redis(server)  # back, empty: the spill file goes first, then the file is deleted
                    await until(lambda: _equal(gifts_in_stream(r, "alice"), ids(range(5, 25))),
                                "the spilled gifts appended")
                    await until(lambda: not spill.exists(), "the spill file deleted")
                    await feed.send(range(25, 30))
                    await until(lambda: _equal(gifts_in_stream(r, "alice"), ids(range(5, 30))),
                                "the new gifts after them")
                    [replayed] = [e for e in logs if e["event"] == "spill_replayed"]
                    assert replayed["events"] == 20 and replayed["room"] == "alice"
                    m = await metrics(port)
                    assert m[("livebot_ingest_append_failing", ("room", "alice"))] == 0
                    stop.set()
                    assert await asyncio.wait_for(task, GUARD) == {"alice": 5 + 1 + 20 + 5}  # + the first connect
            assert not spill.exists()
            [stopped] = [e for e in logs if e["event"] == "ingest_stopped"]
            assert stopped["spilled"] == 20 and stopped["unspilled"] == 20 and stopped["spill_files"] == []


# -- a spill file with lines that are not events --------------------------------------------------

async def test_a_malformed_spill_line_is_reported_as_file_line_and_set_aside(tmp_path):
    from structlog.testing import capture_logs

    async with redis_running(tmp_path / "redis") as (server, r):
        stop = asyncio.Event()
        async with TikFinity() as feed:
            cfg = load_config(write_config(tmp_path, feed.url))
            spill = tmp_path / "spill" / "alice.jsonl"
            spill.parent.mkdir()
            good = [encode_event(gift("alice", f"s{i}", i)) for i in range(4)]
            bad = [b"not json at all", b'{"type": "gift", "ts": "soon"}', good[3][:25]]
            spill.write_bytes(b"\n".join([good[0], bad[0], good[1], bad[1], b"", good[2], bad[2]]))  # torn last line
            with capture_logs() as logs:
                async with running(run_ingest(cfg, server.url, stop=stop), stop) as task:
                    await feed.send(range(0, 3))
                    await until(lambda: _equal(gifts_in_stream(r, "alice"), ["s0", "s1", "s2", *ids(range(3))]),
                                "the spilled gifts, then the new ones")
                    stop.set()
                    await asyncio.wait_for(task, GUARD)
            rejected = [e for e in logs if e["event"] == "spill_line_rejected"]
            assert [e["where"] for e in rejected] == [f"{spill}:2", f"{spill}:4", f"{spill}:7"]
            assert all(e["kept"] == str(tmp_path / "spill" / "alice.jsonl.rejected") and e["error"] for e in rejected)
            assert (tmp_path / "spill" / "alice.jsonl.rejected").read_bytes() == b"".join(x + b"\n" for x in bad)
            assert not spill.exists()
            [replayed] = [e for e in logs if e["event"] == "spill_replayed"]
            assert replayed["events"] == 3 and replayed["rejected"] == 3
            back = [ev.msg_id for _, ev in await read_events(r, "alice")]
            assert back[:3] == ["s0", "s1", "s2"]


# -- a Redis that hangs: the stop is still bounded, and a cancelled pump spills --------------------

class Feed:
    """An in-memory live source: ``push`` stamps gifts into the pump's queue (kept in ``queue``)."""

    name = "feed"

    def __init__(self) -> None:
        self.queue = None

    async def run(self, queue, clock, stop):
        self.queue, self.clock = queue, clock
        await stop.wait()

    def push(self, room: str, n: range) -> None:
        for i in n:
            stamp(self.queue, self.clock, gift(room, f"{room}-{i}", i))


async def test_a_hung_redis_cannot_hold_the_stop_and_a_cancelled_pump_spills_what_it_held(tmp_path):
    from structlog.testing import capture_logs

    from bot.clock import WallClock

    async with redis_running(tmp_path / "redis") as (server, r):
        path = tmp_path / "ingest.yaml"
        path.write_text("source: {type: websocket}\nhttp: {enabled: false}\nredis: {drain: 500ms, spill: spill}\n"
                        "ingest:\n  rooms:\n    - {room: alice}\n")
        cfg = load_config(path)
        feed, stop = Feed(), asyncio.Event()
        bob = RoomPump(r, "bob", None, cfg, asyncio.Event(), spill_dir=tmp_path / "spill")  # never stopped
        await register_room(r, "bob")  # (as run_ingest registers its rooms: bob's first batch finds it known)
        with capture_logs() as logs:
            async with (running(run_ingest(cfg, server.url, sources={"alice": feed}, stop=stop), stop) as task,
                        running(bob.pump()) as bob_task):
                try:
                    await until(lambda: feed.queue is not None, "alice's source to run")
                    feed.push("alice", range(0, 1))
                    stamp(bob.queue, WallClock(), gift("bob", "bob-first"))
                    await until(lambda: _equal(gifts_in_stream(r, "alice"), ["alice-0"]), "alice's first gift")
                    await until(lambda: _equal(gifts_in_stream(r, "bob"), ["bob-first"]), "bob's first gift")

                    os.kill(redis_pid(server), signal.SIGSTOP)  # Redis hangs: no error, no answer
                    feed.push("alice", range(1, 11))
                    for i in range(10):
                        stamp(bob.queue, WallClock(), gift("bob", f"bob-{i}", i))
                    await until(lambda: len(feed.queue) < 10 and len(bob.queue) < 10, "both pumps stuck in an append")

                    stop.set()  # alice's append, begun before the stop, never answers: the drain time still bounds it
                    await asyncio.wait_for(task, GUARD)
                    spill = tmp_path / "spill" / "alice.jsonl"
                    assert [x["msg_id"] for x in spilled_lines(spill)] == [f"alice-{i}" for i in range(1, 11)]
                    [stopped] = [e for e in logs if e["event"] == "ingest_stopped"]
                    assert stopped["spilled"] == 10 and stopped["spill_files"] == [str(spill)]

                    bob_task.cancel()  # bob: cancelled mid-append (what run_ingest's hard stop does)
                    with pytest.raises(asyncio.CancelledError):
                        await asyncio.wait_for(bob_task, GUARD)
                    assert [x["msg_id"] for x in spilled_lines(bob.spill_path)] == [f"bob-{i}" for i in range(10)]
                    assert bob.spilled == 10
                    [bobs] = [e for e in logs if e["event"] == "events_spilled" and e["room"] == "bob"]
                    assert bobs["reason"] == "pump cancelled" and bobs["events"] == 10
                finally:
                    kill_redis(server)  # never resumed: what it was sent is never appended


async def test_events_the_spill_file_cannot_take_are_logged_whole(tmp_path):
    from structlog.testing import capture_logs

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the spill folder should be")
    client = redis_asyncio.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    cfg = Config()
    cfg.redis.drain_ms = 0
    stop = asyncio.Event()
    pump = RoomPump(client, "alice", None, cfg, stop, spill_dir=blocked)
    from bot.clock import WallClock

    for i in range(3):
        stamp(pump.queue, WallClock(), gift("alice", f"g{i}", i))
    stop.set()
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(pump.pump(), GUARD)
    finally:
        await client.aclose()
    [failed] = [e for e in logs if e["event"] == "spill_failed"]
    assert failed["events"] == 3 and failed["path"] == str(blocked / "alice.jsonl")
    [lost] = [e for e in logs if e["event"] == "events_not_spilled"]
    assert [orjson.loads(x)["msg_id"] for x in lost["lines"]] == ["g0", "g1", "g2"]
    assert pump.unsaved == 3 and pump.spilled == 0


# -- where the spill files go -----------------------------------------------------------------------

def test_the_spill_folder_is_redis_spill_else_beside_the_recordings_else_the_working_directory(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("redis: {drain: 3s, spill: spilled}\nrecord: {folder: rec}\n")
    cfg = load_config(path)
    assert cfg.redis.drain_ms == 3000 and spill_folder(cfg) == tmp_path / "spilled"
    path.write_text("record: {folder: rec}\n")
    cfg = load_config(path)
    assert cfg.redis.drain_ms == 10_000 and spill_folder(cfg) == tmp_path / "rec" / "spill"
    assert spill_folder(Config()) == Path("spill")
    assert spill_file(tmp_path, "alice.live") == tmp_path / "alice.live.jsonl"
    with pytest.raises(ValueError):
        spill_file(tmp_path, "../etc")


async def test_ingest_started_while_redis_is_down_spills_then_registers_the_room_and_appends(tmp_path):
    """Redis is down when ingest starts: no traceback; the room's events wait, then spill; once
    Redis is up the room is registered (workers find it) and everything is appended in order."""
    from structlog.testing import capture_logs

    async with redis_running(tmp_path / "redis") as (server, r):
        kill_redis(server)
        stop = asyncio.Event()
        async with TikFinity() as feed:
            cfg = load_config(write_config(tmp_path, feed.url, drain="1s"))
            spill = tmp_path / "spill" / "alice.jsonl"
            with capture_logs() as logs:
                async with running(run_ingest(cfg, server.url, stop=stop), stop) as task:
                    await until(lambda: any(e["event"] == "redis_unavailable_at_start" for e in logs) or task.done(),
                                "the start without Redis")
                    assert not task.done()
                    await until(lambda: any(e["event"] == "http_listening" for e in logs), "ingest's server")
                    await feed.send(range(0, 10))
                    await until(lambda: [x["msg_id"] for x in spilled_lines(spill) if x["type"] == "gift"]
                                == ids(range(10)), "the gifts in the spill file")
                    restart_redis(server)
                    await until(lambda: _equal(gifts_in_stream(r, "alice"), ids(range(10))), "the gifts appended")
                    assert await r.sismember(f"{cfg.redis.prefix}:rooms", "alice")
                    groups = await r.xinfo_groups(f"{cfg.redis.prefix}:events:alice")
                    assert [g["name"] for g in groups] == [cfg.redis.group.encode()]
                    stop.set()
                    await asyncio.wait_for(task, GUARD)
            assert not spill.exists()
