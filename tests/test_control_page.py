"""The control page's server side: the daemon (run_daemon) on loopback with a real HTTP client —
test events through the real path, mute enforced before the sinks, paused rules, settings kept
across a restart, the guard (token, cross-site POSTs, content type), bad input, /status as JSON,
/metrics' suppression counts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp
import orjson
import pytest

from bot.config import Config
from bot.control.guard import Guard, check_bind, is_loopback
from bot.daemon import run_daemon
from bot.engine.loader import load_rules_text
from bot.events.model import CONNECT, Event
from bot.sinks.chat import ChatSink
from bot.sinks.jsonl import JsonlSink
from bot.sources.queue import stamp

RULES = """rules:
  - id: thank-gift
    on: gift
    do:
      - say: "Thank you {{ user.nickname }} for {{ event.count }}x {{ event.name }}!"
      - tts: "{{ user.nickname }} sent {{ event.name }}"
  - id: welcome
    on: chat
    do:
      - say: "Hi {{ user.nickname }}"
  - id: big
    on: gift
    when: event.total_diamonds >= 1000
    do:
      - alert: "big gift"
"""


class IdleSource:
    """A live source that connects and then waits: events come from the control page."""

    name = "idle"

    async def run(self, queue, clock, stop) -> None:
        stamp(queue, clock, Event(CONNECT, clock.now(), data={"source": self.name}))
        await stop.wait()


class Sent:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, text: str) -> None:
        self.lines.append(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(check, timeout: float = 30.0) -> None:  # (a generous bound: a busy machine is slow, never wrong)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await _true(check):
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _true(check) -> bool:
    value = check()
    if asyncio.iscoroutine(value):
        value = await value
    return bool(value)


class Bot:
    """run_daemon in this process, with a chat sink whose sends are recorded."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sent = Sent()
        self.task: asyncio.Task | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def config(self) -> Config:
        cfg = Config()
        cfg.http_port = self.port
        cfg.console = False
        cfg.overlay_enabled = False
        cfg.record = self.tmp / "rec"
        cfg.state_db = self.tmp / "state.db"
        cfg.reload_watch = False
        return cfg

    async def start(self) -> None:
        sinks = [JsonlSink(self.tmp / "actions.jsonl", append=True), ChatSink(self.sent, max_per_minute=1000)]
        self.task = asyncio.create_task(run_daemon(self.config(), load_rules_text(RULES), source=IdleSource(),
                                                   sinks=sinks))
        async with aiohttp.ClientSession() as s:
            async def up() -> bool:
                try:
                    async with s.get(self.url + "/healthz") as r:
                        return r.status == 200 and (await r.json())["sources"].get("idle") == "connected"
                except aiohttp.ClientError:
                    assert not self.task.done(), self.task.exception()
                    return False
            await until(up)

    async def stop(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(self.task, 30)

    def actions(self) -> list[dict]:
        path = self.tmp / "actions.jsonl"
        return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


@pytest.fixture
async def bot(tmp_path):
    b = Bot(tmp_path)
    await b.start()
    try:
        yield b
    finally:
        if b.task is not None and not b.task.done():
            await b.stop()


async def post(session, url, body, **kw):
    async with session.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json", **kw}) as r:
        return r.status, await r.json()


async def test_a_test_gift_goes_the_real_path_marked_and_counts_for_nothing(bot):
    async with aiohttp.ClientSession() as s:
        status, out = await post(s, bot.url + "/api/test", {"type": "gift", "user": "cleo", "gift": "Lion",
                                                           "diamonds": 2, "count": 3})
        assert status == 200, out
        await until(lambda: bot.sent.lines)
        assert bot.sent.lines == ["Thank you cleo for 3x Lion!"]
        await until(lambda: len(bot.actions()) == 2)
        assert all(a["data"]["test"] is True for a in bot.actions())
        async with s.get(bot.url + "/status?format=json") as r:
            st = await r.json()
        assert st["diamonds"] == 0 and st["top_gifters"] == []
        async with s.get(bot.url + "/api/state") as r:
            state = await r.json()
        gift = next(e for e in state["events"] if e.get("event", {}).get("type") == "gift")
        async with s.get(bot.url + f"/api/trace?kind=event&id={gift['id']}") as r:
            trace = await r.json()
        rows = {row["rule"]: row for row in trace["rules"]}
        assert rows["thank-gift"]["outcome"] == "fired"
        assert rows["big"]["text"] == "`when` false: event.total_diamonds=6"
        async with s.get(bot.url + "/metrics") as r:
            metrics = await r.text()
        assert 'livebot_rule_suppressed_total{reason="when",rule="big"} 1.0' in metrics
    await bot.stop()
    recorded = [orjson.loads(x) for f in (bot.tmp / "rec").glob("*.jsonl") for x in f.read_bytes().splitlines()]
    gifts = [r for r in recorded if r["type"] == "gift"]
    assert gifts and all(r["data"]["test"] is True for r in gifts)


async def test_mute_stops_the_chat_sink_and_is_kept_across_a_restart(tmp_path):
    bot = Bot(tmp_path)
    await bot.start()
    async with aiohttp.ClientSession() as s:
        assert (await post(s, bot.url + "/api/mute", {"what": "chat", "on": True}))[0] == 200
        assert (await post(s, bot.url + "/api/pause", {"rule": "big", "paused": True}))[0] == 200
        await post(s, bot.url + "/api/test", {"type": "chat", "user": "ana", "text": "hello"})
        await until(lambda: any(a["rule"] == "welcome" for a in bot.actions()))  # the log still has it
        assert bot.sent.lines == []
    await bot.stop()
    bot2 = Bot(tmp_path)
    bot2.sent = bot.sent
    await bot2.start()
    async with aiohttp.ClientSession() as s:
        async with s.get(bot2.url + "/status?format=json") as r:
            st = await r.json()
        assert st["control"] == {"mute": {"chat": True, "tts": False}, "paused": ["big"]}
        await post(s, bot2.url + "/api/test", {"type": "chat", "user": "bob", "text": "hi"})
        await until(lambda: sum(a["rule"] == "welcome" for a in bot2.actions()) == 2)
        assert bot.sent.lines == []
        assert (await post(s, bot2.url + "/api/mute", {"what": "chat", "on": False}))[0] == 200
        await post(s, bot2.url + "/api/test", {"type": "chat", "user": "cy", "text": "yo"})
        await until(lambda: bot.sent.lines == ["Hi cy"])
    await bot2.stop()


async def test_bad_input_and_forged_requests_are_refused(bot):
    async with aiohttp.ClientSession() as s:
        assert await post(s, bot.url + "/api/test", {"type": "gift", "diamonds": "lots"}) == (
            400, {"error": "'diamonds' must be a whole number"})
        assert (await post(s, bot.url + "/api/test", {"type": "nope"}))[0] == 400
        for odd in ("²", "٣", "1e3", "9" * 40):  # digits to str.isdigit, not to int(): a 400, never a 500
            assert await post(s, bot.url + "/api/test", {"type": "gift", "count": odd}) == (
                400, {"error": "'count' must be a whole number"}), odd
        assert await post(s, bot.url + "/api/pause", {"rule": "ghost", "paused": True}) == (
            400, {"error": "no rule 'ghost'"})
        assert (await post(s, bot.url + "/api/poll", {"action": "close"}))[1] == {"error": "no poll is open"}
        # a cross-site form: a simple content type, or another origin
        async with s.post(bot.url + "/api/mute", data="what=all&on=true",
                          headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 415
        status, _ = await post(s, bot.url + "/api/mute", {"what": "all", "on": True}, Origin="http://evil.example")
        assert status == 403
        async with s.get(bot.url + "/status?format=json") as r:
            assert (await r.json())["control"]["mute"] == {"chat": False, "tts": False}
        assert (await post(s, bot.url + "/api/poll", {"action": "open", "question": "Pizza?", "options": ["yes"]}
                           ))[1] == {"error": "'options' must be 2 to 9 answers (text, at most 60 characters each)"}
        assert (await post(s, bot.url + "/api/poll", {"action": "open", "question": "Pizza?", "options": ["a", "b"],
                                                      "duration": "2h"}))[1] == {"error": "'duration' must be from 5s to 1h"}
        status, out = await post(s, bot.url + "/api/poll", {"action": "open", "question": "Pizza?",
                                                           "options": ["yes", "no"], "duration": "30s"})
        assert status == 200 and out["queued"] == "open"
        await until(lambda: any(a["kind"] == "poll" for a in bot.actions()))
        assert (await post(s, bot.url + "/api/poll", {"action": "close"}))[0] == 200


async def test_a_poll_opened_and_closed_from_the_page_is_recorded_and_replays_the_same(bot, tmp_path):
    from bot.cli import main

    async with aiohttp.ClientSession() as s:
        status, out = await post(s, bot.url + "/api/poll", {"action": "open", "question": "<b>Pizza</b>?",
                                                           "options": ["yes", "no"], "duration": "10m"})
        assert status == 200, out
        await until(lambda: any(a["kind"] == "poll" for a in bot.actions()))
        for user, vote in (("ann", "1"), ("bob", "2"), ("cy", "1")):
            assert (await post(s, bot.url + "/api/test", {"type": "chat", "user": user, "text": vote}))[0] == 200
        await until(lambda: len(bot.sent.lines) == 3)  # the welcome rule answered all three: they are in
        assert (await post(s, bot.url + "/api/poll", {"action": "close"}))[0] == 200
        await until(lambda: any(a["kind"] == "poll_result" for a in bot.actions()))
    await bot.stop()

    def polls(actions):
        # (a bare replay adds the overlay's poll_update lines, which this live bot had off)
        return [(a["kind"], a["rule"], a["text"], a["data"]) for a in actions if a["kind"] in ("poll", "poll_result")]

    live = polls(bot.actions())
    assert [k for k, *_ in live] == ["poll", "poll_result"]
    assert live[1][3]["votes"] == {"yes": 2, "no": 1} and live[1][3]["winner"] == "yes"
    [recording] = sorted((tmp_path / "rec").glob("**/*.jsonl"))
    assert b'"poll_control"' in recording.read_bytes()
    (tmp_path / "rules.yaml").write_text(RULES)
    replayed = tmp_path / "replayed.jsonl"
    assert await asyncio.to_thread(main, ["replay", str(recording), "--rules", str(tmp_path / "rules.yaml"),
                                          "--quiet", "--out", str(replayed)]) == 0
    assert polls(orjson.loads(x) for x in replayed.read_bytes().splitlines()) == live


def test_the_guard_needs_a_token_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert check_bind("0.0.0.0", None) is not None and check_bind("0.0.0.0", "s3cret") is None
    assert check_bind("127.0.0.1", None) is None
    assert Guard("0.0.0.0", "s3cret").required and not Guard("127.0.0.1", None).required


class Served:
    """A ControlServer over an idle runner, started on a free port (``async with``)."""

    def __init__(self, host: str, token: str | None = None, page: bool = False) -> None:
        from bot.actions.dispatcher import LiveDispatcher
        from bot.control.page import Control
        from bot.control.server import ControlServer
        from bot.engine.core import Engine
        from bot.engine.trace import Tracer
        from bot.live import LiveRunner

        self.runner = LiveRunner([IdleSource()], Engine(load_rules_text(RULES)), LiveDispatcher([]))
        self.control = Control(self.runner, Tracer()) if page else None
        self.server = ControlServer(self.runner, host=host, port=0, token=token, control=self.control)

    async def __aenter__(self) -> Served:
        self.port = await self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.stop()


async def test_off_loopback_every_request_but_healthz_needs_the_token():
    async with Served("0.0.0.0", "s3cret") as srv, aiohttp.ClientSession() as s:
        for path in ("/status", "/metrics", "/"):
            async with s.get(srv.url + path) as r:
                assert r.status == 401
        async with s.get(srv.url + "/healthz") as r:
            assert r.status == 200
        async with s.get(srv.url + "/status", headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200
        async with s.get(srv.url + "/status", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401


async def test_on_loopback_a_page_rebound_to_127_0_0_1_is_refused_by_its_host():
    """DNS rebinding: evil.example re-pointed at 127.0.0.1 is same-origin with itself (its Origin and
    Host agree) and loopback needs no token; only its Host tells it apart."""
    async with Served("127.0.0.1", page=True) as srv, aiohttp.ClientSession() as s:
        port = srv.port
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        for path in ("/", "/api/state", "/status"):
            async with s.get(srv.url + path, headers={"Host": f"evil.example:{port}"}) as r:
                assert r.status == 403, path
        assert (await post(s, srv.url + "/api/mute", {"what": "all", "on": True}, **evil))[0] == 403
        assert srv.control.mute == {"chat": False, "tts": False}
        async with s.post(srv.url + "/subathon/pause", headers=evil) as r:
            assert r.status == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            async with s.get(srv.url + "/api/state", headers={"Host": host}) as r:
                assert r.status == 200, host
        async with s.get(srv.url + "/healthz", headers={"Host": "evil.example"}) as r:
            assert r.status == 200  # health probes may name the host as they like: it says nothing


async def test_off_loopback_the_cookie_is_set_only_for_the_right_token():
    async with Served("0.0.0.0", "s3cret") as srv, aiohttp.ClientSession() as s:
        async with s.get(srv.url + "/status?token=wrong", headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200 and "livebot_token" not in r.cookies
        async with s.get(srv.url + "/status?token=s3cret") as r:
            assert r.status == 200
            morsel = r.cookies["livebot_token"]
            assert morsel.value == "s3cret" and morsel["httponly"] and morsel["samesite"] == "Strict"


async def test_what_the_policy_guard_suppressed_shows_on_the_page_without_the_viewers_words(bot):
    async with aiohttp.ClientSession() as s:
        status, out = await post(s, bot.url + "/api/test", {"type": "chat", "user": "bit.ly/free", "text": "hello"})
        assert status == 200, out

        async def suppressed() -> bool:
            async with s.get(bot.url + "/api/state") as r:
                return bool((await r.json())["state"]["policy"]["recent"])
        await until(suppressed)
        async with s.get(bot.url + "/api/state") as r:
            policy = (await r.json())["state"]["policy"]
        assert policy["suppressed"].get("link", 0) >= 1
        assert policy["recent"][0]["rule"] == "welcome" and "link in user.nickname" in policy["recent"][0]["found"]
        assert "bit.ly" not in orjson.dumps(policy).decode()
    assert "Hi bit.ly/free" not in bot.sent.lines
