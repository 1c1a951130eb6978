"""The overlay without a browser: page state from actions, speech limits, the server on loopback
(state on connect, mounting on a shared app, slow pages dropped), and live poll counts."""

from __future__ import annotations

import asyncio
import inspect

import aiohttp
import orjson
import pytest
from aiohttp import web

from bot.actions.model import Action
from bot.engine.core import Engine
from bot.engine.polls import Poll
from bot.engine.templates import Text
from bot.sinks.overlay import OverlayServer, OverlaySink, OverlayState, TtsLimiter
from bot.sinks.overlay.views import alert_tier


def act(kind: str, text: str = "", user: str | None = None, ts: int = 0, **data) -> Action:
    return Action(ts, kind, text, "test", user, None, data)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# -- what the page is told ------------------------------------------------------------------------

def test_alert_tiers_come_from_the_rule_or_the_diamonds():
    assert alert_tier(act("alert", tier="legendary")) == "legendary"
    assert alert_tier(act("alert", diamonds="1,500")) == "legendary"  # rendered data is text
    assert alert_tier(act("alert", total_diamonds=299)) == "big"
    assert alert_tier(act("alert", diamonds=5)) == ""
    assert alert_tier(act("alert", tier="x y<b>")) == ""  # not a plain name: no class from it
    assert alert_tier(act("alert")) == ""


def test_each_kind_becomes_one_page_message_and_chat_lines_none():
    state = OverlayState(kinds={"confetti"})
    assert state.apply(act("say", "hi")) is None
    assert state.apply(act("quiz", "?")) is None
    assert state.apply(act("alert", "Ana followed!", "ana")) == {
        "t": "alert", "kind": "alert", "text": "Ana followed!", "tier": "", "user": "ana"}
    assert state.apply(act("shoutout", "hi Bo", "bo"))["kind"] == "shoutout"  # type: ignore[index]
    assert state.apply(act("confetti", "🎉"))["t"] == "alert"  # type: ignore[index]
    assert state.apply(act("tts", "hello", "ana")) == {"t": "tts", "text": "hello", "user": "ana"}


def test_the_poll_opens_counts_and_closes_and_a_late_page_sees_it():
    clock = Clock()
    state = OverlayState(clock=clock)
    opened = state.apply(act("poll", "Next?", options=["A", "B"], duration_ms=60_000, ends=123))
    assert opened == {"t": "poll", "question": "Next?", "options": [{"name": "A", "votes": 0},
                                                                      {"name": "B", "votes": 0}],
                      "total": 0, "remaining_ms": 60_000}
    clock.t += 20
    update = state.apply(act("poll_update", "A 1 · B 3 (4 votes)", question="Next?", votes={"A": 1, "B": 3}, total=4))
    assert update["options"] == [{"name": "A", "votes": 1}, {"name": "B", "votes": 3}]  # type: ignore[index]
    assert update["total"] == 4 and update["remaining_ms"] == 40_000  # type: ignore[index]
    assert state.snapshot()["poll"] == update
    result = state.apply(act("poll_result", "B wins", question="Next?", votes={"A": 1, "B": 3}, total=4,
                             winner="B", winners=["B"], tie=False))
    assert result == {"t": "poll_result", "question": "Next?", "options": update["options"],  # type: ignore[index]
                      "total": 4, "text": "B wins", "ms": 15_000, "winners": ["B"]}
    assert state.snapshot()["poll"] is None


def test_counts_for_a_poll_opened_before_the_overlay_started_still_show():
    state = OverlayState()
    msg = state.apply(act("poll_update", "", question="Q", votes={"A": 2}, total=2))
    assert msg == {"t": "poll", "question": "Q", "options": [{"name": "A", "votes": 2}], "total": 2,
                   "remaining_ms": None}
    assert state.apply(act("poll_update", "", votes="nonsense")) is None


def test_the_board_is_cut_to_size_and_cleaned():
    state = OverlayState(board_size=2)
    msg = state.apply(act("leaderboard", "", top=[
        {"rank": 1, "unique_id": "a", "nickname": "Ana", "diamonds": 500},
        {"rank": "<b>", "nickname": "Bo", "diamonds": "1,200"},
        {"rank": 3, "nickname": "Cy", "diamonds": 1}]))
    assert msg == {"t": "board", "top": [{"rank": 1, "nickname": "Ana", "diamonds": 500},
                                         {"rank": 2, "nickname": "Bo", "diamonds": 1200}]}
    assert state.snapshot()["board"] == msg
    assert state.apply(act("leaderboard", "", top="x")) is None


