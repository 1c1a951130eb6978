"""bot.scale piece by piece, against a real redis-server on loopback: the Lua scripts (markers,
fencing), the Redis store, ingest's record format, the takeover snapshot, and a worker's
takeover, stream end, rules per room and hot reload, driven step by step (no sleeps)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from bot.config import Config, ConfigError, load_config
from bot.engine.core import Engine
from bot.events.model import Event, User
from bot.scale import scripts
from bot.engine.snapshot import full_restore, full_snapshot
from bot.scale.ingest import (append_events, decode_entry, decode_value, encode_event, read_events, register_room,
                              run_ingest)
from bot.scale.keys import Keys, check_room
from bot.scale.scripts import split_entries
from bot.scale.store import RedisStore
from bot.scale.worker import Worker
from bot.store.keeper import StateKeeper
from bot.testing import CaptureSink, chat, gift, ruleset
from redis_server import redis_server  # noqa: F401 - the fixture

redis_asyncio = pytest.importorskip("redis.asyncio")
K = Keys("livebot")


@pytest.fixture
async def r(redis_server):  # noqa: F811
    client = redis_asyncio.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


def script(client, name):
    return client.register_script(getattr(scripts, name))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def gift_event(room: str, i: int, diamonds: int = 1, user: str | None = None, recv: int | None = None) -> Event:
    name = user or f"v{i}"
    return Event("gift", 1_000 + i, room, f"{room}-{i:06d}", User(f"id-{name}", name, name.upper()),
                 {"gift_id": 1, "name": "Rose", "diamonds": diamonds, "count": 1, "gift_type": 2, "streak_end": True},
                 received=recv if recv is not None else now_ms())


# -- the scripts ---------------------------------------------------------------------------------

async def test_a_marker_publishes_an_action_once(r):
    publish = script(r, "PUBLISH")
    await r.set(K.owner("a"), "w1")
    keys = [K.owner("a"), K.done("a"), K.actions("a")]
    args = ["w1", 60_000, "1", 0, b"m1", b'{"n":1}', b"m2", b'{"n":2}']
    assert await publish(keys=keys, args=args) == [1, 2]
    assert await publish(keys=keys, args=args) == []  # redelivered: nothing twice
    assert await publish(keys=keys, args=["w1", 60_000, "1", 0, b"m2", b"x", b"m3", b'{"n":3}']) == [2]
    assert [f[b"a"] for _, f in await r.xrange(K.actions("a"))] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert 0 < await r.pttl(K.done("a")) <= 60_000


async def test_publishing_is_refused_without_the_lease(r):
    publish = script(r, "PUBLISH")
    await r.set(K.owner("a"), "w2")
    assert await publish(keys=[K.owner("a"), K.done("a"), K.actions("a")], args=["w1", 1000, "1", 0, b"m", b"{}"]) == -1
    assert not await r.exists(K.actions("a"), K.done("a"))


async def test_reads_are_fenced_and_a_takeover_claims_the_pending_entries(r):
    read = script(r, "READ")
    await register_room(r, "a")
    ids = await append_events(r, "a", [gift_event("a", i) for i in range(3)])
    await r.set(K.owner("a"), "w2")
    keys = [K.owner("a"), K.events("a")]
    assert await read(keys=keys, args=["w1", "workers", 10, ">"]) == [None]  # not ours: nothing delivered
    assert (await r.xpending(K.events("a"), "workers"))["pending"] == 0
    [(tag, entries)] = await read(keys=keys, args=["w2", "workers", 2, ">"])
    assert tag == b">" and [e[0] for e in split_entries(entries)] == ids[:2]
    # w2 dies holding two unacknowledged entries; w1 takes the room over and claims them, in order
    await r.set(K.owner("a"), "w1")
    [(cursor, claimed, deleted)] = await read(keys=keys, args=["w1", "workers", 10, "0-0"])
    claimed = split_entries(claimed)
    assert cursor == b"0-0" and [e[0] for e in claimed] == ids[:2] and deleted == 0
    assert decode_value(claimed[0][1]).msg_id == "a-000000"
    [(tag, entries)] = await read(keys=keys, args=["w1", "workers", 10, ">"])
    assert [e[0] for e in split_entries(entries)] == ids[2:]
    assert await read(keys=keys, args=["w1", "workers", 10, ">"]) == [[b">", b""]]


async def test_an_entry_that_is_not_an_event_is_read_as_one_to_skip(r):
    read = script(r, "READ")
    await register_room(r, "a")
    await r.xadd(K.events("a"), {"other": "x"})
    await r.xadd(K.events("a"), {"e": "line one\nline two"})
    await append_events(r, "a", [gift_event("a", 1)])
    await r.set(K.owner("a"), "w1")
    [(_, entries)] = await read(keys=[K.owner("a"), K.events("a")], args=["w1", "workers", 10, ">"])
    values = [v for _, v in split_entries(entries)]
    assert values[:2] == [b"!", b"!"] and decode_value(values[2]).msg_id == "a-000001"


async def test_a_checkpoint_is_refused_after_the_lease_is_lost(r):
    checkpoint, read = script(r, "CHECKPOINT"), script(r, "READ")
    await register_room(r, "a")
    ids = await append_events(r, "a", [gift_event("a", i) for i in range(3)])
    await r.set(K.owner("a"), "w1", px=1000)
    await read(keys=[K.owner("a"), K.events("a")], args=["w1", "workers", 10, ">"])
    await r.hset(K.done("a"), "m", 1)
    keys = [K.owner("a"), K.events("a"), K.snapshot("a"), K.done("a"), K.lifetime("a"), K.sessions("a"),
            K.all_sessions]

    def args(me):
        return [me, "workers", 5000, b'{"v":1}', 1234, "1", 1, "viewer", b'{"diamonds":3}', b'{"room":"a"}', *ids]

    await r.set(K.owner("a"), "w2")  # the lease expired and another worker took the room
    assert await checkpoint(keys=keys, args=args("w1")) == 0
    assert (await r.xpending(K.events("a"), "workers"))["pending"] == 3  # nothing acknowledged
    assert not await r.exists(K.snapshot("a"), K.lifetime("a"), K.sessions("a"))
    assert await r.exists(K.done("a"))
    await r.set(K.owner("a"), "w1", px=1000)
    assert await checkpoint(keys=keys, args=args("w1")) == 1
    assert (await r.xpending(K.events("a"), "workers"))["pending"] == 0
    assert await r.hgetall(K.snapshot("a")) == {b"saved_at": b"1234", b"data": b'{"v":1}'}
    assert await r.hgetall(K.lifetime("a")) == {b"viewer": b'{"diamonds":3}'}
    assert await r.lrange(K.all_sessions, 0, -1) == [b'{"room":"a"}']
    assert not await r.exists(K.done("a"))  # markers cleared with the acknowledgement
    assert 1000 < await r.pttl(K.owner("a")) <= 5000  # and the lease renewed


async def test_membership_counts_live_workers_and_renews_only_its_own_leases(r):
    membership = script(r, "MEMBERSHIP")
    await r.sadd(K.rooms, "a", "b")
    await r.set(K.owner("a"), "w1", px=500)
    await r.set(K.owner("b"), "w2", px=500)
    await r.zadd(K.workers, {"w-dead": 1})
    _now, alive, renewed, rooms = await membership(keys=[K.workers, K.rooms, K.owner("a"), K.owner("b")],
                                                   args=["w1", 10_000])
    assert alive == 1 and renewed == [1, 0] and sorted(rooms) == [b"a", b"b"]
    assert await r.pttl(K.owner("a")) > 5000 and await r.pttl(K.owner("b")) <= 500


# -- the store ----------------------------------------------------------------------------------

RULES = ruleset("""
rules:
  - id: thanks
    on: gift
    cooldown: {user: 1m}
    do: [{say: "thanks {{ user.nickname }}, {{ user.diamonds }} tonight, {{ user.lifetime.diamonds }} ever"}]
