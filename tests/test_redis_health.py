"""``/healthz`` and ``/metrics`` of the Redis worker (``livebot run --source redis://...``, a real
process) and of ``livebot ingest``, against a real redis-server that the tests kill (SIGKILL):
health turns 503 once Redis has failed for longer than the threshold, counters grow as events are
processed, and a Redis password never shows. Waits are polls with a hang guard, never timings."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import orjson
import pytest

from bot.config import Config, load_config
from bot.control.worker_server import ScaleServer, WorkerHealth
from bot.events.model import CONNECT, Event
from bot.scale.ingest import append_events, register_room, run_ingest
from bot.scale.keys import Keys
from redis_server import kill_redis, redis_running, restart_redis, running
from test_redis_units import gift_event

redis_asyncio = pytest.importorskip("redis.asyncio")
GUARD = 60.0  # seconds: a hang guard, never a measurement
K = Keys("livebot")
ROOMS = ["alice", "bob", "carol"]
PASSWORD = "s3cret-Pa55word"
RULES = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }}"}]
"""
CONFIG = """
rules: rules.yaml
sinks: {console: false, overlay: {enabled: false}}
http: {enabled: true, host: 127.0.0.1, port: 0}
reload: {watch: false}
redis:
  lease: 1s
"""


# -- helpers -------------------------------------------------------------------------------------

