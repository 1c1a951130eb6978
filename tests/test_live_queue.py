"""The bounded queue between sources and the engine: the shedding policy under a burst."""

from __future__ import annotations

import asyncio

import pytest

from bot.events.model import Event, User
from bot.sources.queue import EventQueue, shed_class


def ev(kind: str, i: int, **data) -> Event:
    return Event(kind, i, msg_id=f"{kind}{i}", user=User(user_id=str(i % 50)), data=data)


def test_policy_classes():
    assert [shed_class(t) for t in ("join", "like", "gift_progress")] == [0, 0, 0]
    assert [shed_class(t) for t in ("chat", "share", "viewers", "unknown")] == [1, 1, 1, 1]
    assert [shed_class(t) for t in ("gift", "follow", "subscribe", "live_end", "connect", "disconnect")] == [2] * 6


def test_a_burst_of_50000_likes_keeps_every_gift_and_counts_what_was_shed():
    q = EventQueue(capacity=1000)
    gifts = follows = 0
    for i in range(50_000):
        q.put(ev("like", i, count=3, total=i * 3))
        if i % 100 == 0:
            q.put(ev("gift", i, gift_id=5655, name="Rose", diamonds=1, count=1, gift_type=2, streak_end=False))
            gifts += 1
        if i % 1000 == 0:
            q.put(ev("follow", i))
            follows += 1
    out: list[Event] = []
    while len(q):
        out += q.get_nowait(256)
    kept = [e for e in out if e.type == "gift"]
    assert len(kept) == gifts == 500
    assert sum(e.type == "follow" for e in out) == follows == 50
    assert [e.ts for e in kept] == sorted(e.ts for e in kept)  # arrival order kept
    likes_kept = sum(e.type == "like" for e in out)
    assert likes_kept + q.shed["like"] == 50_000  # nothing vanished without being counted
    assert q.shed["like_hearts"] == 3 * q.shed["like"]
    assert q.shed["gift"] == 0 and q.shed["follow"] == 0
    assert len(out) == likes_kept + gifts + follows


def test_likes_go_before_chat_and_chat_before_nothing_precious():
    q = EventQueue(capacity=4)
    q.put(ev("like", 1))
    q.put(ev("chat", 2, text="a"))
    q.put(ev("chat", 3, text="b"))
    q.put(ev("join", 4))
    q.put(ev("chat", 5, text="c"))  # full: the oldest of the lowest class (the like) goes
    assert q.shed == {"like": 1, "like_hearts": 0}
    q.put(ev("chat", 6, text="d"))  # full: the join goes
    q.put(ev("gift", 7))  # full, only chat left: the oldest chat goes for the gift
    q.put(ev("like", 8))  # the incoming like is itself the least important: shed
    assert q.shed["join"] == 1 and q.shed["chat"] == 1 and q.shed["like"] == 2
    assert [e.ts for e in q.get_nowait()] == [3, 5, 6, 7]


def test_gifts_are_kept_beyond_capacity_rather_than_lost():
    q = EventQueue(capacity=3)
    for i in range(10):
        q.put(ev("gift", i))
    assert len(q) == 10 and not q.shed and q.high_water == 10


async def test_get_waits_for_events_and_times_out_empty():
    q = EventQueue()
    assert await q.get(timeout=0.01) == []
    asyncio.get_running_loop().call_soon(q.put, ev("chat", 1, text="hi"))
    assert [e.msg_id for e in await q.get(timeout=5)] == ["chat1"]


# -- issue 14, item 16 ------------------------------------------------------------------------------

@pytest.mark.parametrize("with_console", [True, False])
async def test_each_action_shows_once_on_a_terminal(with_console):
    import io

    from structlog.testing import capture_logs

    from bot.actions.dispatcher import Dispatcher
    from bot.engine.core import Engine
    from bot.engine.loader import load_rules_text
    from bot.live import LiveRunner
    from bot.sinks.console import ConsoleSink
    from bot.testing import CaptureSink, ScriptSource, chat

    rules = load_rules_text('rules:\n  - {id: hi, on: chat, do: [{say: "hi {{ user.nickname }}"}]}\n')
    source, capture, screen = ScriptSource(), CaptureSink(), io.StringIO()
    sinks = [ConsoleSink(screen), capture] if with_console else [capture]
    runner = LiveRunner([source], Engine(rules), Dispatcher(sinks))
    with capture_logs() as logs:
        task = asyncio.create_task(runner.run())
        await asyncio.wait_for(source.ready.wait(), 10)
        for i in range(3):
            source.put(chat(0, f"hello {i}", f"v{i}"))
        async def delivered() -> None:
            while len(capture.actions) < 3:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(delivered(), 10)
        runner.stop.set()
        source.done.set()
        await asyncio.wait_for(task, 10)
    info = [e for e in logs if e["event"] == "action" and e["log_level"] == "info"]
    if with_console:
        assert screen.getvalue().count("say") == 3 and info == []  # printed once, not logged again (debug)
    else:
        assert len(info) == 3  # without a console, the log is where actions show
