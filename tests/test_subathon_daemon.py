"""The subathon timer in a real ``livebot run`` (a subprocess, a loopback WebSocket feed, SQLite
state, a recording): driven over HTTP (``POST /subathon/...``), refused from other origins and with
bad amounts, paused across a restart at exactly the value it had, and replayed from the recording
to the same clock."""

from __future__ import annotations

import asyncio

import aiohttp
from test_daemon import Bot, Feed, actions, line

from bot.cli import main

RULES = """
settings:
  subathon:
    start: 1h
    add: {follow: 1m}
rules:
  - id: hello
    on: chat
    do: [{say: "hi {{ user.nickname }}"}]
"""


async def post(bot: Bot, path: str, **headers) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        # the control server takes state changes only as JSON POSTs (bot/control/guard.py)
        async with http.post(f"http://127.0.0.1:{bot.port}{path}", json={}, headers=headers) as resp:
            return resp.status, await resp.json()


async def wait_timer(path, check, timeout: float = 30) -> dict:
    for _ in range(int(timeout / 0.02)):
        found = [a for a in actions(path) if a["kind"] == "timer" and check(a)]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no such timer action in {[a for a in actions(path) if a['kind'] == 'timer']}")


async def test_the_timer_is_driven_over_http_survives_a_restart_and_replays_the_same(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    out, after = tmp_path / "actions.jsonl", tmp_path / "after.jsonl"
    async with Feed() as feed:
        bot = Bot(tmp_path, feed.url)
        await bot.start()
        await asyncio.wait_for(feed.connected.wait(), 30)
        feed.queue.put_nowait(line("chat", 1, comment="hello"))
        await wait_timer(out, lambda a: a["text"] == "1:00:00")

        assert await post(bot, "/subathon/add?s=120") == (202, {"queued": "add", "ms": 120_000})
        await wait_timer(out, lambda a: a["data"]["added_ms"] == 120_000)
        assert (await post(bot, "/subathon/pause", Origin="http://evil.example"))[0] == 403
        assert (await post(bot, "/subathon/add?ms=soon"))[0] == 400
        assert (await post(bot, "/subathon/add?ms=0"))[0] == 400
        assert (await post(bot, "/subathon/pause"))[0] == 202
        paused = await wait_timer(out, lambda a: a["data"]["paused"])
        assert 3_600_000 < paused["data"]["remaining_ms"] <= 3_720_000
        assert await bot.stop() == 0

        bot = Bot(tmp_path, feed.url)
        await bot.start(out="after.jsonl")
        await bot.wait_log("resumed")
        # The overlay of the restarted bot shows the clock at once, paused at the value it had.
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"http://127.0.0.1:{bot.port}/overlay/ws") as ws:
                state = await ws.receive_json(timeout=30)
        assert state["t"] == "state"
        assert state["timer"] == {"t": "timer", "remaining_ms": paused["data"]["remaining_ms"], "paused": True,
                                  "ended": False}
        assert (await post(bot, "/subathon/resume"))[0] == 202
        resumed = await wait_timer(after, lambda a: not a["data"]["paused"])
        assert resumed["data"]["remaining_ms"] == paused["data"]["remaining_ms"]  # not a millisecond lost
        assert await bot.stop() == 0

    live = [a["text"] for a in actions(out) + actions(after) if a["kind"] == "timer"]
    [recording] = sorted((tmp_path / "sessions").glob("*.jsonl"))
    assert b'"subathon_control"' in recording.read_bytes()
    assert await asyncio.to_thread(main, ["replay", str(recording), "--rules", str(tmp_path / "rules"), "--quiet",
                                          "--out", str(tmp_path / "replayed.jsonl")]) == 0
    replayed = [a["text"] for a in actions(tmp_path / "replayed.jsonl") if a["kind"] == "timer"]
    assert replayed == live
    assert live[-2].startswith("paused ") and not live[-1].startswith("paused")


async def test_without_a_timer_in_the_rules_the_endpoint_says_so(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text("rules:\n  - {id: a, on: chat, do: [{say: hi}]}\n")
    async with Feed() as feed:
        bot = Bot(tmp_path, feed.url)
        await bot.start()
        status, body = await post(bot, "/subathon/pause")
        assert status == 409 and "settings: subathon" in body["error"]
        assert await bot.stop() == 0