def test_the_banner_stays_for_its_time_or_until_the_next():
    clock = Clock()
    state = OverlayState(banner_ms=30_000, clock=clock)
    assert state.snapshot()["banner"] is None
    assert state.apply(act("cta", "Follow!")) == {"t": "banner", "text": "Follow!", "ms": 30_000}
    clock.t += 10
    assert state.snapshot()["banner"] == {"t": "banner", "text": "Follow!", "ms": 20_000}
    clock.t += 25
    assert state.snapshot()["banner"] is None
    forever = OverlayState(banner_ms=0, clock=clock)
    forever.apply(act("cta", "Share!"))
    clock.t += 3600
    assert forever.snapshot()["banner"] == {"t": "banner", "text": "Share!", "ms": 0}


# -- speech limits --------------------------------------------------------------------------------

def test_tts_limits_each_viewer_and_everyone_and_counts_what_it_drops():
    tts = TtsLimiter(per_minute=3, user_gap_ms=30_000)
    assert tts.allow("ana", 0)
    assert not tts.allow("ana", 29_999)  # her own gap
    assert tts.allow("bob", 1000) and tts.allow(None, 2000)
    assert not tts.allow("cy", 3000)  # three in the last minute already
    assert tts.allow("ana", 60_000)  # the first one has left the window
    assert tts.counters == {"allowed": 4, "dropped_user": 1, "dropped_global": 1}
    unlimited = TtsLimiter(per_minute=0, user_gap_ms=0)
    assert all(unlimited.allow("ana", t) for t in range(100))


async def test_the_sink_shortens_long_speech_and_drops_empty_or_over_limit_lines():
    server = OverlayServer(port=0)
    sink = OverlaySink(server, tts_max_chars=10, tts_per_minute=2)
    with pytest.raises(TypeError):
        OverlaySink(server, port=1)
    seen: list[Action] = []
    server.show = lambda actions: seen.extend(actions) or len(actions)  # type: ignore[method-assign]
    await sink.send([act("tts", "0123456789abc", "a", ts=0), act("tts", "  ", "b"), act("tts", "ok", "c", ts=1),
                     act("tts", "late", "d", ts=2), act("alert", "hi")])
    assert [a.text for a in seen] == ["012345678…", "ok", "hi"]
    assert sink.stats() == {"shown": 3, "tts_empty": 1, "tts_allowed": 2, "tts_dropped_global": 1}
    assert sink.pacing.paces(act("alert")) and not sink.pacing.paces(act("poll"))


# -- the server -----------------------------------------------------------------------------------

async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def test_a_page_gets_the_state_on_connect_then_each_batch():
    sink = OverlaySink(port=0)
    await sink.start()
    try:
        await sink.send([act("leaderboard", "", top=[{"rank": 1, "nickname": "Ana", "diamonds": 5}]),
                         act("cta", "Follow!")])
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(sink.url + "ws") as ws:
                state = await recv(ws)
                assert state["t"] == "state" and state["poll"] is None
                assert state["board"]["top"] == [{"rank": 1, "nickname": "Ana", "diamonds": 5}]
                assert state["banner"]["text"] == "Follow!"
                await sink.send([act("say", "not for the page"), act("alert", "Bo followed!", "bo"),
                                 act("tts", "hello", "bo")])
                batch = await recv(ws)
                assert batch["t"] == "batch" and [m["t"] for m in batch["items"]] == ["alert", "tts"]
    finally:
        await sink.close()
    assert sink.stats()["connections"] == 1


