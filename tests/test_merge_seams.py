"""Where two of today's features meet (found by the review of the merge): control-page test events
and the on-stream features; the live end of a session and the policy guard; the guard's ?token=
cookie on pages that are files."""

from __future__ import annotations

import aiohttp

from bot.actions.dispatcher import LiveDispatcher
from bot.control.server import ControlServer
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.events.model import User
from bot.live import LiveRunner
from bot.testing import CaptureSink, chat, event, gift

T = 1_767_225_600_000

GOALS = """
settings:
  goals:
    - {id: dia, type: diamonds, steps: [1000]}
  subathon:
    start: 10m
    add: {diamond: 2s}
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }}"}]
"""


def _goal_and_clock(engine: Engine) -> tuple:
    snap = engine.features.snapshot()
    return orjson_dumps(snap)


def orjson_dumps(value) -> bytes:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def test_a_test_gift_fires_its_rules_but_moves_no_goal_clock_or_points():
    engine = Engine(load_rules_text(GOALS))
    engine.feed(chat(T, "hi", "ana"), T)
    before = _goal_and_clock(engine)
    test_gift = gift(T + 1000, "Lion", 500, who="cleo")
    test_gift.data["test"] = True
    out = engine.feed(test_gift, T + 1000)
    assert [a.text for a in out if a.kind == "say"] == ["thanks cleo"]
    assert _goal_and_clock(engine) == before
    real = engine.feed(gift(T + 2000, "Lion", 500, who="dan"), T + 2000)
    assert any(a.kind == "goal" for a in real) and _goal_and_clock(engine) != before  # the control: it can fail


def test_what_a_live_close_releases_or_holds_goes_through_the_policy_guard():
    rules = load_rules_text("""
settings:
  chat: {per_minute: 1, burst: 1}
rules:
  - id: thanks
    on: gift
    do: [{alert: "Thanks {{ user.nickname }} for {{ event.count }} {{ event.name }}"}, {say: "Thanks {{ user.nickname }}!"}]
""")
    engine = Engine(rules)
    engine.feed(gift(T, "Rose", 1, who="Ana"), T)  # takes the budget's one line
    link = User(user_id="9", unique_id="u9", nickname="bit.ly/free")
    engine.feed(gift(T + 10, "Rose", 1, 3, who=link, gift_type=1), T + 10)  # a streak whose end is lost
    out, held = engine.close_live(T + 20)
    texts = [a.text for a in out + held]
    assert all("bit.ly" not in t and "\ue000" not in t for t in texts), texts


async def test_a_page_loaded_with_the_token_gets_its_cookie_off_loopback():
    runner = LiveRunner([], Engine(load_rules_text(GOALS)), LiveDispatcher([CaptureSink()]))
    from bot.control.page import Control
    from bot.engine.trace import Tracer

    server = ControlServer(runner, host="0.0.0.0", port=0, token="s3cret", control=Control(runner, Tracer(10)))
    await server.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            base = f"http://127.0.0.1:{server.port}"
            async with http.get(base + "/?token=wrong") as resp:
                assert resp.status == 401
            assert not http.cookie_jar.filter_cookies(base)
            async with http.get(base + "/?token=s3cret") as resp:  # the control page: a file
                assert resp.status == 200
            async with http.get(base + "/status?format=json") as resp:  # by the cookie alone
                assert resp.status == 200
    finally:
        await server.stop()


def test_what_the_policy_guard_did_is_in_metrics_as_process_totals_across_a_stream_end():
    from bot.control.metrics import registry_for, render

    rules = load_rules_text("""rules:
  - id: hello
    on: join
    do: [{say: "hello {{ user.nickname }}"}]
""")
    runner = LiveRunner([], Engine(rules), LiveDispatcher([CaptureSink()]))
    join = event("join", T, User(user_id="1", unique_id="u1", nickname="Ana bit.ly/free"))
    runner.engine.feed(join, T)
    line = 'livebot_policy_total{check="link",outcome="masked"} 1.0'
    assert line in render(registry_for(runner)).decode()
    runner.counts.ended(runner.engine)  # a stream's end: the next stream's engine starts from 0
    runner.engine = runner.engine.fresh()
    assert line in render(registry_for(runner)).decode()
