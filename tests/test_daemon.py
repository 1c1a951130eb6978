"""`livebot run` end to end, as a subprocess: a loopback WebSocket feed, rule reloads (a good
one and a broken one), /healthz and /metrics scraped over HTTP, SIGTERM, and a SIGKILL restart
that keeps the leaderboard and cooldowns."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import websockets
from ws_server import WsServer

RULES_V1 = """
rules:
  - id: thanks
    on: gift
    do: [{say: "v1 thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: echo
    on: chat
    do: [{say: "v1 {{ event.text }}"}]
"""
RULES_V2 = RULES_V1.replace("v1", "v2")
BROKEN = RULES_V2.replace("on: chat", "on: chatt")


def line(event: str, i: int, **data) -> bytes:
    return orjson.dumps({"event": event, "data": {"userId": f"u{i % 5}", "uniqueId": f"v{i % 5}",
                                                  "nickname": f"V{i % 5}", "msgId": f"m{i}", **data}})


def chat(i: int) -> bytes:
    return line("chat", i, comment=f"c{i}")


def gift(i: int, diamonds: int = 1) -> bytes:
    return line("gift", i, giftId=7, giftName="Rose", diamondCount=diamonds, giftType=2, repeatCount=1,
                repeatEnd=False)


class Feed(WsServer):
    """A loopback WebSocket server the test pushes lines into, one connection at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.connected = asyncio.Event()

    async def handler(self, ws) -> None:
        self.connected.set()
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            while True:
                get = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    get.cancel()
                    return
                await ws.send(get.result())
        except websockets.ConnectionClosed:
            pass


class Bot:
    """``livebot run`` in a child process, its JSON log lines read as they come."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.cfg = tmp / "config.yaml"
        self.cfg.write_text(
            "rules: rules\nsinks:\n  console: false\n  jsonl: actions.jsonl\n"
            f"source:\n  type: websocket\n  websocket:\n    url: {url}\n"
            "record:\n  folder: sessions\nstate:\n  database: state.db\n  save_every: 100ms\n"
            "http:\n  port: 0\nreload:\n  poll: 100ms\n")
        self.logs: list[dict] = []
        self.port: int | None = None

    async def start(self, out: str = "actions.jsonl") -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--log-json", "run", "-c", str(self.cfg), "--out", str(self.tmp / out),
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.reader = asyncio.create_task(self._read())
        await self.wait_log("http_listening")

    async def _read(self) -> None:
        async for raw in self.proc.stderr:  # type: ignore[union-attr]
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                entry = {"event": "raw", "line": raw.decode(errors="replace")}
            if entry.get("event") == "http_listening":
                self.port = entry["port"]
            self.logs.append(entry)

    async def wait_log(self, event: str, count: int = 1, timeout: float = 30) -> list[dict]:
        for _ in range(int(timeout / 0.02)):
            found = [e for e in self.logs if e.get("event") == event]
            if len(found) >= count:
                return found
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {event!r} x{count} in the log: {self.logs[-10:]}")

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}{path}") as resp:
                return resp.status, await resp.text()

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout=30)
        await self.reader
        return code


def actions(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def wait_actions(path: Path, n: int, timeout: float = 30) -> list[dict]:
    """Wait for ``n`` actions (not counting the overlay's board updates)."""
    for _ in range(int(timeout / 0.02)):
        got = [a for a in actions(path) if a["kind"] != "leaderboard"]
        if len(got) >= n:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {n} actions, have {len(actions(path))}")


def metric(text: str, name: str) -> float:
    """One sample from Prometheus text, by its name with labels as printed (labels sorted by name)."""
    samples = dict(row.rsplit(" ", 1) for row in text.splitlines() if row and not row.startswith("#"))
    return float(samples[name])


async def test_run_reloads_serves_metrics_and_loses_nothing_on_sigterm(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.yaml").write_text(RULES_V1)
    async with Feed() as feed:
        bot = Bot(tmp_path, feed.url)
        await bot.start()
        await asyncio.wait_for(feed.connected.wait(), 30)
        for i in range(10):
            feed.queue.put_nowait(chat(i))
        out = tmp_path / "actions.jsonl"
        await wait_actions(out, 10)

        (rules / "main.yaml").write_text(RULES_V2)  # a good change is picked up from disk
        await bot.wait_log("rules_reloaded")
        for i in range(10, 20):
            feed.queue.put_nowait(gift(i))
        await wait_actions(out, 20)

        (rules / "main.yaml").write_text(BROKEN)  # a broken change is refused; v2 keeps working
        await bot.wait_log("reload_refused")
        problems = [e["problem"] for e in bot.logs if e.get("event") == "rule_problem"]
        assert any(p.startswith(f"{rules / 'main.yaml'}:7:") and "chatt" in p for p in problems), problems
        bot.proc.send_signal(signal.SIGHUP)  # and so is a SIGHUP reload of the same broken file
        await bot.wait_log("reload_refused", 2)
        for i in range(20, 30):
            feed.queue.put_nowait(chat(i))
        await wait_actions(out, 30)

        status, health = await bot.get("/healthz")
        assert status == 200 and orjson.loads(health)["sources"] == {"websocket": "connected"}
        status, text = await bot.get("/metrics")
        assert status == 200
        assert metric(text, 'livebot_events_total{type="chat"}') == 20
        assert metric(text, 'livebot_events_total{type="gift"}') == 10
        assert metric(text, 'livebot_actions_total{kind="say",rule="thanks"}') == 10
        assert metric(text, "livebot_rule_reloads_total") == 1
        assert metric(text, "livebot_rule_reloads_refused_total") == 2
        assert metric(text, "livebot_event_latency_seconds_count") >= 30
        assert metric(text, "livebot_events_lossy_total") == 0  # every line carried what its kind needs
        status, page = await bot.get("/status")
        assert status == 200 and "livebot" in page
        status, page = await bot.get("/overlay/")  # the OBS overlay, on the same server
        assert status == 200 and "overlay.js" in page

        # A burst right before SIGTERM: every event is still handled and recorded.
        for i in range(30, 330):
            feed.queue.put_nowait(chat(i))
        await asyncio.sleep(0.05)
        assert await bot.stop() == 0

    got = actions(tmp_path / "actions.jsonl")
    boards = [a for a in got if a["kind"] == "leaderboard"]  # the overlay's board, on by default
    assert boards and boards[-1]["data"]["top"][0]["diamonds"] == 2
    texts = [a["text"] for a in got if a["kind"] != "leaderboard"]
    assert texts[:10] == [f"v1 c{i}" for i in range(10)]
    assert texts[10:20] == [f"v2 thanks V{i % 5} for 1x Rose" for i in range(10, 20)]
    assert texts[20:30] == [f"v2 c{i}" for i in range(20, 30)]
    [recording] = (tmp_path / "sessions").iterdir()
    recorded = [orjson.loads(x) for x in recording.read_bytes().splitlines()]
    viewer_events = [r["msg_id"] for r in recorded if r["type"] in ("chat", "gift")]
    # Everything the feed sent before SIGTERM that reached the bot was recorded and answered, in order.
    assert viewer_events == [f"m{i}" for i in range(len(viewer_events))] and len(viewer_events) >= 30
    assert len(texts) == len(viewer_events)
    assert recorded[-1]["data"]["reason"] == "shutdown"


async def test_a_killed_bot_restarts_with_its_leaderboard_and_cooldowns(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.yaml").write_text("""
rules:
  - id: welcome
    on: chat
    once: user
    do: [{say: "welcome {{ user.nickname }}"}]
  - id: top
    command: "!top"
    do: [{say: "{{ leaderboard | ranked(2) }}"}]
""")
    async with Feed() as feed:
        bot = Bot(tmp_path, feed.url)
        await bot.start()
        await asyncio.wait_for(feed.connected.wait(), 30)
        feed.queue.put_nowait(line("chat", 1, comment="hi"))
        feed.queue.put_nowait(gift(2, diamonds=100))
        feed.queue.put_nowait(gift(3, diamonds=500))
        await wait_actions(tmp_path / "actions.jsonl", 1)
        await asyncio.sleep(0.5)  # a few snapshot intervals
        assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL

        feed.connected.clear()
        bot = Bot(tmp_path, feed.url)
        await bot.start(out="after.jsonl")
        await bot.wait_log("resumed")
        await asyncio.wait_for(feed.connected.wait(), 30)
        feed.queue.put_nowait(gift(2, diamonds=100))  # the reconnect backlog: a duplicate, dropped
        feed.queue.put_nowait(line("chat", 6, comment="hi again"))  # viewer 1 again: no second welcome
        feed.queue.put_nowait(line("chat", 11, comment="!top"))  # viewer 1 too
        after = await wait_actions(tmp_path / "after.jsonl", 1)
        assert await bot.stop() == 0
    assert [a["text"] for a in after if a["kind"] == "say"] == ["1. V3 (500) · 2. V2 (100)"]