async def test_the_page_and_its_files_are_served_with_a_strict_script_policy(tmp_path):
    css = tmp_path / "mine.css"
    css.write_text("body { color: red; }")
    server = OverlayServer(port=0, css=css)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url) as r:
                assert r.status == 200 and "overlay.js" in await r.text()
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            for path in ("/", "/overlay"):
                async with http.get(base + path + "?theme=neon", allow_redirects=False) as r:
                    assert r.status == 302 and r.headers["Location"] == "/overlay/?theme=neon"
            async with http.get(server.url + "user.css") as r:
                assert r.content_type == "text/css" and await r.text() == "body { color: red; }"
            for name in ("overlay.js", "overlay.css", "themes/neon.css", "themes/minimal.css"):
                async with http.get(server.url + "static/" + name) as r:
                    assert r.status == 200, name
            async with http.get(server.url + "static/%2e%2e/server.py") as r:
                assert r.status in (403, 404)
            css.unlink()  # a missing file is an empty style sheet (logged once), not an error
            async with http.get(server.url + "user.css") as r:
                assert r.status == 200 and await r.text() == ""
    finally:
        await server.stop()


async def test_the_socket_refuses_other_sites_pages():
    server = OverlayServer(port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(server.url + "ws", headers={"Origin": "https://evil.example"})
            assert err.value.status == 403
            own = f"http://127.0.0.1:{server.port}"
            async with http.ws_connect(server.url + "ws", headers={"Origin": own}) as ws:
                assert (await recv(ws))["t"] == "state"
    finally:
        await server.stop()


async def test_mounted_on_a_shared_application_beside_other_routes():
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = OverlayServer(prefix="/obs")
    server.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/healthz") as r:
                assert await r.text() == "ok"
            async with http.get(base + "/obs/") as r:
                assert r.status == 200
            async with http.ws_connect(base + "/obs/ws") as ws:
                assert (await recv(ws))["t"] == "state"
                server.show([act("alert", "hi")])
                assert (await recv(ws))["items"][0]["text"] == "hi"
                await runner.cleanup()  # the owner's shutdown closes the pages' sockets
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await runner.cleanup()


async def test_a_page_that_falls_behind_is_dropped_without_stalling_the_bot():
    server = OverlayServer(port=0, client_queue=3)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url + "ws") as slow, http.ws_connect(server.url + "ws") as fast:
                await recv(slow)
                await recv(fast)
                for i in range(3):  # no await in between: nothing is written meanwhile
                    server.show([act("alert", f"a{i}")])
                assert server.counters["evicted"] == 0
                server.show([act("alert", "a3")])
                assert server.counters["evicted"] == 2 and server.clients == 0  # both were behind
                closed = await asyncio.wait_for(slow.receive(), 5)
                while closed.type == aiohttp.WSMsgType.TEXT:  # what was queued before the cut
                    closed = await asyncio.wait_for(slow.receive(), 5)
                assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1013
            async with http.ws_connect(server.url + "ws") as again:  # it comes back and catches up
                assert (await recv(again))["t"] == "state"
                server.show([act("alert", "next")])
                assert (await recv(again))["items"][0]["text"] == "next"
    finally:
        await server.stop()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        OverlayServer(prefix="overlay/")
    with pytest.raises(ValueError):
        OverlayServer(client_queue=0)
    assert OverlayServer(host="0.0.0.0", port=1234).url == "http://127.0.0.1:1234/overlay/"
    assert OverlayServer(prefix="").url.endswith(":8791/")


# -- live vote counts (bot/engine/polls.py) ------------------------------------------------------

def poll(update_ms: int) -> Poll:
    return Poll(None, "Next?", ["A", "B"], 60_000, Text("done"), {}, update_ms=update_ms)  # type: ignore[arg-type]


def test_vote_counts_are_due_at_once_then_at_most_once_per_interval():
    p = poll(1000)
    assert p.update_due() is None
    assert p.vote("ana", "1", 500) and p.update_due() == 500  # the first change: at once
    assert p.update(500) == ("A 1 · B 0 (1 vote)", {"question": "Next?", "votes": {"A": 1, "B": 0}, "total": 1})
    assert p.update_due() is None
    p.vote("bob", "b", 700)
    p.vote("cy", "2", 900)
    assert p.update_due() == 1500  # a second after the last one sent
    assert p.update(1500)[1]["votes"] == {"A": 1, "B": 2}
    p.vote("bob", "B", 4000)  # the same vote again changes nothing
    assert p.update_due() is None
    p.vote("bob", "1", 4000)
    assert p.update_due() == 4000  # quiet for long enough: at once again
    assert not p.vote("dan", "7", 4100) and p.update_due() == 4000


