"""The webhook source against a real aiohttp client on loopback: every body shape, signing,
limits, partial batches, mounting on another app, and a gift thanked through the live runner."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from aiohttp import web

from bot.actions.dispatcher import Dispatcher
from bot.clock import WallClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.live import LiveRunner
from bot.sources.queue import EventQueue
from bot.sources.webhook import WebhookSource, sign
from bot.testing import CaptureSink

SECRET = "s3cret"
RULES = load_rules_text("""
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
""")


def flat_gift(i: int, name: str = "Rose") -> dict:
    return {"event": "gift", "data": {"userId": f"u{i}", "uniqueId": f"viewer{i}", "nickname": f"V{i}",
                                      "msgId": f"m{i}", "giftId": 5655, "giftName": name, "diamondCount": 1,
                                      "giftType": 2, "repeatCount": 1, "repeatEnd": True}}


NORMALIZED_CHAT = {"type": "chat", "ts": 1_763_665_200_000, "msg_id": "n1",
                   "user": {"user_id": "7", "nickname": "Ana"}, "data": {"text": "hi"}}
EULER = {"timestamp": 1_763_665_200_000, "messages": [
    {"type": "WebcastChatMessage", "data": {"common": {"msgId": "e1"}, "user": {"userId": "9", "nickname": "Ana"},
                                            "content": "from euler"}},
    {"type": "WebcastGiftMessage", "data": {"common": {"msgId": "e2"}, "user": {"userId": "9", "nickname": "Ana"},
                                            "repeatCount": 1, "giftId": 6267,
                                            "giftDetails": {"giftName": "Corgi", "diamondCount": 299, "giftType": 2}}},
]}


class Served:
    """A webhook source running on 127.0.0.1:0, with its queue and a client session."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("port", 0)
        if not kwargs.get("allow_unsigned"):
            kwargs.setdefault("secret", SECRET)
        self.source = WebhookSource(**kwargs)
        self.queue = EventQueue()
        self.stop = asyncio.Event()

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.source.run(self.queue, WallClock(), self.stop))
        await asyncio.wait_for(self.source.listening.wait(), 5)
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        self.stop.set()
        await asyncio.wait_for(self.task, 5)

    async def post(self, body: bytes | object, *, secret: str | None = SECRET, ts: int | None = None,
                   content_type: str = "application/json", **headers: str) -> tuple[int, dict]:
        if not isinstance(body, bytes):
            body = orjson.dumps(body)
        hdrs = {"Content-Type": content_type, **(sign(secret, body, ts) if secret else {}), **headers}
        async with self.http.post(self.source.url, data=body, headers=hdrs) as resp:
            text = await resp.read()
            assert text.count(b"\n") == 1 and text.endswith(b"\n")  # one line of JSON
            return resp.status, orjson.loads(text)

    def events(self) -> list:
        return [ev for ev in self.queue.get_nowait(10_000) if ev.type not in ("connect", "disconnect")]


async def test_a_single_event_is_queued_and_the_server_announces_itself():
    async with Served() as srv:
        assert srv.source.bound_port and srv.source.bound_port != 0
        status, body = await srv.post(flat_gift(1))
        assert (status, body) == (202, {"accepted": 1, "rejected": []})
        [connect, gift] = srv.queue.get_nowait()
        assert connect.type == "connect" and connect.data == {"source": "webhook"}
        assert gift.type == "gift" and gift.data["name"] == "Rose" and gift.received is not None
    [disconnect] = srv.queue.get_nowait()
    assert disconnect.type == "disconnect" and disconnect.data == {"source": "webhook", "reason": "shutdown"}
    assert srv.source.received == 1 and srv.source.malformed == 0


async def test_an_array_batch_of_mixed_formats():
    async with Served() as srv:
        status, body = await srv.post([flat_gift(1), NORMALIZED_CHAT, flat_gift(2, "Lion")])
        assert (status, body) == (202, {"accepted": 3, "rejected": []})
        assert [(e.type, e.msg_id) for e in srv.events()] == [("gift", "m1"), ("chat", "n1"), ("gift", "m2")]