""")


async def test_the_redis_store_keeps_what_the_sqlite_store_keeps(r, redis_server):  # noqa: F811
    store = RedisStore(redis_server.url, room="alice")
    try:
        assert store.load_snapshot("alice") is None and store.lifetime() == {} and store.sessions() == []
        keeper = StateKeeper(store, "alice", every_ms=1000)
        engine = keeper.open(Engine(RULES), 0)
        for ev in [gift(1000, "Rose", 1, 5, "ana"), gift(2000, "Lion", 100, 1, "bo")]:
            engine.feed(ev, ev.ts)
        keeper.save(engine, 2000)
        saved_at, snap = store.load_snapshot("alice")
        assert saved_at == 2000 and snap["state"]["diamonds"] == 105
        resumed = StateKeeper(store, "alice").open(Engine(RULES), 3000)  # a restart: the stream goes on
        assert resumed.board.top(2) == engine.board.top(2)
        assert [a.text for a in resumed.feed(gift(4000, "Rose", 1, 1, "ana"), 4000)] == []  # cooldown kept
        fresh = keeper.finish(resumed, 5000)
        assert store.load_snapshot("alice") is None
        assert store.lifetime()["id-ana"]["diamonds"] == 6 and store.lifetime("bob") == {}
        [summary] = store.sessions("alice")
        assert summary["room"] == "alice" and summary["diamonds"] == 106 and store.sessions() == [summary]
        assert fresh.state.lifetime["id-bo"]["diamonds"] == 100
    finally:
        store.close()


def test_room_names_are_checked():
    assert check_room("alice_01.live") == "alice_01.live"
    for bad in ("", "../etc", ".hidden", "a b", "a/b", "x" * 101, None):
        with pytest.raises(ValueError):
            check_room(bad)


# -- ingest ------------------------------------------------------------------------------------

async def test_events_read_back_from_the_stream_are_the_events_appended(r):
    ann = User("1", "ann", "Ann 🌸", follow_role=1, is_moderator=True, is_subscriber=True, gifter_level=3)
    events = [
        Event("chat", 1000, "r1", "m1", ann, {"text": "{{7*7}} hi"}, raw={"big": "payload"}, received=1005),
        gift_event("r1", 2, diamonds=30, recv=2010),
        Event("like", 3000, "r1", "m3", ann, {"count": 5, "total": 99}, received=3001),
        Event("viewers", 4000, "r1", "", None, {"count": 12}, received=4002),
        Event("gift", 4500, "r1", "m5", ann, {"gift_id": 5, "name": "Rose", "diamonds": 1, "count": 3,
                                              "gift_type": 1, "streak_end": False, "group_id": "g1"}),
        Event("live_end", 5000, "r1", "m4", None, {"source": "websocket", "reason": "4005"}, received=5003),
    ]
    ids = await append_events(r, "r1", events)
    assert events[4].received is not None  # stamped on the way in, as a live source does
    back = await read_events(r, "r1")
    assert [i for i, _ in back] == ids
    assert [ev.to_dict(with_raw=False) for _, ev in back] == [ev.to_dict(with_raw=False) for ev in events]
    assert back[0][1].raw is None  # raw payloads stay out unless asked for
    await append_events(r, "r2", events[:1], keep_raw=True)
    [(_, kept)] = await read_events(r, "r2")
    assert kept.raw == {"big": "payload"} and decode_entry({b"e": encode_event(kept, True)}).raw == kept.raw


async def test_streams_are_trimmed_to_about_maxlen(r):
    await append_events(r, "r1", [gift_event("r1", i) for i in range(1000)], maxlen=100)
    assert 100 <= await r.xlen(K.events("r1")) < 1000


async def test_ingest_runs_a_source_per_room_into_its_stream(r, redis_server, tmp_path):  # noqa: F811
    from bot.sources.queue import stamp

    class Feed:
        name = "feed"

        def __init__(self, room, n):
            self.room, self.n = room, n

        async def run(self, queue, clock, stop):
            for i in range(self.n):
                stamp(queue, clock, gift(1000 + i, "Rose", 1, msg_id=f"{self.room}-{i}"))
            await stop.wait()

    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("source:\n  type: websocket\ningest:\n  rooms:\n    - {room: alice}\n    - {room: bob, url: 'ws://127.0.0.1:1/'}\n")
    cfg = load_config(cfg_path)
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(cfg, redis_server.url, sources={"alice": Feed("alice", 30),
                                                                          "bob": Feed("bob", 5)}, stop=stop))
    for _ in range(500):
        if await r.xlen(K.events("alice")) == 30 and await r.xlen(K.events("bob")) == 5:
            break
        await asyncio.sleep(0.01)
    stop.set()
    assert await task == {"alice": 30, "bob": 5}
    assert sorted(await r.smembers(K.rooms)) == [b"alice", b"bob"]
    assert [g["name"] for g in await r.xinfo_groups(K.events("alice"))] == [b"workers"]
    back = await read_events(r, "alice")
    assert [ev.msg_id for _, ev in back] == [f"alice-{i}" for i in range(30)]
    assert all(ev.room_id == "alice" and ev.received for _, ev in back)


def test_ingest_config_lists_rooms_and_refuses_bad_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("redis:\n  lease: 2s\n  rules_by_room: creators\n"
                    "ingest:\n  rooms:\n    - {room: alice, type: tiktok, unique_id: '@alice'}\n    - {room: bob}\n")
    cfg = load_config(path)
    assert [(x.room, x.type, x.unique_id) for x in cfg.ingest.rooms] == [("alice", "tiktok", "@alice"), ("bob", None, None)]
    assert cfg.redis.lease_ms == 2000 and cfg.redis.rules_by_room == tmp_path / "creators"
    path.write_text("ingest:\n  rooms:\n    - {room: '../x'}\nredis:\n  lease: 10ms\n  url: http://h\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 3
    assert "bad room name '../x'" in info.value.problems[0] and f"{path}:3:5" in info.value.problems[0]


def test_the_commands_refuse_what_they_cannot_run(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("sinks:\n  console: false\n")
    res = subprocess.run([sys.executable, "-m", "bot", "run", "-c", str(cfg), "--source", "http://x"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--source must be a redis://" in res.stderr
    res = subprocess.run([sys.executable, "-m", "bot", "ingest", "-c", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 1 and "'ingest.rooms' lists no room" in res.stderr
    # integrations are livebot run's: a worker sends to sinks in turn, a hung tool would hold up every room
    cfg.write_text("sinks:\n  console: false\nintegrations:\n  mqtt: {enabled: true}\n")
    res = subprocess.run([sys.executable, "-m", "bot", "run", "-c", str(cfg), "--source", "redis://127.0.0.1:1"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "integrations (mqtt) run with `livebot run` only" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


# -- the takeover snapshot ----------------------------------------------------------------------

BUSY = ruleset("""
settings:
  chat: {per_minute: 6, burst: 2, dedup: 10s, max_wait: 5m}
