"""`livebot run` as a subprocess against a real loopback WebSocket feed: events in, actions out,
the session recorded, and SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import orjson

from livebot_proc import start_livebot, write_run_config
from ws_server import Serve

RULES = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: hello
    on: chat
    do: [{say: "hi {{ user.nickname }}"}]
"""


def line(event: str, i: int, **data) -> str:
    return orjson.dumps({"event": event, "data": {"userId": f"u{i}", "uniqueId": f"v{i}", "nickname": f"V{i}",
                                                  "msgId": f"m{i}", **data}}).decode()


def write_config(tmp: Path, url: str) -> Path:
    return write_run_config(tmp, url, RULES, console=True)


async def test_run_ends_with_the_stream_and_records_it(tmp_path):
    async def handler(ws):
        await ws.send(line("chat", 1, comment="hello"))
        await ws.send(line("gift", 2, giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=3,
                           repeatEnd=True))
        await ws.close(code=4005, reason="stream end")

    async with Serve(handler) as server:
        proc = await start_livebot(write_config(tmp_path, server.url))
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "hi V1" in out.decode() and "thanks V2 for 3x Rose" in out.decode()
    actions = [orjson.loads(x) for x in (tmp_path / "actions.jsonl").read_bytes().splitlines()]
    assert [a["rule"] for a in actions if a["kind"] != "leaderboard"] == ["hello", "thanks"]
    [recording] = (tmp_path / "sessions").iterdir()
    types = [orjson.loads(x)["type"] for x in recording.read_bytes().splitlines()]
    assert types == ["connect", "chat", "gift", "disconnect", "live_end"]


async def test_sigterm_drains_and_exits_0(tmp_path):
    connected = asyncio.Event()

    async def handler(ws):
        for i in range(20):
            await ws.send(line("chat", i, comment=f"c{i}"))
        connected.set()
        await ws.wait_closed()

    async with Serve(handler) as server:
        proc = await start_livebot(write_config(tmp_path, server.url))
        await asyncio.wait_for(connected.wait(), timeout=60)
        # Wait until the bot has written what it was sent, then ask it to stop.
        for _ in range(600):
            path = tmp_path / "actions.jsonl"
            if path.exists() and len(path.read_bytes().splitlines()) == 20:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b'"stopping"' in err and b"SIGTERM" in err
    assert len((tmp_path / "actions.jsonl").read_bytes().splitlines()) == 20
    [recording] = (tmp_path / "sessions").iterdir()
    records = [orjson.loads(x) for x in recording.read_bytes().splitlines()]
    assert [r["type"] for r in records] == ["connect"] + ["chat"] * 20 + ["disconnect"]
    assert records[-1]["data"]["reason"] == "shutdown"


def test_run_refuses_a_config_without_a_source(tmp_path):
    import subprocess

    cfg = tmp_path / "c.yaml"
    cfg.write_text("source:\n  type: websockett\n")
    res = subprocess.run([sys.executable, "-m", "bot", "run", "-c", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 1
    assert f"{cfg}:2:9: 'type' must be one of: websocket, tiktok, webhook (did you mean 'websocket'?)" in res.stderr


async def test_a_report_is_written_when_the_stream_ends(tmp_path):
    async def handler(ws):
        await ws.send(line("gift", 2, giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=3,
                           repeatEnd=True))
        await ws.close(code=4005, reason="stream end")

    async with Serve(handler) as server:
        cfg = write_config(tmp_path, server.url)
        cfg.write_text(cfg.read_text() + "report:\n  folder: reports\n")
        proc = await start_livebot(cfg)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    [recording] = (tmp_path / "sessions").iterdir()
    report = tmp_path / "reports" / (recording.stem + ".html")
    assert b"report_written" in err and report.exists()
    assert "Rose" in report.read_text(encoding="utf-8")


async def test_the_run_actions_are_a_golden_for_a_replay_of_its_recording_and_the_report_has_no_leaderboard_rule(
        tmp_path, capsys):
    """Issue 14, item 13: one behaviour for both paths (the overlay's leaderboard updates too)."""
    from bot.cli import main

    async def handler(ws):
        for i in range(3):
            await ws.send(line("gift", i, giftId=5655, giftName="Rose", diamondCount=1 + i, giftType=1,
                               repeatCount=1, repeatEnd=True))
        await ws.send(line("chat", 9, comment="hello"))
        await ws.close(code=4005, reason="stream end")

    async with Serve(handler) as server:
        proc = await start_livebot(write_config(tmp_path, server.url))
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    actions = tmp_path / "actions.jsonl"
    assert b'"kind":"leaderboard"' in actions.read_bytes()
    [recording] = (tmp_path / "sessions").iterdir()
    capsys.readouterr()
    replay = ["replay", str(recording), "--rules", str(tmp_path / "rules.yaml"), "--quiet", "--check", str(actions)]
    assert await asyncio.to_thread(main, replay) == 0, capsys.readouterr().err
    assert await asyncio.to_thread(main, ["report", str(recording), "--actions", str(actions)]) == 0
    report = capsys.readouterr().out
    assert "thanks" in report and "leaderboard" not in report
