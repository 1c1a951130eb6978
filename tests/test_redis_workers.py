"""Two `livebot run --source redis://...` worker processes share ten rooms on a real Redis; gifts
keep arriving while one worker is killed (SIGKILL) mid-stream; the other takes its rooms over.
In the end every gift is thanked exactly once, in each room's order."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import pytest

from bot.scale.ingest import append_events, register_room
from bot.scale.keys import Keys
from redis_server import redis_server  # noqa: F401 - the fixture
from test_redis_units import gift_event

redis_asyncio = pytest.importorskip("redis.asyncio")
K = Keys("livebot")
ROOMS = [f"room-{i}" for i in range(10)]
RULES = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for the {{ event.name }}"}]
"""
CONFIG = """
rules: rules.yaml
sinks: {console: false, overlay: {enabled: false}}  # (thank-yous only: no board updates)
http: {enabled: false}
reload: {watch: false}
redis:
  lease: 1s
  # No timed checkpoint: what a worker processed stays unacknowledged until it hands a room back,
  # so the killed worker surely leaves entries whose thanks it already published.
  checkpoint_every: 1h
  checkpoint_events: 1000000
"""


async def start_worker(tmp: Path, url: str, name: str) -> asyncio.subprocess.Process:
    err = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - the child holds it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--log-json", "run", "-c", str(tmp / "config.yaml"), "--source", url,
        "--worker-id", name, stdout=asyncio.subprocess.DEVNULL, stderr=err,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    err.close()
    return proc


def log_lines(tmp: Path, name: str) -> list[dict]:
    return [orjson.loads(x) for x in (tmp / f"{name}.log").read_bytes().splitlines() if x.startswith(b"{")]


async def until(check, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_two_workers_one_killed_every_gift_thanked_exactly_once_in_order(redis_server, tmp_path):  # noqa: F811
    r = redis_asyncio.from_url(redis_server.url)
    await r.flushall()
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "config.yaml").write_text(CONFIG)
    for room in ROOMS:
        await register_room(r, room)
    workers = {name: await start_worker(tmp_path, redis_server.url, name) for name in ("w1", "w2")}
    try:
        async def owners() -> list:
            return await r.mget([K.owner(room) for room in ROOMS])

        async def shared() -> bool:
            got = await owners()
            return got.count(b"w1") == 5 and got.count(b"w2") == 5

        await until(shared, "the two workers to own five rooms each")
        w1_rooms = [room for room, o in zip(ROOMS, await owners()) if o == b"w1"]

        async def thanked() -> int:
            return sum([await r.xlen(K.actions(room)) for room in ROOMS])

        for room in ROOMS:
            await append_events(r, room, [gift_event(room, i) for i in range(30)])

        async def phase_one() -> bool:
            return await thanked() == 300

        await until(phase_one, "the first 300 gifts to be thanked")

        killed = asyncio.Event()

        async def keep_sending() -> None:
            for i in range(30, 80):
                for room in ROOMS:
                    await append_events(r, room, [gift_event(room, i)])
                if i == 40:
                    workers["w1"].send_signal(signal.SIGKILL)
                    await workers["w1"].wait()
                    killed.set()
                await asyncio.sleep(0.005)

        await keep_sending()
        assert killed.is_set() and workers["w1"].returncode == -signal.SIGKILL

        async def all_thanked() -> bool:
            return await thanked() >= 800

        await until(all_thanked, "all 800 gifts to be thanked")
        workers["w2"].send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(workers["w2"].wait(), 60) == 0
    finally:
        for proc in workers.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    for room in ROOMS:
        actions = [orjson.loads(f[b"a"]) for _, f in await r.xrange(K.actions(room))]
        # exactly once, and in the room's order
        assert [a["event_id"] for a in actions] == [f"{room}-{i:06d}" for i in range(80)], room
        assert all(a["rule"] == "thanks" and a["text"] == f"thanks V{i} for the Rose" for i, a in
                   enumerate(actions))
        assert (await r.xpending(K.events(room), "workers"))["pending"] == 0
    w2 = log_lines(tmp_path, "w2")
    taken = {line["room"] for line in w2 if line["event"] == "room_taken"}
    assert set(w1_rooms) <= taken  # w2 took over every room of the killed worker
    [stopped] = [line for line in w2 if line["event"] == "worker_stopped"]
    # w1's thanks since its last checkpoint were replayed by w2 and recognised, not sent again
    assert stopped["duplicates_skipped"] >= 5 * 30
    assert not any(line["level"] == "error" for line in w2)
    await r.aclose()