rules:
  - id: thank
    on: gift
    merge: "thanks {{ names }}!"
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: hello
    on: chat
    do: [{say: "hi {{ user.nickname }}, {{ since.chat }} chats since"}]
  - id: remind
    every: 20s
    do: [{say: "follow!"}]
""")

BEFORE = [gift(1000, "Rose", 1, 1, "ana", gift_type=1), gift(1500, "Rose", 1, 4, "ana", gift_type=1),
          gift(2000, "Lion", 100, 1, "bo"), gift(2100, "Cap", 99, 1, "cy"), gift(2200, "Cap", 99, 1, "di"),
          chat(2300, "hey", "ed")]
AFTER = [gift(3000, "Rose", 1, 9, "ana", gift_type=1, streak_end=True), gift(3100, "Cap", 99, 1, "fa"),
         chat(9000, "yo", "gus"), gift(30_000, "Rose", 1, 2, "hal", gift_type=1)]


def run(engine: Engine, events, until: int) -> list[tuple]:
    out = [a for ev in events for a in engine.feed(ev, ev.ts)] + engine.advance(until)
    return [(a.ts, a.rule, a.text, a.event_id) for a in out]


def test_a_restored_engine_fires_what_the_original_fires():
    a = Engine(BUSY)
    run(a, BEFORE, 2500)
    assert a.budget.waiting and a.streaks.next_deadline() is not None and a.timers is not None
    b = Engine(BUSY)
    full_restore(b, orjson.loads(orjson.dumps(full_snapshot(a))))
    expected = run(a, AFTER, 120_000)
    assert run(b, AFTER, 120_000) == expected
    assert any(r == "remind" for _, r, _, _ in expected) and any("thanks" in t and "," in t for _, _, t, _ in expected)


def test_a_damaged_extra_part_is_left_out():
    a = Engine(BUSY)
    run(a, BEFORE, 2500)
    snap = orjson.loads(orjson.dumps(full_snapshot(a)))
    snap["scale"]["budget"] = {"tokens": "many"}
    b = Engine(BUSY)
    full_restore(b, snap)  # logged; the rest is restored
    assert b.state.diamonds == a.state.diamonds and b.streaks.next_deadline() == a.streaks.next_deadline()


# -- a worker, step by step --------------------------------------------------------------------

THANKS = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }}"}]
"""