async def until(check, what: str, timeout: float = GUARD):
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def get(port: int, path: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
            return resp.status, await resp.text()


async def health(port: int) -> tuple[int, dict]:
    status, text = await get(port, "/healthz")
    return status, orjson.loads(text)


def samples(text: str) -> dict[tuple, float]:
    """``{(sample name, (label, value), ...): value}`` of a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def log_lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.startswith(b"{")]


async def start_worker(tmp: Path, url: str, name: str) -> tuple[asyncio.subprocess.Process, int]:
    """A worker process; returns it and the port its HTTP server bound (port 0 in the config)."""
    (tmp / "rules.yaml").write_text(RULES)
    (tmp / "config.yaml").write_text(CONFIG)
    log = tmp / f"{name}.log"
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--log-json", "run", "-c", str(tmp / "config.yaml"), "--source", url,
            "--worker-id", name, stdout=asyncio.subprocess.DEVNULL, stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def listening():
        if proc.returncode is not None:
            raise AssertionError(f"the worker exited: {log.read_text()}")
        return next((line["port"] for line in log_lines(log) if line["event"] == "http_listening"), None)

    return proc, await until(listening, "the worker's http_listening line")


async def stop_worker(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), GUARD)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    return proc.returncode


def port_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


# -- a worker process ----------------------------------------------------------------------------

async def test_worker_healthz_and_metrics_follow_its_rooms_and_turn_503_when_redis_dies(tmp_path):
    async with redis_running(tmp_path / "redis") as (server, r):
        proc = None
        try:
            for room in ROOMS:
                await register_room(r, room)
            proc, port = await start_worker(tmp_path, server.url, "w1")

            async def serving():
                status, body = await health(port)
                return body if status == 200 and body["rooms_held"] == 3 else None

            body = await until(serving, "the worker to hold the three rooms")
            assert body["status"] == "ok" and body["worker"] == "w1" and body["rooms"] == ROOMS
            assert body["fair_share"] == 3 and body["alive_workers"] == 1 and body["redis_failures"] == 0
            assert body["last_ok_age_s"] is not None and body["loop_age_s"] is not None

            status, text = await get(port, "/metrics")
            m = samples(text)
            assert status == 200
            assert m[("livebot_worker_rooms",)] == 3 and m[("livebot_worker_alive_workers",)] == 1
            assert m[("livebot_worker_fair_share",)] == 3 and m[("livebot_worker_healthy",)] == 1
            assert m[("livebot_worker_info", ("worker", "w1"))] == 1
            assert m[("livebot_worker_counter_total", ("counter", "events"))] == 0
            assert m[("livebot_worker_counter_total", ("counter", "rooms_taken"))] == 3
            assert m[("livebot_worker_redis_failures_total",)] == 0

            for room in ROOMS:
                await append_events(r, room, [gift_event(room, i) for i in range(20)])

            async def counted():
                m = samples((await get(port, "/metrics"))[1])
                done = m[("livebot_worker_counter_total", ("counter", "actions"))] == 60 and \
                    m[("livebot_worker_counter_total", ("counter", "events"))] == 60
                return m if done else None

            m = await until(counted, "60 events processed and 60 actions published in /metrics")
            for room in ROOMS:
                assert m[("livebot_worker_room_events_total", ("room", room))] == 20
            assert m[("livebot_worker_counter_total", ("counter", "duplicates_skipped"))] == 0

            kill_redis(server)  # Redis dies under the worker

            async def unhealthy():
                status, body = await health(port)
                return body if status == 503 else None

            body = await until(unhealthy, "/healthz to answer 503")
            assert body["status"] == "redis_failing" and body["redis_failures"] >= 1
            m = samples((await get(port, "/metrics"))[1])
            assert m[("livebot_worker_healthy",)] == 0 and m[("livebot_worker_redis_failures_total",)] >= 1
            assert m[("livebot_worker_redis_failures_in_a_row",)] >= 1

            assert await stop_worker(proc) == 0
            assert port_closed(port)  # the HTTP server stopped with the worker
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_redis_password_never_shows_in_healthz_metrics_or_logs(tmp_path):
    async with redis_running(tmp_path / "redis", password=PASSWORD) as (server, r):
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        proc = None
        try:
            await register_room(r, "alice")
            await append_events(r, "alice", [gift_event("alice", i) for i in range(5)])
            proc, port = await start_worker(tmp_path, url, "w-secret")

            async def thanked():
                status, body = await health(port)
                return status == 200 and body["rooms"] == ["alice"] and await r.xlen(K.actions("alice")) == 5

            await until(thanked, "the worker to thank five gifts")
            pages = [(await get(port, path))[1] for path in ("/healthz", "/metrics")]
            assert "alice" in pages[1]
            assert await stop_worker(proc) == 0
            for text in (*pages, (tmp_path / "w-secret.log").read_text()):
                assert PASSWORD not in text
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


# -- ingest --------------------------------------------------------------------------------------

class Feed:
    """A live source that connects, then sends a gift each time ``more`` is set."""

    name = "feed"

    def __init__(self, room: str) -> None:
        self.room = room
        self.more = asyncio.Event()
        self.sent = 0
        self.connects = 0

    async def run(self, queue, clock, stop):
        from bot.sources.queue import stamp

        self.connects += 1
        stamp(queue, clock, Event(CONNECT, clock.now(), data={"source": self.name}))
        while not stop.is_set():
            for i in range(10):
                stamp(queue, clock, gift_event(self.room, self.sent + i))
            self.sent += 10
            self.more.clear()
            waiter = asyncio.ensure_future(self.more.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()


async def test_ingest_healthz_and_metrics_count_appends_and_turn_503_when_redis_dies(tmp_path):
    from structlog.testing import capture_logs

    async with redis_running(tmp_path / "redis") as (server, r):
        path = tmp_path / "ingest.yaml"
        path.write_text("source: {type: websocket}\nhttp: {port: 0}\nredis: {lease: 1s}\n"
                        "ingest:\n  rooms:\n    - {room: alice}\n    - {room: bob}\n")
        cfg = load_config(path)
        feeds = {room: Feed(room) for room in ("alice", "bob")}
        stop = asyncio.Event()
        with capture_logs() as logs:
            async with running(run_ingest(cfg, server.url, sources=feeds, stop=stop), stop) as task:
                async def listening():
                    if task.done():
                        task.result()
                    return next((e["port"] for e in logs if e["event"] == "http_listening"), None)

                port = await until(listening, "ingest's http_listening line")

                async def appended():
                    status, body = await health(port)
                    rooms = body["rooms"]
                    return body if status == 200 and all(rooms[x]["appended"] == 11 for x in feeds) else None

                body = await until(appended, "ten gifts and a connect appended per room")
                assert body["status"] == "ok"
                assert body["rooms"]["alice"] == {"source": "connected", "appended": 11, "append_failures": 0,
                                                  "failing_s": None, "queue_depth": 0}
                m = samples((await get(port, "/metrics"))[1])
                for room in feeds:
                    assert m[("livebot_ingest_appended_total", ("room", room))] == 11
                    assert m[("livebot_ingest_source_connected", ("room", room))] == 1
                    assert m[("livebot_ingest_append_failures_total", ("room", room))] == 0
                assert m[("livebot_ingest_healthy",)] == 1

                kill_redis(server)
                feeds["alice"].more.set()  # ten more gifts that cannot be appended

                async def unhealthy():
                    status, body = await health(port)
                    return body if status == 503 else None

                body = await until(unhealthy, "ingest's /healthz to answer 503")
                assert body["status"] == "redis_failing" and body["rooms"]["alice"]["append_failures"] >= 1
                assert body["rooms"]["alice"]["failing_s"] is not None and body["rooms"]["bob"]["failing_s"] is None
                m = samples((await get(port, "/metrics"))[1])
                assert m[("livebot_ingest_append_failures_total", ("room", "alice"))] >= 1
                assert m[("livebot_ingest_append_failing", ("room", "alice"))] == 1
                assert m[("livebot_ingest_healthy",)] == 0

                restart_redis(server)  # (empty) on the same port: alice's gifts go out, health comes back

                async def healthy_again():
                    status, body = await health(port)
                    return body if status == 200 and body["rooms"]["alice"]["appended"] == 21 else None

                body = await until(healthy_again, "ingest's /healthz to answer 200 again")
                assert body["rooms"]["alice"]["failing_s"] is None
                stop.set()
                await asyncio.wait_for(task, GUARD)
        assert port_closed(port)


# -- the health rule and the port, without Redis -------------------------------------------------

def fake_worker(**kw) -> SimpleNamespace:
    cfg = Config()
    now = time.monotonic()
    base = dict(rc=cfg.redis, id="w1", rooms={}, share=0, alive=1, failures=0, redis_errors=0,
                heartbeat=now, last_ok=now, counters={})
    return SimpleNamespace(**{**base, **kw})


def test_worker_health_says_stalled_or_redis_failing_past_its_thresholds():
    now = time.monotonic()
    ok, body = WorkerHealth(fake_worker(), stall_s=10, redis_fail_s=30)()
    assert ok and body["status"] == "ok" and body["rooms"] == [] and body["redis_failures"] == 0
    ok, body = WorkerHealth(fake_worker(heartbeat=now - 11), stall_s=10, redis_fail_s=30)()
    assert not ok and body["status"] == "stalled"
    ok, body = WorkerHealth(fake_worker(last_ok=now - 31, failures=7), stall_s=10, redis_fail_s=30)()
    assert not ok and body["status"] == "redis_failing" and body["redis_failures"] == 7
    ok, body = WorkerHealth(fake_worker(last_ok=now - 29, failures=7), stall_s=10, redis_fail_s=30)()
    assert ok  # failing, but not for long enough yet
    # never succeeded: counted from the start
    ok, body = WorkerHealth(fake_worker(last_ok=None), stall_s=10, redis_fail_s=30)()
    assert ok and body["last_ok_age_s"] is None
    # default threshold: three leases (at least 2 s)
    assert WorkerHealth(fake_worker()).redis_fail_s == 30.0


async def test_a_port_in_use_is_logged_and_the_worker_runs_on_without_http():
    from structlog.testing import capture_logs

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ScaleServer.for_worker(fake_worker(), host="127.0.0.1", port=port)
        with capture_logs() as logs:
            assert await server.start() is None
        await server.stop()
    [line] = [e for e in logs if e["event"] == "http_unavailable"]
    assert line["port"] == port and line["role"] == "worker"
