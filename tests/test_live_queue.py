"""The bounded queue between sources and the engine: the shedding policy under a burst."""

from __future__ import annotations

import asyncio

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