async def test_a_jsonl_batch_with_blank_lines():
    lines = b"\n".join(orjson.dumps(o) for o in (flat_gift(1), NORMALIZED_CHAT)) + b"\n\r\n" + orjson.dumps(EULER)
    async with Served() as srv:
        status, body = await srv.post(lines, content_type="application/x-ndjson")
        assert (status, body) == (202, {"accepted": 4, "rejected": []})
        assert [e.msg_id for e in srv.events()] == ["m1", "n1", "e1", "e2"]
        # JSONL posted as application/json is read as lines too
        status, body = await srv.post(lines)
        assert (status, body["accepted"]) == (202, 4)


async def test_a_jsonl_line_holding_an_array_is_decoded_and_counted_item_by_item():
    lines = orjson.dumps([flat_gift(1), flat_gift(2, "Lion")]) + b"\n" + orjson.dumps(NORMALIZED_CHAT)
    async with Served() as srv:
        status, body = await srv.post(lines, content_type="application/x-ndjson")
        assert (status, body) == (202, {"accepted": 3, "rejected": []})
        assert [e.msg_id for e in srv.events()] == ["m1", "m2", "n1"]
    async with Served(max_events=2) as srv:  # the array's items count against the limit
        status, reply = await srv.post(lines, content_type="application/x-ndjson")
        assert status == 413 and "too many events: 3" in reply["error"]


async def test_an_euler_bundle():
    async with Served() as srv:
        status, body = await srv.post(EULER)
        assert (status, body) == (202, {"accepted": 2, "rejected": []})
        chat, gift = srv.events()
        assert chat.data == {"text": "from euler"} and gift.data["name"] == "Corgi"


@pytest.mark.parametrize("case", ["bad", "missing", "wrong secret", "stale", "future", "no timestamp", "garbage ts"])
async def test_signatures_and_timestamps_are_checked(case):
    body = orjson.dumps(flat_gift(1))
    now = int(time.time())
    headers = {"bad": {"X-Livebot-Signature": "sha256=" + "0" * 64},
               "missing": {},
               "wrong secret": sign("other", body, now),
               "stale": sign(SECRET, body, now - 301),
               "future": sign(SECRET, body, now + 301),
               "no timestamp": {"X-Livebot-Timestamp": ""},
               "garbage ts": {"X-Livebot-Timestamp": "yesterday"}}[case]
    expected = {"bad": "bad signature", "missing": "missing signature", "wrong secret": "bad signature",
                "stale": "stale timestamp", "future": "stale timestamp", "no timestamp": "missing timestamp",
                "garbage ts": "bad timestamp"}[case]
    async with Served() as srv:
        status, reply = await srv.post(body, secret=None if case == "missing" else SECRET, **headers)
        assert status == 401 and reply["error"].startswith(expected)
        assert srv.events() == [] and srv.source.refused == 1


async def test_a_signature_over_a_different_body_is_refused():
    async with Served() as srv:
        headers = sign(SECRET, orjson.dumps(flat_gift(1)))
        status, reply = await srv.post(flat_gift(2), secret=None, **headers)
        assert (status, reply) == (401, {"error": "bad signature"}) and srv.events() == []


async def test_oversize_bodies_and_too_many_events_are_413():
    async with Served(max_body=1000, max_events=3) as srv:
        status, reply = await srv.post(b'{"pad": "' + b"x" * 2000 + b'"}')
        assert status == 413 and "1000 bytes" in reply["error"]
        status, reply = await srv.post([flat_gift(i) for i in range(4)])
        assert status == 413 and "too many events: 4" in reply["error"]
        status, reply = await srv.post([flat_gift(1), flat_gift(2), EULER])  # a bundle counts its messages
        assert status == 413 and "too many events: 4" in reply["error"]
        assert srv.events() == []