def worker_for(client, tmp_path: Path, name: str, rules: str = THANKS, overlay: bool = False,
               **redis) -> tuple[Worker, CaptureSink]:
    (tmp_path / "rules.yaml").write_text(rules)
    cfg = Config()
    cfg.overlay_enabled = overlay  # (off: thank-yous only, no board updates)
    cfg.redis.lease_ms = 1000
    for k, v in redis.items():
        setattr(cfg.redis, k, v)
    sink = CaptureSink()
    return Worker(cfg, client, rules_path=tmp_path / "rules.yaml", sinks=[sink], worker_id=name), sink


async def actions_in(client, room) -> list[dict]:
    return [orjson.loads(f[b"a"]) for _, f in await client.xrange(K.actions(room))]


async def test_a_takeover_replays_the_unacknowledged_entries_without_thanking_twice(r, tmp_path):
    for room in ("a", "b"):
        await register_room(r, room)
        await append_events(r, room, [gift_event(room, i) for i in range(10)])
    w1, sink1 = worker_for(r, tmp_path, "w1", checkpoint_ms=3_600_000, checkpoint_events=1_000_000)
    await w1._tick()
    await w1._read()
    await w1._read()
    assert sorted(w1.rooms) == ["a", "b"] and len(sink1.actions) == 20
    # w1 dies without a checkpoint: its leases run out, its entries stay pending
    await r.delete(K.owner("a"), K.owner("b"))
    await r.zrem(K.workers, "w1")  # ... and its heartbeat
    for room in ("a", "b"):
        await append_events(r, room, [gift_event(room, i) for i in range(10, 15)])
    w2, sink2 = worker_for(r, tmp_path, "w2")
    await w2._tick()
    assert sorted(w2.rooms) == ["a", "b"]
    for _ in range(4):
        await w2._read()
    assert w2.counters["duplicates_skipped"] == 20
    assert [a.event_id for a in sink2.actions if a.event_id.startswith("a")] == [f"a-{i:06d}" for i in range(10, 15)]
    await w2._checkpoint(list(w2.rooms.values()), force=True)
    for room in ("a", "b"):
        assert [a["event_id"] for a in await actions_in(r, room)] == [f"{room}-{i:06d}" for i in range(15)]
        assert (await r.xpending(K.events(room), "workers"))["pending"] == 0
    # the dead worker wakes up: every step it tries is refused, and it lets the rooms go
    await append_events(r, "a", [gift_event("a", 99)])
    await w1._read()
    assert w1.rooms == {} and len(sink1.actions) == 20


