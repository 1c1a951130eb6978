"""Giveaways: who may join, a seeded draw that is the same in every run (and after a restart),
weighting by points that really weighs, earlier winners left out (this stream, or every stream via
the state database), configuration errors, and the report listing them."""

from __future__ import annotations

import orjson
import pytest

from bot.cli import main
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.engine.snapshot import restore, snapshot
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import chat, gift, run_events, user

T = 1_767_225_600_000
MOD = user("mod", is_moderator=True)


def rules(**options) -> str:
    opts = ", ".join(f"{k}: {v}" for k, v in {"duration": "1m", **options}.items())
    return f"""
settings:
  points: {{diamond: 1}}
rules:
  - id: ga
    command: "!giveaway"
    permission: moderator
    do: [ {{giveaway: {{text: "Type !join", {opts}}}}} ]
"""


def winners(actions) -> list[list[str]]:
    return [[w["unique_id"] for w in a.data["winners"]] for a in actions if a.kind == "giveaway_result"]


def test_who_may_join_and_the_draw_is_the_same_every_time():
    events = [chat(T, "!giveaway", MOD), chat(T + 1, "!join", user("sub", is_subscriber=True)),
              chat(T + 2, "!join", user("fol", follow_role=1)), chat(T + 3, "!join", user("anon")),
              chat(T + 4, "!join", user("mod2", is_moderator=True)), chat(T + 5, "!join please", user("typo", follow_role=1)),
              chat(T + 70_000, "!join", user("late", follow_role=1))]
    first = run_events(events, rules(who="follower", winners=5))
    assert winners(first) == winners(run_events(events, rules(who="follower", winners=5)))
    assert sorted(winners(first)[0]) == ["fol", "mod2", "sub"]
    [result] = [a for a in first if a.kind == "giveaway_result"]
    assert result.ts == T + 60_000 and result.data["entrants"] == 3
    subs = run_events(events, rules(who="subscriber", winners=5))
    assert sorted(winners(subs)[0]) == ["mod2", "sub"]


def test_weighting_by_points_weighs():
    wins = {"rich": 0, "poor": 0}
    for i in range(60):  # sixty giveaways, each opened at another time: another seed
        t = T + i * 1000
        events = [gift(t, "Lion", 99, 1, "rich"), gift(t, "Rose", 1, 1, "poor"), chat(t + 1, "!giveaway", MOD),
                  chat(t + 2, "!join", "rich"), chat(t + 3, "!join", "poor")]
        [[name]] = winners(run_events(events, rules(weight="points")))
        wins[name] += 1
    assert wins["rich"] >= 50  # 99:1 odds; one chance each would give about 30
    even = {"rich": 0, "poor": 0}
    for i in range(60):
        t = T + i * 1000
        events = [gift(t, "Lion", 99, 1, "rich"), gift(t, "Rose", 1, 1, "poor"), chat(t + 1, "!giveaway", MOD),
                  chat(t + 2, "!join", "rich"), chat(t + 3, "!join", "poor")]
        [[name]] = winners(run_events(events, rules()))
        even[name] += 1
    assert 15 <= even["poor"] <= 45


def test_min_points_and_earlier_winners_of_the_stream_are_left_out():
    events = [gift(T, "Lion", 50, 1, "a"), gift(T, "Lion", 50, 1, "b"), gift(T, "Rose", 1, 1, "c")]
    for n in range(2):
        t = T + 1000 + n * 120_000
        events += [chat(t, "!giveaway", MOD)] + [chat(t + i + 1, "!join", who) for i, who in enumerate("abc")]
    got = winners(run_events(events, rules(min_points=10)))
    assert len(got) == 2 and sorted(got[0] + got[1]) == ["a", "b"]  # c too poor; the first winner not again


def test_lifetime_exclusion_reaches_over_streams(tmp_path):
    text = rules(exclude="lifetime")
    ruleset = load_rules_text(text)
    store = SqliteStore(tmp_path / "s.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(ruleset), T)
    out = []
    for ev in [chat(T, "!giveaway", MOD), chat(T + 1, "!join", "a")]:
        out += engine.feed(ev, ev.ts)
    out += engine.advance(T + 60_000)
    assert winners(out) == [["a"]]
    keeper.finish(engine, T + 61_000)
    engine = keeper.open(Engine(ruleset), T + 86_400_000)
    out = []
    for ev in [chat(T + 86_400_000, "!giveaway", MOD), chat(T + 86_400_001, "!join", "a"),
               chat(T + 86_400_002, "!join", "b")]:
        out += engine.feed(ev, ev.ts)
    out += engine.advance(T + 86_500_000)
    assert winners(out) == [["b"]]
    store.close()


def test_an_open_giveaway_survives_a_restart_with_its_entrants():
    ruleset = load_rules_text(rules(winners=3))
    events = [chat(T, "!giveaway", MOD), chat(T + 1, "!join", "a"), chat(T + 2, "!join", "b")]
    straight = winners(run_events(events + [chat(T + 3, "!join", "c")], ruleset, until=T + 100_000))
    engine = Engine(ruleset)
    for ev in events:
        engine.feed(ev, ev.ts)
    again = Engine(ruleset)
    restore(again, orjson.loads(orjson.dumps(snapshot(engine))))
    out = again.feed(chat(T + 3, "!join", "c"), T + 3) + again.advance(T + 100_000)
    assert winners(out) == straight and sorted(straight[0]) == ["a", "b", "c"]


def test_bad_giveaways_are_load_errors():
    with pytest.raises(RuleLoadError) as err:
        load_rules_text("rules:\n  - id: g\n    command: '!g'\n    do: [ {giveaway: {who: fans, weight: points}} ]\n",
                        "g.yaml")
    assert err.value.problems == [
        "g.yaml:4:28: rule g: 'who' is everyone, follower or subscriber",
        "g.yaml:4:42: rule g: 'weight' needs 'settings: points:' (rates, ranks, perks) in one rule file"]


def test_the_report_lists_the_giveaways(tmp_path, capsys):
    session = tmp_path / "s.jsonl"
    session.write_bytes(b"\n".join(orjson.dumps(x) for x in [
        {"type": "chat", "ts": T, "msg_id": "1", "user": {"user_id": "1", "unique_id": "a"}, "data": {"text": "hi"}},
        {"type": "chat", "ts": T + 200_000, "msg_id": "2", "user": {"user_id": "1", "unique_id": "a"},
         "data": {"text": "bye"}}]) + b"\n")
    actions = tmp_path / "a.jsonl"
    actions.write_bytes(orjson.dumps({"ts": T + 60_000, "kind": "giveaway_result", "text": "x", "rule": "ga",
                                      "user": None, "event_id": None,
                                      "data": {"winners": [{"unique_id": "x", "nickname": "<b>Xavi</b>"}],
                                               "entrants": 12, "weighted": False}}) + b"\n")
    page = tmp_path / "r.html"
    assert main(["report", str(session), "--actions", str(actions), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "Giveaways" in out and "<b>Xavi</b>" in out
    html = page.read_text()
    assert "<h2>Giveaways</h2>" in html and "&lt;b&gt;Xavi&lt;/b&gt;" in html and "<b>Xavi" not in html