async def test_not_json_and_not_an_event_are_400():
    async with Served() as srv:
        status, reply = await srv.post(b"this is not json")
        assert status == 400 and reply["error"].startswith("not JSON")
        status, reply = await srv.post(b"42")
        assert status == 400 and "got int" in reply["error"]
        status, reply = await srv.post({"hello": "world"})
        assert status == 400 and reply["error"].startswith("event: unknown format")
        status, reply = await srv.post(b"{}\nnope\n", content_type="application/x-ndjson")
        assert status == 400 and reply["error"].startswith("line 1: unknown format")
        assert [r["line"] for r in reply["rejected"]] == [1, 2]
        assert srv.events() == [] and srv.source.malformed == 5


async def test_a_partial_batch_keeps_the_good_items():
    bad_gift = {"event": "gift", "data": {"userId": "u", "diamondCount": "lots"}}
    async with Served() as srv:
        status, reply = await srv.post([flat_gift(1), "x", bad_gift, flat_gift(2)])
        assert status == 202 and reply["accepted"] == 2
        assert [r["index"] for r in reply["rejected"]] == [1, 2]
        assert "diamondCount" in reply["rejected"][1]["error"]
        assert [e.msg_id for e in srv.events()] == ["m1", "m2"]
        lines = orjson.dumps(flat_gift(3)) + b"\n\n{oops\n" + orjson.dumps(flat_gift(4))
        status, reply = await srv.post(lines, content_type="application/x-ndjson")
        assert status == 202 and reply["accepted"] == 2
        assert reply["rejected"][0]["index"] == 2 and reply["rejected"][0]["line"] == 3
        assert reply["rejected"][0]["error"].startswith("not JSON")
        assert srv.source.malformed == 3 and srv.source.received == 4


async def test_method_and_content_type():
    async with Served() as srv:
        async with srv.http.get(srv.source.url) as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "POST"
            assert (await resp.json())["error"].startswith("method GET not allowed")
        status, reply = await srv.post(b"a=1", content_type="application/x-www-form-urlencoded")
        assert status == 415 and "application/x-www-form-urlencoded" in reply["error"]


async def test_unsigned_is_refused_unless_allowed():
    with pytest.raises(ValueError, match="needs a secret"):
        WebhookSource()
    with pytest.raises(ValueError, match="needs a secret"):
        WebhookSource("")
    async with Served(allow_unsigned=True) as srv:
        status, reply = await srv.post(flat_gift(1), secret=None)
        assert (status, reply["accepted"]) == (202, 1)


async def test_mounted_on_an_existing_app():
    source = WebhookSource(SECRET, path="/hook")
    queue, clock = EventQueue(), WallClock()
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/metrics", metrics)
    source.add_routes(app, queue, clock)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        body = orjson.dumps(flat_gift(1))
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/hook", data=body, headers=sign(SECRET, body)) as resp:
                assert resp.status == 202
            async with http.get(base + "/metrics") as resp:
                assert await resp.text() == "ok"
    finally:
        await runner.cleanup()
    assert [e.type for e in queue.get_nowait()] == ["connect", "gift", "disconnect"]


async def test_a_posted_gift_is_thanked_through_the_live_runner():
    source = WebhookSource(SECRET, port=0)
    sink = CaptureSink()
    runner = LiveRunner([source], Engine(RULES), Dispatcher([sink]))
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(source.listening.wait(), 5)
        body = orjson.dumps([flat_gift(1, "Lion"), flat_gift(2)])
        async with aiohttp.ClientSession() as http:
            async with http.post(source.url, data=body, headers=sign(SECRET, body)) as resp:
                assert resp.status == 202
        for _ in range(1000):
            if len(sink.actions) >= 2:
                break
            await asyncio.sleep(0.002)
    finally:
        runner.stop.set()
        result = await asyncio.wait_for(task, 5)
    assert [a.text for a in sink.actions] == ["thanks V1 for 1x Lion", "thanks V2 for 1x Rose"]
    assert result.events["connect"] == 1 and result.events["gift"] == 2
    assert result.events["disconnect"] == 2  # ours, then the runner's end-of-session marker
