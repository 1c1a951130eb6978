"""The WebSocket source against a real `websockets` server on loopback: both wire formats,
every Euler close code, a drop mid-stream with a backlog, and recording for replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from bot.actions.dispatcher import Dispatcher
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.live import LiveRunner
from bot.runner import replay
from bot.sources.backoff import Backoff
from bot.sources.recorder import Recorder
from bot.sources.replay import ReplaySource
from bot.sources.websocket import WebSocketSource
from bot.testing import CaptureSink
from ws_server import ScriptServer

RULES = load_rules_text("""
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: echo
    on: chat
    do: [{say: "{{ user.nickname }}: {{ event.text }}"}]
  - id: status
    on: [connect, disconnect, live_end]
    do: [{kind: status, text: "{{ event.type }} {{ event.reason | default('') }}"}]
""")


def flat(event: str, i: int, **data) -> str:
    base = {"userId": f"u{i % 7}", "uniqueId": f"viewer{i % 7}", "nickname": f"V{i % 7}", "msgId": f"m{i}",
            "createTime": str(1_763_665_200_000 + i * 100)}
    return orjson.dumps({"event": event, "data": {**base, **data}}).decode()


def fake_sleep(delays):
    async def sleep(seconds):
        delays.append(seconds)
        await asyncio.sleep(0)
    return sleep


async def run(source, recorder=None):
    sink = CaptureSink()
    engine = Engine(RULES)
    runner = LiveRunner([source], engine, Dispatcher([sink]), recorder=recorder)
    result = await asyncio.wait_for(runner.run(), timeout=20)
    return sink.actions, engine, result


async def test_tikfinity_flat_lines_round_trip():
    script = [flat("chat", 1, comment="hello"),
              flat("gift", 2, giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=1, repeatEnd=False),
              flat("gift", 9, giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=5, repeatEnd=True),
              "not json at all", 4005]
    async with ScriptServer([script]) as server:
        source = WebSocketSource(server.url, sleep=fake_sleep([]))
        actions, engine, result = await run(source)
    says = [a.text for a in actions if a.kind == "say"]
    assert says == ["V1: hello", "thanks V2 for 5x Rose"]
    statuses = [a.text for a in actions if a.kind == "status"]
    assert statuses == ["connect ", "disconnect stream ended (4005)", "live_end stream ended"]  # (then no stream)
    assert source.malformed == 1 and server.connections == 1


async def test_euler_bundles_round_trip():
    bundle = orjson.dumps({"timestamp": 1_763_665_200_000, "messages": [
        {"type": "WebcastChatMessage", "data": {"common": {"msgId": "e1", "createTime": "1763665200000"},
                                                "user": {"userId": "9", "uniqueId": "ana", "nickname": "Ana"},
                                                "content": "from euler"}},
        {"type": "WebcastGiftMessage", "data": {"common": {"msgId": "e2"}, "user": {"userId": "9", "nickname": "Ana"},
                                                "repeatCount": 1, "giftId": 6267,
                                                "giftDetails": {"giftName": "Corgi", "diamondCount": 299,
                                                                "giftType": 2}}},
    ]}).decode()
    async with ScriptServer([[bundle, 4005]]) as server:
        actions, _, _ = await run(WebSocketSource(server.url, sleep=fake_sleep([])))
    assert [a.text for a in actions if a.kind == "say"] == ["Ana: from euler", "thanks Ana for 1x Corgi"]


PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "payloads"


async def test_tlc2_objects_and_arrays_of_them_in_one_frame():
    """TikTok-Live-Connector 2.x objects (the corpus fixtures), one per frame and as a JSON array in
    one frame: the same actions either way; the gift is read from its nested ``gift`` (a streak frame
    is not thanked, its end is, once)."""
    fixtures = {fx["id"]: fx["payload"] for fx in orjson.loads((PAYLOADS / "tlc2-events.json").read_bytes())
                ["fixtures"]}
    frames = [fixtures[i] for i in ("m01", "m02", "m03")]
    one_by_one = [orjson.dumps(f).decode() for f in frames] + [4005]
    batched = [orjson.dumps(frames).decode(), 4005]
    says = []
    for script in (one_by_one, batched):
        async with ScriptServer([script]) as server:
            source = WebSocketSource(server.url, sleep=fake_sleep([]))
            actions, _, _ = await run(source)
        says.append([a.text for a in actions if a.kind == "say"])
        assert source.malformed == 0
    assert says[0] == says[1] == ["Ana 🌸: hello 🌸", "thanks Ana 🌸 for 5x Rose"]


async def test_every_close_code_is_handled():
    delays: list[float] = []
    scripts = [[4404], [4429], [4006], [4555], ["drop"], [1011], [4005]]
    async with ScriptServer(scripts) as server:
        source = WebSocketSource(server.url, offline_poll_s=30, too_many_wait_s=60, sleep=fake_sleep(delays),
                                 backoff=Backoff(base=1, cap=8))
        actions, _, _ = await run(source)
    reasons = [a.text for a in actions if a.kind == "status" and a.text.startswith("disconnect")]
    assert reasons[:3] == ["disconnect not live (4404)", "disconnect too many connections (4429)",
                           "disconnect no messages (4006)"]
    assert reasons[3] == "disconnect connection lifetime reached (4555)"
    assert reasons[4].startswith("disconnect connection dropped") and "(1011)" in reasons[5]
    assert reasons[6] == "disconnect stream ended (4005)"
    # 4404: the offline poll; 4429: at least a minute; 4006, the drop and 1011: growing backoff;
    # 4555: no wait at all; 4005: stop.
    assert delays[0] == 30 and delays[1] >= 60
    assert all(0.5 <= d <= 8 for d in delays[2:]) and len(delays) == 5
    assert server.connections == 7


async def test_a_stream_end_does_not_stop_when_told_to_keep_polling():
    delays: list[float] = []
    async with ScriptServer([[4005], [flat("chat", 1, comment="back again"), 4005]]) as server:
        source = WebSocketSource(server.url, stop_on_live_end=False, offline_poll_s=5, sleep=fake_sleep(delays))
        runner = LiveRunner([source], Engine(RULES), Dispatcher([CaptureSink()]))
        runner_task = asyncio.create_task(runner.run())
        for _ in range(1000):
            await asyncio.sleep(0.01)
            if server.connections >= 2 and len(delays) >= 2:
                break
        runner.stop.set()  # stop polling; the runner drains and ends (never left hanging)
        await asyncio.wait_for(runner_task, timeout=20)
        assert delays[:2] == [5, 5]


async def test_reconnect_after_a_drop_loses_nothing_and_thanks_nothing_twice(tmp_path):
    lines = [flat("gift", i, giftId=11046, giftName="Galaxy", diamondCount=1000, giftType=2, repeatCount=1,
                  repeatEnd=False) for i in range(100)]
    first = lines[:50] + ["drop"]
    second = lines[35:] + [4005]  # the reconnect replays a backlog of 15 events
    recorder = Recorder(tmp_path / "sessions", room="test")
    async with ScriptServer([first, second]) as server:
        actions, engine, result = await run(WebSocketSource(server.url, sleep=fake_sleep([])), recorder)
    thanked = [a.event_id for a in actions if a.rule == "thanks"]
    assert thanked == [f"m{i}" for i in range(100)]
    assert engine.counters["duplicates"] == 15 and server.connections == 2
    # The recording replays to exactly the actions the live run fired. The stream's file closed
    # with its live_end; nothing came after it, so no shutdown marker (and no file of its own).
    [path] = recorder.files
    sink = CaptureSink()
    await replay(ReplaySource(path), Engine(RULES), Dispatcher([sink]))
    assert actions[-1].text == "live_end stream ended"
    assert [a.to_dict() for a in sink.actions] == [a.to_dict() for a in actions]