def test_without_an_interval_no_counts_are_ever_due():
    p = poll(0)
    p.vote("ana", "1", 0)
    p.vote("bob", "2")
    assert p.update_due() is None and p.tally()["votes"] == {"A": 1, "B": 1}


def test_the_engines_poll_counts_are_what_the_page_draws():
    p = poll(1000)
    state = OverlayState()
    state.apply(act("poll", "Next?", options=["A", "B"], duration_ms=60_000))
    p.vote("ana", "2", 0)
    text, data = p.update(0)
    msg = state.apply(act("poll_update", text, **data)) or {}
    assert msg["options"] == [{"name": "A", "votes": 0}, {"name": "B", "votes": 1}] and msg["total"] == 1


async def test_a_rule_speaks_through_the_overlay():
    from bot.testing import chat, run_events

    rules = """
rules:
  - id: speak
    on: chat
    when: event.text.startswith("!say ")
    do:
      - kind: tts
        text: "{{ user.nickname }} says {{ event.text[5:] }}"
"""
    actions = run_events([chat(0, "!say hello", "ana"), chat(1000, "!say again", "ana"), chat(2000, "hi", "bo")],
                         rules)
    server = OverlayServer(port=0)
    sink = OverlaySink(server)
    await sink.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(sink.url + "ws") as ws:
                await recv(ws)
                await sink.send(actions)
                batch = await recv(ws)
    finally:
        await sink.close()
    assert batch["items"] == [{"t": "tts", "text": "ana says hello", "user": "ana"}]
    assert sink.stats()["tts_dropped_user"] == 1


# -- the engine's side (bot/engine/core.py: Engine(poll_update_ms=..., board_size=...)) -------------

_ENGINE_FEEDS_THE_OVERLAY = "poll_update_ms" in inspect.signature(Engine).parameters
needs_engine = pytest.mark.skipif(not _ENGINE_FEEDS_THE_OVERLAY,
                                  reason="Engine has no poll_update_ms/board_size yet (core.py wiring pending)")
POLL_RULES = """
rules:
  - id: vote
    command: "!poll"
    do:
      - poll: {text: "Next?", options: [A, B], duration: 60s, result: "{{ poll.winner }}"}
"""


@needs_engine
def test_the_engine_sends_live_vote_counts_at_most_once_a_second():
    from bot.testing import chat, ruleset, run_events

    rules = ruleset(POLL_RULES)
    events = [chat(0, "!poll", "mod"), chat(1000, "1", "a"), chat(1200, "2", "b"), chat(1500, "2", "c"),
              chat(1600, "2", "c"), chat(9000, "a", "d")]
    actions = run_events(events, rules, engine=Engine(rules, poll_update_ms=1000))  # type: ignore[call-arg]
    updates = [(a.ts, a.data["votes"]) for a in actions if a.kind == "poll_update"]
    assert updates == [(1000, {"A": 1, "B": 0}), (2000, {"A": 1, "B": 2}), (9000, {"A": 2, "B": 2})]
    assert [a.kind for a in actions][-1] == "poll_result"
    assert [a.kind for a in run_events(events, rules)] == ["poll", "poll_result"]  # off by default


@needs_engine
def test_the_engine_sends_the_board_when_its_top_places_change():
    from bot.testing import gift, ruleset, run_events

    rules = ruleset("rules: []\n")
    events = [gift(0, "Corgi", 299, who="ana"), gift(1000, "Rose", 1, who="bo"), gift(2000, "Rose", 1, who="cy"),
              gift(3000, "Rose", 1, who="cy")]
    actions = run_events(events, rules, engine=Engine(rules, board_size=2))  # type: ignore[call-arg]
    boards = [[(g["nickname"], g["diamonds"]) for g in a.data["top"]] for a in actions if a.kind == "leaderboard"]
    assert boards == [[("ana", 299)], [("ana", 299), ("bo", 1)], [("ana", 299), ("cy", 2)]]  # cy's first: 3rd
    assert actions[-1].text == "1. ana (299) · 2. cy (2)"
    assert run_events(events, rules) == []  # off by default
