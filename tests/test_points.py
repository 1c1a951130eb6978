"""Loyalty points: rates, the chat gap, watch windows, ranks, perks (spent, refused, refunded),
balances kept over streams in the SQLite state and across a restart mid-stream, the CSV export
(formula-safe), configuration errors, and the daemon's HTTP export and adjustment."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from test_daemon import Bot, Feed, line

from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.engine.points import points_csv
from bot.engine.snapshot import restore, snapshot
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import chat, event, gift, run_events

T = 1_767_225_600_000
RULES = """
settings:
  points:
    diamond: 1
    like: 0.1
    chat: 2
    chat_gap: 30s
    follow: 50
    share: 10
    subscribe: 200
    watch: 5
    watch_every: 10m
    ranks: {Newcomer: 0, Regular: 100}
    perks: [{name: shoutout, cost: 100}]
rules:
  - id: pts
    command: "!points"
    do: [ {say: "{{ user.unique_id }} {{ points.balance }} {{ points.rank }}"} ]
  - id: redeem
    command: "!redeem"
    do: [ {redeem: "{{ args | join(' ') }}"} ]
"""


def said(actions):
    return [a.text for a in actions if a.rule == "pts"]


def test_each_source_of_points_at_its_rate():
    events = [gift(T, "Rose", 1, 30, "ana"), event("like", T + 1, "bob", count=25, total=25),
              event("follow", T + 2, "cleo"), event("share", T + 3, "dan"), event("subscribe", T + 4, "eve", months=1),
              chat(T + 5, "hi", "fay"), chat(T + 6, "hi again", "fay"), chat(T + 36_000, "third", "fay")]
    events += [chat(T + 40_000 + i, "!points", who) for i, who in enumerate(["ana", "bob", "cleo", "dan", "eve", "fay"])]
    # watch: 5 once per 10-minute window with activity; chat: 2 at most once per 30 s (the !points line is one)
    assert said(run_events(events, RULES)) == ["ana 37 Newcomer", "bob 9 Newcomer", "cleo 57 Newcomer",
                                               "dan 17 Newcomer", "eve 207 Regular", "fay 9 Newcomer"]


def test_watch_time_counts_windows_with_activity():
    events = [chat(T, "hi", "ana"), event("like", T + 9 * 60_000, "ana", count=1, total=1),
              event("like", T + 11 * 60_000, "ana", count=1, total=2), chat(T + 45 * 60_000, "!points", "ana")]
    assert said(run_events(events, RULES)) == ["ana 19 Newcomer"]  # 3 windows (0, 1, 4) × 5, 2 chats × 2, 0.2 likes


def test_balances_carry_over_streams_in_the_state_database(tmp_path):
    rules = load_rules_text(RULES)
    store = SqliteStore(tmp_path / "s.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(rules), T)
    engine.feed(gift(T, "Lion", 150, 1, "ana"), T)
    out = engine.feed(chat(T + 1, "!redeem shoutout", "ana"), T + 1)
    assert [a.kind for a in out] == ["perk", "say"]
    keeper.finish(engine, T + 2)
    store.close()
    store = SqliteStore(tmp_path / "s.db")
    engine = StateKeeper(store, "room").open(Engine(rules), T + 86_400_000)
    out = engine.feed(chat(T + 86_400_000, "!points", "ana"), T + 86_400_000)
    assert said(out) == ["ana 64 Newcomer"]  # 150 + 5 watch + 2 chat - 100 last time; now + 2 chat + 5 watch
    store.close()


def test_a_restart_mid_stream_keeps_what_this_stream_earned():
    rules = load_rules_text(RULES)
    engine = Engine(rules)
    engine.feed(gift(T, "Lion", 150, 1, "ana"), T)
    again = Engine(rules)
    restore(again, orjson.loads(orjson.dumps(snapshot(engine))))
    assert said(again.feed(chat(T + 1000, "!points", "ana"), T + 1000)) == ["ana 157 Regular"]  # no second watch credit


def test_the_csv_is_formula_safe_and_most_first():
    rules = load_rules_text(RULES)
    engine = Engine(rules)
    engine.feed(gift(T, "Lion", 10, 1, "=HYPERLINK(\"x\")"), T)
    engine.feed(gift(T + 1, "Lion", 90, 1, "ana"), T + 1)
    text = points_csv(engine.features.points.table())
    assert text.splitlines() == ["rank,user_key,unique_id,nickname,points,level",
                                 "1,id-ana,ana,ana,95,Newcomer",
                                 '2,"id-=HYPERLINK(""x"")","\'=HYPERLINK(""x"")","\'=HYPERLINK(""x"")",15,Newcomer']


def test_a_redeem_without_points_configured_and_bad_points_settings_are_load_errors():
    with pytest.raises(RuleLoadError) as err:
        load_rules_text("rules:\n  - id: r\n    command: '!r'\n    do: [ {redeem: x} ]\n", "r.yaml")
    assert err.value.problems == ["r.yaml:4:20: rule r: 'redeem' needs 'settings: points:' (rates, ranks, perks) "
                                  "in one rule file"]
    with pytest.raises(RuleLoadError) as err:
        load_rules_text("settings:\n  points:\n    like: lots\n    perks: [{name: x, cost: 0}]\nrules: []\n", "p.yaml")
    assert err.value.problems == ["p.yaml:3:11: 'like' is how many points it earns: a number from 0",
                                  "p.yaml:4:13: a perk is {name: text, cost: whole number of points, at least 1}"]


async def test_the_daemon_exports_the_points_and_takes_adjustments(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    async with Feed() as feed:
        bot = Bot(tmp_path, feed.url)
        await bot.start()
        await asyncio.wait_for(feed.connected.wait(), 30)
        feed.queue.put_nowait(line("gift", 1, giftId=7, giftName="Lion", diamondCount=300, giftType=2, repeatCount=1))
        base = f"http://127.0.0.1:{bot.port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(1500):
                async with http.get(base + "/points.csv") as resp:
                    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
                    rows = (await resp.text()).splitlines()
                if len(rows) > 1:
                    break
                await asyncio.sleep(0.02)
            assert rows[1] == "1,u1,v1,V1,305,Regular"
            async with http.post(base + "/points/adjust?user=@v1&points=-300", json={}) as resp:
                assert resp.status == 202
            async with http.post(base + "/points/adjust?user=nobody&points=5", json={}) as resp:
                assert resp.status == 404
            async with http.post(base + "/points/adjust?user=v1&points=x", json={}) as resp:
                assert resp.status == 400
            async with http.post(base + "/points/adjust?user=v1&points=5", json={}, headers={"Origin": "http://evil"}) as resp:
                assert resp.status == 403
            for _ in range(1500):
                async with http.get(base + "/points.csv") as resp:
                    rows = (await resp.text()).splitlines()
                if rows[1] == "1,u1,v1,V1,5,Newcomer":
                    break
                await asyncio.sleep(0.02)
            assert rows[1] == "1,u1,v1,V1,5,Newcomer"
        assert await bot.stop() == 0


def test_a_redeemed_perk_is_an_overlay_alert():
    from bot.sinks.overlay.views import OverlayState

    engine = Engine(load_rules_text(RULES))
    engine.feed(gift(T, "Lion", 150, 1, "ana"), T)
    [perk, _said] = engine.feed(chat(T + 1, "!redeem shoutout", "ana"), T + 1)
    assert OverlayState().apply(perk) == {"t": "alert", "kind": "perk", "text": "ana redeemed shoutout (100 points)",
                                          "tier": "", "user": "ana"}


def test_replay_state_file_carries_points_over(tmp_path, capsys):
    from bot.cli import main

    (tmp_path / "rules.yaml").write_text(RULES)
    session = tmp_path / "s.jsonl"
    session.write_bytes(b"\n".join(orjson.dumps(x) for x in [
        {"type": "gift", "ts": T, "msg_id": "g", "user": {"user_id": "1", "unique_id": "ana"},
         "data": {"name": "Lion", "diamonds": 40, "count": 1, "gift_type": 2, "gift_id": 1}},
        {"type": "chat", "ts": T + 1000, "msg_id": "c", "user": {"user_id": "1", "unique_id": "ana"},
         "data": {"text": "!points"}}]) + b"\n")
    state = tmp_path / "state.json"
    out = tmp_path / "a.jsonl"
    for _ in range(2):
        assert main(["replay", str(session), "--rules", str(tmp_path / "rules.yaml"), "--state", str(state),
                     "--quiet", "--out", str(out)]) == 0
    said = [orjson.loads(x)["text"] for x in out.read_bytes().splitlines() if b'"pts"' in x]
    assert said[-1] == "ana 94 Newcomer"  # (40 + 5 + 2) twice: the first replay's points were kept


def test_livebot_points_exports_the_state_database(tmp_path, capsys):
    from bot.cli import main

    rules = load_rules_text(RULES)
    store = SqliteStore(tmp_path / "s.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(rules), T)
    engine.feed(gift(T, "Lion", 100, 1, "ana"), T)
    keeper.finish(engine, T + 1)  # a finished stream: ana 105
    engine = keeper.open(Engine(rules), T + 86_400_000)
    engine.feed(gift(T + 86_400_000, "Lion", 10, 1, "bob"), T + 86_400_000)
    engine.feed(gift(T + 86_400_001, "Lion", 20, 1, "ana"), T + 86_400_001)
    assert keeper.save(engine, T + 86_400_002)  # the stream in progress: bob 15, ana 20 + 5 watch
    store.close()
    assert main(["points", str(tmp_path / "s.db")]) == 0
    assert capsys.readouterr().out.splitlines() == ["rank,user_key,unique_id,nickname,points,level",
                                                   "1,id-ana,ana,ana,130,", "2,id-bob,bob,bob,15,"]
    assert main(["points", str(tmp_path / "s.db"), "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == 3
    (tmp_path / "rules.yaml").write_text(RULES)
    assert main(["points", str(tmp_path / "s.db"), "--rules", str(tmp_path / "rules.yaml")]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["1,id-ana,ana,ana,130,Regular", "2,id-bob,bob,bob,15,Newcomer"]
    assert main(["points", str(tmp_path / "nope.db")]) == 2
    (tmp_path / "bad.db").write_text("not a database")
    assert main(["points", str(tmp_path / "bad.db")]) == 1
