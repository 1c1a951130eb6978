"""A stream end in every format ends ``livebot run`` (exit 0, one recording that ends with its
``live_end``) when ``stop_on_live_end`` is true, and waits for the next live otherwise: no
reconnect storm, no recording of connection events between two streams, nothing ended twice.

Each WebSocket format runs `livebot run` as a subprocess against a real loopback server; the
TikTokLive path runs `livebot run` in this process with the fake client of test_live_tiktok.py.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import pytest

from bot.actions.dispatcher import Dispatcher
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.live import LiveRunner
from bot.sources.recorder import Recorder
from bot.sources.websocket import WebSocketSource
from bot.testing import CaptureSink
from livebot_proc import start_livebot, write_run_config
from ws_server import HANG, ScriptServer

RULES = """
rules:
  - id: hello
    on: chat
    do: [{say: "hi {{ user.nickname }}"}]
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: status
    on: [connect, disconnect, live_end]
    do: [{kind: status, text: "{{ event.type }} {{ event.reason | default('') }}"}]
"""
T0 = 1_763_665_200_000


def tikfinity(event: str, i: int, **data) -> str:
    base = {"userId": f"u{i}", "uniqueId": f"v{i}", "nickname": f"V{i}", "msgId": f"m{i}",
            "createTime": str(T0 + i * 100)}
    return orjson.dumps({"event": event, "data": {**base, **data}}).decode()


def euler(*messages: tuple[str, dict]) -> str:
    return orjson.dumps({"timestamp": T0, "messages": [{"type": t, "data": d} for t, d in messages]}).decode()


def euler_chat(i: int, text: str) -> tuple[str, dict]:
    return ("WebcastChatMessage", {"common": {"msgId": f"e{i}", "createTime": str(T0 + i * 100)},
                                   "user": {"userId": f"u{i}", "uniqueId": f"v{i}", "nickname": f"V{i}"},
                                   "content": text})


def euler_gift(i: int) -> tuple[str, dict]:
    return ("WebcastGiftMessage", {"common": {"msgId": f"e{i}", "createTime": str(T0 + i * 100)},
                                   "user": {"userId": f"u{i}", "uniqueId": f"v{i}", "nickname": f"V{i}"},
                                   "giftId": 5655, "repeatCount": 3, "repeatEnd": 1,
                                   "giftDetails": {"giftName": "Rose", "diamondCount": 1, "giftType": 1}})


def flat_stream(i: int = 1) -> list[str]:
    return [tikfinity("chat", i, comment="hello"),
            tikfinity("gift", i + 1, giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=3,
                      repeatEnd=True)]


# Each format's stream end, as its owner sends it (see the comments); what comes before it is a
# chat and a finished gift streak from V1 and V2 in that format.
CONTROL_COMMON = {"method": "WebcastControlMessage", "msgId": "7447000000000000099", "roomId": "7300000",
                  "createTime": str(T0 + 900)}
FORMATS = {
    # TikFinity's local socket (TikTok-Live-Connector v1 events): streamEnd with the control action,
    # and the socket stays open after it (TikFinity itself goes on running).
    "tikfinity-streamEnd": flat_stream() + [orjson.dumps({"event": "streamEnd", "data": {"action": 3}}).decode(), HANG],
    # ... the same, when the feed's socket is then closed normally.
    "tikfinity-streamEnd-closed": flat_stream() + [orjson.dumps({"event": "streamEnd", "data": {"action": 3}}).decode(),
                                                   1000],
    # TikTok-Live-Connector v1 forwarded as {"event", "data"}: the controlMessage event with action 3
    # (ControlAction STREAM_ENDED).
    "tlc-controlMessage": flat_stream() + [orjson.dumps({"event": "controlMessage", "data": {"action": 3}}).decode(),
                                           HANG],
    # TikTok-Live-Connector 2.x: WebcastControlMessage from tiktok-live-proto v3 as an object (common, int64s
    # as strings, the enum as its number).
    "tlc2-controlMessage": flat_stream() + [orjson.dumps({"event": "controlMessage", "data": {
        "common": CONTROL_COMMON, "action": 3}}).decode(), HANG],
    # Euler Stream: the socket is closed with 4005 (stream ended)...
    "euler-4005": [euler(euler_chat(1, "hello"), euler_gift(2)), 4005],
    # ... or a WebcastControlMessage in a bundle comes first (then the close): schema v2 (with common)...
    "euler-v2-controlMessage": [euler(euler_chat(1, "hello"), euler_gift(2)),
                                euler(("WebcastControlMessage", {"common": CONTROL_COMMON, "action": 3})), HANG],
    # ... and schema v1 (the action alone).
    "euler-v1-controlMessage": [euler(euler_chat(1, "hello"), euler_gift(2)),
                                euler(("WebcastControlMessage", {"action": 3})), HANG],
}


def write_config(tmp: Path, url: str, extra: str = "") -> Path:
    return write_run_config(tmp, url, RULES, extra=extra)


def records(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def actions(tmp: Path) -> list[dict]:
    """The say and status actions written (the overlay's leaderboard updates left out)."""
    path = tmp / "actions.jsonl"
    found = [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []
    return [a for a in found if a["kind"] in ("say", "status")]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_a_stream_end_in_any_format_ends_livebot_run_with_exit_0(tmp_path, fmt):
    async with ScriptServer([FORMATS[fmt]]) as feed:
        proc = await start_livebot(write_config(tmp_path, feed.url))
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert feed.connections == 1  # the stream is over: no reconnect
    said = [a["text"] for a in actions(tmp_path)]
    assert said == ["connect ", "hi V1", "thanks V2 for 3x Rose",
                    "disconnect stream ended" + (" (4005)" if fmt == "euler-4005" else ""), "live_end stream ended"]
    [recording] = (tmp_path / "sessions").iterdir()  # one stream, one file: nothing after its end
    recs = records(recording)
    assert [r["type"] for r in recs] == ["connect", "chat", "gift", "disconnect", "live_end"]
    if fmt != "euler-4005":  # the end the feed sent is the one recorded, payload and all
        assert recs[-1]["raw"] is not None and recs[-1]["data"]["reason"] == "stream ended"


async def test_without_stop_on_live_end_livebot_run_waits_for_the_next_live(tmp_path):
    """Stream 1 ends (TikFinity streamEnd, socket left open); the feed then says "not live" twice
    (Euler's 4404) and stays connected but silent; stream 2 comes and ends; livebot polls on, until
    SIGTERM. Two recordings, one per stream, and nothing else: the polling between and after
    them records nothing, fires nothing and ends nothing twice."""
    end = orjson.dumps({"event": "streamEnd", "data": {"action": 3}}).decode()
    stream2 = [tikfinity("chat", 5, comment="back"), end, HANG]
    async with ScriptServer([flat_stream() + [end, HANG], [4404], [4404], stream2, [HANG]]) as feed:
        cfg = write_config(tmp_path, feed.url, "    stop_on_live_end: false\n    offline_poll: 50ms\n")
        proc = await start_livebot(cfg)
        try:
            for _ in range(1200):  # until stream 2 has ended and livebot is polling again
                if feed.connections >= 5 and sum(a["text"] == "live_end stream ended" for a in actions(tmp_path)) == 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    said = [a["text"] for a in actions(tmp_path)]
    stream = ["disconnect stream ended", "live_end stream ended"]
    assert said == ["connect ", "hi V1", "thanks V2 for 3x Rose", *stream, "connect ", "hi V5", *stream]
    files = sorted((tmp_path / "sessions").iterdir(), key=lambda f: records(f)[0]["recv"])
    assert [[r["type"] for r in records(f)] for f in files] == [
        ["connect", "chat", "gift", "disconnect", "live_end"], ["connect", "chat", "disconnect", "live_end"]]
    assert feed.closed_by_client >= 2  # livebot closed each ended stream's open socket itself


async def test_an_in_band_stream_end_waits_the_offline_poll_and_is_not_a_failure(tmp_path):
    """The source alone: after a streamEnd the next attempt waits ``offline_poll_s`` (not the
    backoff), and a 4005 close after a control message adds no second live_end."""
    delays: list[float] = []
    end = orjson.dumps({"event": "streamEnd", "data": {"action": 3}}).decode()
    control = euler(("WebcastControlMessage", {"common": CONTROL_COMMON, "action": 3}))

    async def sleep(seconds):
        delays.append(seconds)
        await asyncio.sleep(0)

    async with ScriptServer([flat_stream() + [end, HANG], [tikfinity("chat", 7, comment="x"), control, 4005],
                       [HANG]]) as server:
        source = WebSocketSource(server.url, stop_on_live_end=False, offline_poll_s=40, sleep=sleep)
        sink = CaptureSink()
        recorder = Recorder(tmp_path / "rec", room="t")
        runner = LiveRunner([source], Engine(load_rules_text(RULES)), Dispatcher([sink]), recorder=recorder)
        task = asyncio.create_task(runner.run())
        for _ in range(2000):  # until the third connection is up (connected, nothing said)
            if len(delays) >= 2 and server.connections >= 3 and runner.connected.get("websocket"):
                break
            await asyncio.sleep(0.01)
        runner.stop.set()
        await asyncio.wait_for(task, timeout=20)
    assert delays[:2] == [40, 40]
    ends = [a for a in sink.actions if a.text.startswith("live_end")]
    assert len(ends) == 2 and server.connections == 3
    assert [[r["type"] for r in records(f)] for f in recorder.files] == [
        ["connect", "chat", "gift", "disconnect", "live_end"], ["connect", "chat", "disconnect", "live_end"]]


# -- TikTokLive: `livebot run` with the fake client of test_live_tiktok.py ------------------------

def test_tiktoklive_live_end_event_ends_livebot_run_with_exit_0(tmp_path, monkeypatch):
    from test_live_tiktok import ConnectEvent, Factory, GiftEvent, Obj, comment, end

    import bot.daemon
    from bot.cli import main
    from bot.sources.tiktok import TikTokSource

    factory = Factory([ConnectEvent(unique_id="ana", room_id=1), comment(1, "hello", "V1"),
                       GiftEvent(common=Obj(msg_id=2), user=Obj(id=8, nickname="V2"), gift_id=5655, repeat_count=3,
                                 repeat_end=1, gift=Obj(name="Rose", diamond_count=1, type=1)),
                       end()])

    def build_source(cfg):
        return TikTokSource(cfg.source.tiktok.unique_id, client_factory=factory,
                            stop_on_live_end=cfg.source.tiktok.stop_on_live_end, room_id=cfg.room_id)

    monkeypatch.setattr(bot.daemon, "build_source", build_source)
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"rules: {tmp_path / 'rules.yaml'}\nsinks:\n  console: false\n  jsonl: {tmp_path / 'actions.jsonl'}\n"
                   f"source:\n  type: tiktok\n  tiktok:\n    unique_id: ana\n"
                   f"record:\n  folder: {tmp_path / 'sessions'}\nhttp:\n  port: 0\n")
    assert main(["run", "-c", str(cfg)]) == 0
    assert len(factory.clients) == 1
    said = [a["text"] for a in actions(tmp_path)]
    assert said == ["connect ", "hi V1", "thanks V2 for 3x Rose", "disconnect stream ended", "live_end stream ended"]
    [recording] = (tmp_path / "sessions").iterdir()
    assert [r["type"] for r in records(recording)] == ["connect", "chat", "gift", "disconnect", "live_end"]


async def test_tiktoklive_without_stop_on_live_end_waits_for_the_next_live(tmp_path):
    """The TikTokLive source polling after a live end: offline attempts queue nothing, and a
    connection that only says the stream is over (connect, then the end again) is no stream: two
    recordings, one per stream that had viewers, and each end said once."""
    from test_live_tiktok import ConnectEvent, Factory, UserOfflineError, comment, end, fake_sleep

    from bot.sources.tiktok import TikTokSource

    stop = asyncio.Event()
    delays: list[float] = []
    factory = Factory([ConnectEvent(room_id=1), comment(1, "first", "V1"), end(2)], [UserOfflineError("offline")],
                      [ConnectEvent(room_id=1), end(3)], [ConnectEvent(room_id=1), comment(4, "second", "V4"), end(5)],
                      [UserOfflineError("offline")])
    source = TikTokSource("@ana", client_factory=factory, stop_on_live_end=False, offline_poll_s=10,
                          sleep=fake_sleep(delays, stop=stop, stop_after=5))
    sink = CaptureSink()
    recorder = Recorder(tmp_path / "rec", room="t")
    runner = LiveRunner([source], Engine(load_rules_text(RULES)), Dispatcher([sink]), recorder=recorder)
    runner.stop = stop
    await asyncio.wait_for(runner.run(), timeout=20)
    assert delays == [10] * 5 and len(factory.clients) == 5
    assert [a.text for a in sink.actions] == ["connect ", "hi V1", "disconnect stream ended", "live_end stream ended",
                                              "connect ", "hi V4", "disconnect stream ended", "live_end stream ended"]
    assert [[r["type"] for r in records(f)] for f in recorder.files] == [
        ["connect", "chat", "disconnect", "live_end"], ["connect", "chat", "disconnect", "live_end"]]