async def test_a_worker_builds_its_engine_from_the_config_so_board_updates_reach_the_actions_stream(r, tmp_path):
    await register_room(r, "a")
    await append_events(r, "a", [gift_event("a", 0, 10, "ana"), gift_event("a", 1, 5, "bo")])
    w, sink = worker_for(r, tmp_path, "w1", overlay=True)
    w.cfg.overlay_board = 3
    await w._tick()
    await w._read()
    await w._read()
    published = await actions_in(r, "a")
    assert sorted(a["kind"] for a in published) == ["leaderboard", "leaderboard", "say", "say"]
    assert [a.kind for a in sink.actions] == [a["kind"] for a in published]


async def test_a_worker_makes_its_rooms_group_once_and_again_after_redis_lost_it(r, tmp_path):
    await register_room(r, "a")
    await append_events(r, "a", [gift_event("a", 0)])
    w, sink = worker_for(r, tmp_path, "w1")
    made = []
    create = r.xgroup_create

    async def counted(*args, **kwargs):
        made.append(args[0])
        return await create(*args, **kwargs)

    r.xgroup_create = counted
    try:
        await w._tick()
        await w._read()
        await w._read()
        await w._release(w.rooms["a"])
        await w._tick()  # taken again: the group is not made again
        assert made == [K.events("a")] and "a" in w.rooms
        # Redis restarts without its data (as FLUSHALL): the next tick sees a new run id (faked
        # here, as the same server keeps its id), takes the room again and makes its group again
        await r.flushall()
        w._run_id = "an-earlier-run"
        await w._tick()
        assert made == [K.events("a"), K.events("a")] and "a" in w.rooms
        assert await r.sismember(K.rooms, "a")
        await append_events(r, "a", [gift_event("a", 1)])
        for _ in range(3):
            await w._read()
        assert [a.event_id for a in sink.actions] == ["a-000000", "a-000001"]
    finally:
        r.xgroup_create = create


