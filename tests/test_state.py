"""State that outlives the process: engine snapshots, the SQLite store, resuming a stream."""

from __future__ import annotations

import orjson
import pytest

from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.snapshot import restore, snapshot
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import chat, event, gift, ruleset

RULES = ruleset("""
rules:
  - id: welcome
    on: chat
    once: user
    when: not event.text.startswith("!")
    do: [{say: "welcome {{ user.nickname }}"}]
  - id: thanks
    on: gift
    cooldown: {user: 1m}
    do: [{say: "thanks {{ user.nickname }}, {{ user.diamonds }} tonight, {{ user.lifetime.diamonds }} ever"}]
  - id: top
    command: "!top"
    cooldown: 30s
    do: [{say: "{{ leaderboard | ranked(3) }}"}]
  - id: hourly
    on: follow
    max_per_hour: 2
    do: [{say: "thanks for the follow {{ user.nickname }}"}]
  - id: milestone
    on: gift
    milestones: {of: stats.diamonds, at: [100, 1000]}
    do: [{say: "we passed {{ milestone }}"}]
""")

BEFORE = [chat(1000, "hi", "ana"), gift(2000, "Rose", 1, 5, "ana"), gift(3000, "Lion", 29999, 1, "bo"),
          chat(4000, "!top", "bo"), event("follow", 5000, "cy"), event("follow", 6000, "di"),
          gift(7000, "Rose", 1, 1, "ana")]
AFTER = [chat(10_000, "hello again", "ana"), chat(11_000, "first time", "ed"), gift(12_000, "Rose", 1, 1, "ana"),
         chat(20_000, "!top", "ana"), chat(40_000, "!top", "ana"), event("follow", 41_000, "fay"),
         gift(70_000, "Rose", 1, 1, "ana"), gift(71_000, "Cap", 999, 1, "ed")]


def feed(engine: Engine, events) -> list[str]:
    clock = VirtualClock()
    return [a.text for ev in events for a in engine.feed(ev, clock.set(ev.ts))]


def test_a_restored_engine_behaves_as_the_one_that_kept_running():
    a = Engine(RULES)
    feed(a, BEFORE)
    snap = orjson.loads(orjson.dumps(snapshot(a)))  # as it travels through the store
    b = Engine(RULES)
    restore(b, snap)
    assert feed(b, AFTER) == feed(a, AFTER)
    assert b.board.top(3) == a.board.top(3)
    assert b.state.counts == a.state.counts and b.fired == a.fired


def test_a_restored_engine_keeps_cooldowns_once_sets_and_caps():
    a = Engine(RULES)
    feed(a, BEFORE)
    b = Engine(RULES)
    restore(b, orjson.loads(orjson.dumps(snapshot(a))))
    # Ana is not welcomed twice; the 30 s !top cooldown holds at 20 s and the board is whole at 40 s;
    # Ana's 1-minute thank-you cooldown holds until 70 s; two follows were thanked this hour already.
    assert feed(b, AFTER) == ["welcome ed", "1. bo (29,999) · 2. ana (7)", "thanks ana, 8 tonight, 8 ever",
                              "thanks ed, 999 tonight, 999 ever", "we passed 1000"]


def test_the_backlog_after_a_restart_is_still_dropped():
    a = Engine(RULES)
    feed(a, BEFORE)
    b = Engine(RULES)
    restore(b, snapshot(a))
    assert feed(b, [BEFORE[1]]) == [] and b.counters["duplicates"] == 1


def test_a_damaged_snapshot_is_refused():
    with pytest.raises(ValueError, match="version"):
        restore(Engine(RULES), {"version": 99})
    snap = snapshot(Engine(RULES))
    del snap["board"]
    with pytest.raises(ValueError, match="damaged engine snapshot: KeyError"):
        restore(Engine(RULES), snap)


def test_finishing_streams_adds_up_lifetime_totals(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(RULES), 0)
    feed(engine, BEFORE)
    keeper.save(engine, 8000)
    assert store.load_snapshot("room")[0] == 8000
    engine = keeper.finish(engine, 9000)
    assert store.load_snapshot("room") is None
    assert store.lifetime()["id-ana"]["diamonds"] == 6 and store.lifetime()["id-bo"]["sessions"] == 1
    # The next stream starts fresh but knows the lifetime totals.
    out = feed(engine, [gift(100_000, "Rose", 1, 2, "ana")])
    assert out == ["thanks ana, 2 tonight, 8 ever"]
    keeper.finish(engine, 200_000)
    assert store.lifetime()["id-ana"] == {"diamonds": 8, "gifts": 3, "chats": 1, "likes": 0, "first_seen": 1000,
                                          "sessions": 2}
    [second, first] = store.sessions("room")
    assert (first["diamonds"], second["diamonds"]) == (30005, 2)
    assert first["top_gifters"][0]["nickname"] == "bo" and first["ended"] == 9000
    store.close()


def test_open_resumes_a_recent_stream_and_finishes_a_stale_one(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room", resume_within_ms=60_000)
    engine = keeper.open(Engine(RULES), 0)
    feed(engine, BEFORE)
    keeper.save(engine, 8000)
    resumed = StateKeeper(store, "room", resume_within_ms=60_000).open(Engine(RULES), 60_000)
    assert resumed.state.diamonds == 30005 and resumed.board.top(1)[0]["nickname"] == "bo"
    fresh = StateKeeper(store, "room", resume_within_ms=60_000).open(Engine(RULES), 70_000)
    assert fresh.state.diamonds == 0 and fresh.state.lifetime["id-bo"]["diamonds"] == 29999
    assert store.load_snapshot("room") is None and len(store.sessions()) == 1


def test_a_store_that_cannot_be_written_is_logged_and_counted(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(RULES), 0)
    feed(engine, BEFORE)
    store.db.close()  # e.g. the disk went away
    keeper.save(engine, 9000)
    assert keeper.failures == 1 and keeper.saves == 0


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    from bot.store import StoreError

    bad = tmp_path / "state.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(StoreError, match="cannot open the state database"):
        SqliteStore(bad)