async def test_ingest_registers_its_room_again_when_redis_lost_it_without_an_error(r, redis_server, tmp_path):  # noqa: F811
    """The client reconnects silently: a Redis that came back empty between two batches makes no
    append fail, so each batch asks (in its round trip) whether the room is still registered."""
    from bot.scale.ingest import RoomPump

    cfg = Config()
    stop = asyncio.Event()
    pump = RoomPump(r, "a", None, cfg, stop, spill_dir=tmp_path / "spill")
    await register_room(r, "a")
    pumping = asyncio.create_task(pump.pump())

    async def until(check) -> None:  # (a hang guard, not a measurement)
        for _ in range(6000):
            if await check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    try:
        pump.queue.put(gift_event("a", 1))
        await until(lambda: r.xlen(K.events("a")))
        await r.flushall()  # (what a restart without persistence leaves)
        pump.queue.put(gift_event("a", 2))
        await until(lambda: r.sismember(K.rooms, "a"))
        assert await r.sismember(K.rooms, "a")
        [group] = await r.xinfo_groups(K.events("a"))
        assert group["name"] == b"workers" and group["entries-read"] in (None, 0)
        assert [ev.msg_id for _, ev in await read_events(r, "a")] == ["a-000002"]
    finally:
        stop.set()
        await asyncio.wait_for(pumping, 30)


async def test_a_worker_whose_user_may_not_run_info_still_works(r, redis_server, tmp_path):  # noqa: F811
    await r.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-info")
    client = redis_asyncio.from_url(redis_server.url.replace("redis://", "redis://limited:pw@"))
    try:
        await register_room(r, "a")
        await append_events(r, "a", [gift_event("a", 0)])
        w, sink = worker_for(client, tmp_path, "w1")
        for _ in range(2):
            await w._tick()  # (the run-id check is refused: said once, then skipped)
        await w._read()
        await w._read()
        assert [a.event_id for a in sink.actions] == ["a-000000"]
    finally:
        await client.aclose()
        await r.execute_command("ACL", "DELUSER", "limited")


async def test_a_stream_end_does_not_publish_every_held_chat_line_at_once(r, tmp_path):
    rules = THANKS.replace("rules:\n", "settings:\n  chat: {per_minute: 6, burst: 3}\nrules:\n")
    await register_room(r, "a")
    t = now_ms()
    await append_events(r, "a", [gift_event("a", i, recv=t) for i in range(20)]
                        + [Event("live_end", 3000, "a", "end-1", None, {"source": "websocket"}, received=t)])
    w, sink = worker_for(r, tmp_path, "w1", rules=rules)
    await w._tick()
    await w._read()
    await w._read()
    assert [a["text"] for a in await actions_in(r, "a")] == ["thanks V0", "thanks V1", "thanks V2"]  # the burst
    assert w.counters["chat_held_at_close"] == 10  # (the queue keeps 10; 7 were dropped as it was full)


async def test_a_stale_worker_cannot_publish_or_acknowledge(r, tmp_path):
    await register_room(r, "a")
    await append_events(r, "a", [gift_event("a", i) for i in range(3)])
    w1, sink1 = worker_for(r, tmp_path, "w1")
    await w1._tick()
    await w1._read()  # the takeover's claim pass (nothing pending)
    await w1._read()  # the new entries
    assert len(sink1.actions) == 3
    await r.set(K.owner("a"), "w2")  # w1 was paused past its lease; w2 took the room
    room = w1.rooms["a"]
    assert not await w1._checkpoint([room], force=True)
    assert "a" not in w1.rooms and (await r.xpending(K.events("a"), "workers"))["pending"] == 3


async def test_a_stream_end_is_folded_into_lifetime_totals_and_sessions(r, redis_server, tmp_path):  # noqa: F811
    await register_room(r, "a")
    evs = [gift_event("a", 0, 10, "ana"), gift_event("a", 1, 5, "bo"),
           Event("live_end", 3000, "a", "end-1", None, {"source": "websocket"}, received=now_ms()),
           gift_event("a", 2, 7, "ana")]
    await append_events(r, "a", evs)
    w, sink = worker_for(r, tmp_path, "w1")
    await w._tick()
    await w._read()
    await w._read()
    store = RedisStore(redis_server.url)
    try:
        [summary] = store.sessions("a")
        assert summary["diamonds"] == 15 and summary["events"]["gift"] == 2
        assert store.lifetime("a")["id-ana"]["diamonds"] == 10
        await w._checkpoint(list(w.rooms.values()), force=True)
        saved_at, snap = store.load_snapshot("a")
        assert snap["state"]["diamonds"] == 7  # the next stream, on its own
        assert (await r.xpending(K.events("a"), "workers"))["pending"] == 0
    finally:
        store.close()


async def test_rules_per_room_and_hot_reload(r, tmp_path):
    creators = tmp_path / "creators"
    (creators / "alice").mkdir(parents=True)
    (creators / "alice" / "rules.yaml").write_text(THANKS.replace("thanks {{", "merci {{"))
    for room in ("alice", "bob"):
        await register_room(r, room)
        await append_events(r, room, [gift_event(room, 0)])
    w, sink = worker_for(r, tmp_path, "w1", rules_by_room=creators)
    await w._tick()
    await w._read()
    await w._read()
    assert sorted(a.text for a in sink.actions) == ["merci V0", "thanks V0"]
    (creators / "alice" / "rules.yaml").write_text(THANKS.replace("thanks {{", "danke {{"))
    assert w.reloaders[creators / "alice"].reload("test")
    (creators / "alice" / "bad.yaml").write_text("rules:\n  - id: x\n    on: gfit\n")
    assert not w.reloaders[creators / "alice"].reload("test")  # refused: the running rules stay
    for room in ("alice", "bob"):
        await append_events(r, room, [gift_event(room, 1)])
    await w._read()
    assert sorted(a.text for a in sink.actions[2:]) == ["danke V1", "thanks V1"]
