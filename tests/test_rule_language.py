"""The rule language beyond the basics: tiers, milestones, timers, polls, quizzes, commands,
permissions, leaderboard, sponsors, the chat budget, variables, state and organisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.actions.model import Action
from bot.actions.pacing import gift_worth
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules, load_rules_text
from bot.engine.timers import jitter_for
from bot.sinks.overlay.views import alert_tier
from bot.testing import chat, event, gift, run_events, user

MIN = 60_000


def rules(text: str):
    return load_rules_text("rules:\n" + text)


def fired(actions, rule=None):
    return [(a.ts, a.kind, a.text) for a in actions if rule is None or a.rule == rule]


# -- tiers and milestones ----------------------------------------------------------------------

TIERS = rules("""
  - id: thanks
    on: gift
    tiers:
      - {min: 1000, name: legend, do: [{alert: "LEGEND {{ user.nickname }} ({{ tier.name }})"}, {say: "WOW"}]}
      - {min: 100, name: big, do: [{say: "big thanks {{ user.nickname }}"}]}
      - {min: 1, do: [{say: "thanks {{ user.nickname }}"}]}
""")


def test_tiers_pick_the_highest_tier_reached_by_total_diamonds():
    actions = run_events([gift(0, "Rose", 1, 5, "a"), gift(1, "Doughnut", 30, 4, "b"),
                          gift(2, "Galaxy", 1000, 1, "c")], TIERS)
    assert [a.text for a in actions] == ["thanks a", "big thanks b", "LEGEND c (legend)", "WOW"]


def test_tiers_need_tier_by_unless_on_gifts():
    with pytest.raises(RuleLoadError, match="'tiers' needs 'tier_by'"):
        rules("  - id: t\n    on: like\n    tiers: [{min: 1, do: [{say: x}]}]\n")
    r = rules("  - id: t\n    on: like\n    tier_by: event.count\n    tiers: [{min: 10, do: [{say: lots}]}]\n")
    assert [a.text for a in run_events([event("like", 0, "a", count=3), event("like", 1, "a", count=12)], r)] == ["lots"]


def test_milestones_fire_once_per_threshold_with_the_highest_crossed():
    r = rules("""
  - id: milestone
    on: gift
    milestones: {of: user.diamonds, at: [100, 500, 1000]}
    do: [{say: "{{ user.nickname }} just passed {{ milestone | num }} diamonds tonight!"}]
""")
    events = [gift(0, "Doughnut", 30, 3, "ana"), gift(1, "Doughnut", 30, 1, "ana"),  # 90, 120 → 100
              gift(2, "Rose", 1, 1, "ana"),  # 121: nothing
              gift(3, "Galaxy", 1000, 1, "ana"),  # 1121 → 500 and 1000 crossed: says 1000
              gift(4, "Doughnut", 30, 4, "bob")]  # bob: 120 → 100
    assert [a.text for a in run_events(events, r)] == [
        "ana just passed 100 diamonds tonight!", "ana just passed 1,000 diamonds tonight!",
        "bob just passed 100 diamonds tonight!"]


# -- timers ------------------------------------------------------------------------------------

def test_every_with_jitter_is_deterministic_and_within_bounds():
    r = rules("  - id: t\n    every: 10m\n    jitter: 2m\n    do: [{cta: hi}]\n")
    times = [a.ts for a in run_events([chat(0, "x")], r, until=63 * MIN)]
    assert times == [a.ts for a in run_events([chat(0, "x")], r, until=63 * MIN)]
    assert len(times) == 6
    for n, t in enumerate(times, 1):
        assert t == n * 10 * MIN + jitter_for("t", n, 2 * MIN)
        assert n * 10 * MIN <= t <= n * 10 * MIN + 2 * MIN
    assert len(set(t % (10 * MIN) for t in times)) > 1  # it really jitters


def test_min_chat_guard_keeps_timers_quiet_in_an_empty_room():
    r = rules("  - id: t\n    every: 5m\n    min_chat: 3\n    do: [{cta: follow}]\n")
    events = [event("viewers", 0, None, count=5)] + [chat(m * MIN, "x") for m in (1, 2, 3)] + [chat(7 * MIN, "x")] + [chat(m * MIN, "x") for m in (11, 12, 13)]
    assert [a.ts for a in run_events(events, r, until=30 * MIN)] == [5 * MIN, 15 * MIN]


def test_after_fires_once_per_chat_silence():
    r = rules("  - id: quiet\n    after: 2m\n    do: [{say: \"It's quiet... ask me anything!\"}]\n")
    events = [chat(0, "a"), chat(1 * MIN, "b"), chat(10 * MIN, "c")]
    assert [a.ts for a in run_events(events, r, until=20 * MIN)] == [3 * MIN, 12 * MIN]


# -- polls and quizzes ---------------------------------------------------------------------------

POLL = rules("""
  - id: game-poll
    command: "!poll"
    permission: moderator
    do:
      - poll:
          text: "Next game? 1 Minecraft, 2 Fortnite, 3 Just chatting"
          options: [Minecraft, Fortnite, Just chatting]
          duration: 60s
          result: "{{ poll.winner }} wins with {{ poll.top }} of {{ poll.total }} votes{% if poll.tie %} (tie){% endif %}"
""")
MOD = user("mod", is_moderator=True)


def test_a_poll_counts_one_vote_per_viewer_and_announces_the_winner():
    events = [chat(0, "!poll", MOD), chat(1000, "1", "a"), chat(2000, "fortnite", "b"), chat(3000, "2", "c"),
              chat(4000, "JUST CHATTING!", "d"), chat(5000, "3", "a"),  # a changes their vote: last counts
              chat(6000, "9", "e"), chat(7000, "minecraft is ok", "f"),  # not votes
              chat(61_000, "1", "g")]  # too late
    actions = run_events(events, POLL)
    assert [a.kind for a in actions] == ["poll", "poll_result"]
    opened, result = actions
    assert opened.data["options"] == ["Minecraft", "Fortnite", "Just chatting"] and opened.data["ends"] == 60_000
    assert result.ts == 60_000
    assert result.data["votes"] == {"Minecraft": 0, "Fortnite": 2, "Just chatting": 2}
    assert result.text == "Fortnite & Just chatting wins with 2 of 4 votes (tie)"


def test_only_one_poll_at_a_time_and_permissions_hold():
    events = [chat(0, "!poll", "viewer"), chat(1, "!poll", MOD), chat(2, "!poll", MOD), chat(3, "2", "a")]
    engine = Engine(POLL)
    actions = run_events(events, POLL, engine=engine)
    assert [a.kind for a in actions] == ["poll", "say", "poll_result"]
    assert actions[1].text.startswith("A poll is already running (60 s left): ")  # chat is told (issue 14)
    assert actions[2].text == "Fortnite wins with 1 of 1 votes"
    assert engine.counters["poll_busy"] == 1


def test_a_quiz_is_won_by_the_first_correct_answer():
    r = rules("""
  - id: quiz
    every: 10m
    do:
      - quiz:
          text: "What is the capital of France?"
          answer: [Paris]
          duration: 30s
          win: "{{ winner.nickname }} got it: {{ quiz.answer }}!"
          timeout: "Nobody? It was {{ quiz.answer }}."
""")
    events = [event("join", 0, "a"), chat(10 * MIN + 1000, "london", "a"), chat(10 * MIN + 2000, "  paris!! ", "b"),
              chat(10 * MIN + 3000, "Paris", "c")]
    actions = run_events(events, r, until=21 * MIN)
    assert fired(actions) == [(10 * MIN, "quiz", "What is the capital of France?"),
                              (10 * MIN + 2000, "shoutout", "b got it: Paris!"),
                              (20 * MIN, "quiz", "What is the capital of France?"),
                              (20 * MIN + 30_000, "say", "Nobody? It was Paris.")]
    assert actions[1].user == "b"


# -- commands and permissions --------------------------------------------------------------------

def test_permission_levels():
    r = rules("""
  - {id: f, command: "!f", permission: follower, do: [{say: f}]}
  - {id: s, command: "!s", permission: subscriber, do: [{say: s}]}
  - {id: m, command: "!m", permission: moderator, do: [{say: m}]}
  - {id: t, command: "!t", permission: top_gifter, do: [{say: t}]}
""")
    fan, sub, nobody = user("fan", follow_role=1), user("sub", is_subscriber=True), user("nobody")
    events = [chat(0, c, who) for who in (nobody, fan, sub, MOD) for c in ("!f", "!s", "!m", "!t")]
    events += [gift(100, "Rose", 1, 1, "big"), chat(101, "!t", "big")]
    said = [(a.user, a.text) for a in run_events(events, r)]
    assert said == [("fan", "f"), ("sub", "f"), ("sub", "s"), ("mod", "f"), ("mod", "s"), ("mod", "m"),
                    ("mod", "t"), ("big", "t")]


# -- leaderboard ---------------------------------------------------------------------------------

def test_top_gifter_fires_when_someone_enters_or_climbs_the_top_n():
    r = load_rules_text("""
settings:
  leaderboard: {top: 2}
rules:
  - id: top
    on: top_gifter
    do: [{shoutout: "{{ user.nickname }} is now #{{ event.rank }} with {{ event.diamonds }}"}]
  - id: board
    command: "!top"
    do: [{say: "{% set b = leaderboard %}{{ b[0].nickname }} {{ b[0].diamonds }}, {{ b[1].nickname }} {{ b[1].diamonds }}"}]
""")
    events = [gift(0, "Rose", 1, 10, "a"), gift(1, "Rose", 1, 5, "b"), gift(2, "Rose", 1, 1, "c"),
              gift(3, "Rose", 1, 20, "c"), chat(4, "!top", "x")]
    assert [a.text for a in run_events(events, r)] == [
        "a is now #1 with 10", "b is now #2 with 5", "c is now #1 with 21", "c 21, a 10"]


def readme_block(heading: str, lang: str = "yaml") -> str:
    """The first ``lang`` code block under a README heading (so the README's examples stay true)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading):]
    start = section.index(f"```{lang}\n") + len(f"```{lang}\n")
    return section[start:section.index("```", start)]


def test_the_readme_perk_fires_once_per_viewer_past_1000_diamonds():
    r = rules(readme_block("### Leaderboard, shout-outs and perks"))
    events = [gift(0, "Corgi", 299, 2, "ana"), gift(1000, "Corgi", 299, 2, "ana"),  # 598, then 1196
              gift(2000, "Galaxy", 1000, 1, "ana"),  # 2196: no second perk
              gift(3000, "Galaxy", 1000, 1, "bob"), gift(4000, "Rose", 1, 1, "cleo")]
    perks = [(a.ts, a.user, a.text) for a in run_events(events, r) if a.rule == "vip-perk"]
    assert perks == [(1000, "ana", "Personal thank-you video for ana"),
                     (3000, "bob", "Personal thank-you video for bob")]
    [perk] = [a for a in run_events(events[:2], r) if a.rule == "vip-perk"]
    assert perk.kind == "perk" and perk.data == {}  # a kind of your own, for your sinks


# -- sponsors -------------------------------------------------------------------------------------

def test_a_sponsor_rule_without_a_disclosure_is_refused():
    with pytest.raises(RuleLoadError) as info:
        rules("  - id: s\n    every: 20m\n    sponsor: {name: Acme, code: LIVE10}\n    do: [{say: buy}]\n")
    assert "needs a 'disclosure'" in info.value.problems[0] and info.value.problems[0].startswith("<rules>:4:14:")


def test_a_sponsor_rule_needs_max_per_hour():
    with pytest.raises(RuleLoadError) as info:
        rules("  - id: s\n    command: '!code'\n    sponsor: {name: Acme, disclosure: '#ad'}\n    do: [{say: buy}]\n")
    assert info.value.problems == [
        "<rules>:4:14: rule s: a sponsor segment needs 'max_per_hour': at most how many times an hour it may run"]


def test_sponsor_segments_carry_the_disclosure_and_respect_max_per_hour():
    r = rules("""
  - id: sponsor
    every: 10m
    max_per_hour: 2
    sponsor: {name: Acme Energy, disclosure: "#ad", code: LIVE10, link: acme.example/live}
    do:
      - say: "{{ sponsor.name }}: 10% off with {{ sponsor.code }} at {{ sponsor.link }}"
  - id: code
    command: "!code"
    max_per_hour: 10
    sponsor: {name: Acme Energy, disclosure: "#ad", code: LIVE10}
    do: [{say: "Code {{ sponsor.code }} {{ sponsor.disclosure }}"}]
""")
    actions = run_events([chat(0, "!code")], r, until=2 * 60 * MIN)
    assert [(a.ts // MIN, a.text) for a in actions] == [
        (0, "Code LIVE10 #ad"),
        (10, "Acme Energy: 10% off with LIVE10 at acme.example/live #ad"),
        (20, "Acme Energy: 10% off with LIVE10 at acme.example/live #ad"),
        (70, "Acme Energy: 10% off with LIVE10 at acme.example/live #ad"),
        (80, "Acme Energy: 10% off with LIVE10 at acme.example/live #ad")]


# -- the chat budget -------------------------------------------------------------------------------

BUDGET = load_rules_text("""
settings:
  chat: {per_minute: 6, burst: 2, dedup: 30s}
rules:
  - id: thanks
    on: gift
    merge: "Thank you {{ names }} for the gifts!"
    do: [{say: "Thank you {{ user.nickname }} for {{ event.name }}"}]
  - id: alert
    on: gift
    do: [{alert: "{{ user.nickname }}"}]
  - id: hi
    on: chat
    do: [{say: "hi!"}]
""")


def test_a_burst_of_gifts_does_not_flood_chat_big_gifts_first_then_merged():
    events = [gift(i, "Rose", 1, 1, f"u{i}") for i in range(6)] + [gift(6, "Galaxy", 1000, 1, "whale")]
    actions = run_events(events, BUDGET)
    alerts = [a for a in actions if a.kind == "alert"]
    says = [(a.ts, a.text) for a in actions if a.kind == "say"]
    assert len(alerts) == 7  # the overlay is not budgeted
    assert says == [(0, "Thank you u0 for Rose"), (1, "Thank you u1 for Rose"),
                    (10_001, "Thank you whale for Galaxy"),  # 6/min = one line per 10 s; worth first
                    (20_000, "Thank you u2, u3, u4 and 1 other for the gifts!")]


def test_a_burst_of_unequal_gifts_is_merged_with_only_the_biggest_alone():
    # twelve gifts of 1-99 diamonds at once, 20 lines a minute with a burst of 5 (the starter pack's)
    r = load_rules_text("""
settings:
  chat: {per_minute: 20, burst: 5}
rules:
  - id: thanks
    on: gift
    merge: "Thank you {{ names }} for the gifts!"
    do: [{say: "Thank you {{ user.nickname }} for {{ event.total_diamonds }}"}]
""")
    worth = [5, 17, 99, 1, 30, 12, 64, 3, 45, 8, 22, 71]
    engine = Engine(r)
    actions = run_events([gift(0, "Rose", d, 1, f"u{i}") for i, d in enumerate(worth)], r, engine=engine)
    assert [(a.ts, a.text) for a in actions] == [
        (0, "Thank you u0 for 5"), (0, "Thank you u1 for 17"), (0, "Thank you u2 for 99"), (0, "Thank you u3 for 1"),
        (0, "Thank you u4 for 30"),  # the burst allowance
        (3000, "Thank you u11 for 71"),  # the biggest of those that waited, alone
        (6000, "Thank you u6, u8, u10 and 3 others for the gifts!"),  # the other six, biggest first
    ]
    assert actions[-1].data == {"merged": 6, "users": ["u6", "u8", "u10", "u5", "u9", "u7"]}
    assert engine.budget.counters["merged"] == 6 and engine.budget.waiting == 0


def test_a_bigger_gift_later_in_a_burst_still_gets_its_own_line():
    events = ([gift(i, "Rose", 1, 1, f"u{i}") for i in range(2)]  # the burst allowance (2)
              + [gift(2, "Doughnut", 30, 1, "d"), gift(3, "Rose", 1, 1, "r1"), gift(4, "Rose", 1, 1, "r2")]
              + [gift(12_000, "Galaxy", 1000, 1, "whale"), gift(12_001, "Rose", 1, 1, "r3")])
    says = [(a.ts, a.text) for a in run_events(events, BUDGET) if a.kind == "say"]
    assert says == [(0, "Thank you u0 for Rose"), (1, "Thank you u1 for Rose"),
                    (10_000, "Thank you d for Doughnut"),  # the biggest waiting: alone
                    (20_000, "Thank you whale for Galaxy"),  # bigger than that, came later: alone too
                    (30_000, "Thank you r1, r2 and r3 for the gifts!")]


def test_identical_lines_within_the_dedup_window_are_dropped():
    events = [chat(0, "a", "x"), chat(10_000, "b", "y"), chat(40_000, "c", "z")]
    engine = Engine(BUDGET)
    assert [a.ts for a in run_events(events, BUDGET, engine=engine)] == [0, 40_000]
    assert engine.budget.counters["deduplicated"] == 1


# -- variables and state ----------------------------------------------------------------------------

def test_set_and_incr_variables_per_session_and_per_user():
    r = rules("""
  - id: topic
    command: "!topic"
    permission: moderator
    do: [{set: {var: topic, value: "{{ args | join(' ') }}"}}, {say: "Topic: {{ args | join(' ') }}"}]
  - id: points
    on: gift
    do: [{incr: {var: points, by: "{{ event.total_diamonds }}", per: user}}, {incr: {var: gifts}}]
  - id: show
    command: "!me"
    do: [{say: "{{ user.nickname }}: {{ user.vars.points | default(0) }} points; topic {{ vars.topic }}; {{ vars.gifts }} gifts"}]
""")
    events = [chat(0, "!topic speedrun night", MOD), gift(1, "Rose", 1, 5, "ana"), gift(2, "Galaxy", 1000, 1, "ana"),
              chat(3, "!me", "ana"), chat(4, "!me", "bob")]
    assert [a.text for a in run_events(events, r)][1:] == [
        "ana: 1005 points; topic speedrun night; 2 gifts", "bob: 0 points; topic speedrun night; 2 gifts"]


def test_session_stats_and_lifetime_totals():
    r = rules("""
  - id: s
    command: "!stats"
    do: [{say: "{{ stats.viewers }}/{{ stats.peak_viewers }} viewers, {{ stats.chats_per_minute }}/min, {{ stats.diamonds }} diamonds, {{ stats.follows }} follows; you: {{ user.lifetime.diamonds }} lifetime over {{ user.lifetime.sessions }} sessions, last thanked {{ user.last_thanked }}"}]
""")
    events = [event("viewers", 0, None, count=50), event("viewers", 1, None, count=80), event("viewers", 2, None, count=60),
              event("follow", 3, "f"), gift(4, "Rose", 1, 3, "ana"), chat(5000, "x", "b"), chat(30_000, "y", "c"),
              chat(70_000, "!stats", "ana")]
    engine = Engine(r, lifetime={"id-ana": {"diamonds": 100, "sessions": 4}})
    [a] = run_events(events, r, engine=engine)
    assert a.text == ("60/80 viewers, 2/min, 3 diamonds, 1 follows; you: 103 lifetime over 5 sessions, "
                      "last thanked None")
    assert engine.state.lifetime_snapshot()["id-ana"]["diamonds"] == 103


# -- organisation ------------------------------------------------------------------------------------

def test_include_snippets_and_one_settings_block(tmp_path):
    (tmp_path / "main.yaml").write_text(
        "include: [parts/*.yaml]\nsettings:\n  snippets: {socials: 'IG @demo'}\nrules:\n"
        "  - {id: socials, command: '!socials', do: [{say: '{{ snippets.socials }}'}]}\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.yaml").write_text("rules:\n  - {id: a, on: follow, do: [{say: '{{ snippets.socials }}!'}]}\n")
    ruleset = load_rules(tmp_path / "main.yaml")
    assert [r.id for r in ruleset.rules] == ["a", "socials"]
    assert [a.text for a in run_events([event("follow", 0, "x"), chat(1, "!socials")], ruleset)] == [
        "IG @demo!", "IG @demo"]
    (tmp_path / "parts" / "b.yaml").write_text(
        "settings: {}\nrules:\n  - {id: b, on: follow, do: [{say: '{{ snippets.socal }}'}]}\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(tmp_path / "main.yaml")
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        f"'settings' may appear in one file only (first at {tmp_path / 'main.yaml'}:2:1)",
        "rule b: unknown snippet 'socal' (did you mean 'socials'?)"]


def test_include_of_a_missing_file_is_an_error(tmp_path):
    (tmp_path / "main.yaml").write_text("include: nope.yaml\nrules: []\n")
    with pytest.raises(RuleLoadError, match="main.yaml:1:10: include 'nope.yaml' matches no file"):
        load_rules(tmp_path / "main.yaml")


def test_chat_lines_that_wait_too_long_are_dropped_and_counted():
    r = load_rules_text("""
settings:
  chat: {per_minute: 1, burst: 1, max_wait: 90s}
rules:
  - id: hi
    on: chat
    do: [{say: "hi {{ user.nickname }}"}]
""")
    engine = Engine(r)
    events = [chat(0, "x", "a"), chat(1000, "x", "b"), chat(2000, "x", "c"), chat(3000, "x", "d")]
    actions = run_events(events, r, engine=engine)
    # one line a minute: a at once, b at 60 s, c at 120 s (waited 118 s > 90 s: stale), ...
    assert [(a.ts, a.text) for a in actions] == [(0, "hi a"), (60_000, "hi b")]
    assert engine.budget.counters["dropped_stale"] == 2


def test_a_full_queue_drops_the_least_valuable_line():
    r = load_rules_text("""
settings:
  chat: {per_minute: 1, burst: 1, max_wait: 1h}
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} {{ event.total_diamonds }}"}]
""")
    engine = Engine(r)
    events = [gift(i, "Rose", 1 if i != 5 else 1000, 1, f"u{i}") for i in range(13)]
    actions = run_events(events, r, engine=engine)
    assert engine.budget.counters["dropped_full"] == 2  # 12 waiting, room for 10
    assert [a.text for a in actions][:3] == ["thanks u0 1", "thanks u5 1000", "thanks u1 1"]
    assert "thanks u12 1" not in [a.text for a in actions]


# -- action data keeps numbers ------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_gift_tiers_give_numeric_diamonds_in_action_data():
    events = [gift(0, "Galaxy", 1000, 1, user("u1", nickname="123")), gift(20_000, "Rose", 1, 150, "bo")]
    alerts = [a for a in run_events(events, ROOT / "rules") if a.rule == "thank-gift" and a.kind == "alert"]
    assert [a.data for a in alerts] == [{"tier": "legendary", "gift": "Galaxy", "diamonds": 1000},
                                        {"tier": "big", "gift": "Rose", "diamonds": 150}]
    assert all(type(a.data["diamonds"]) is int for a in alerts)
    assert json.loads(json.dumps(alerts[0].to_dict()))["data"]["diamonds"] == 1000  # a number in JSONL/webhooks
    # what reads it: the overlay's alert tier and the pacing rank take the number as they took the text
    assert alert_tier(Action(0, "alert", "", "r", data={"diamonds": 1500})) == "legendary"
    assert alert_tier(Action(0, "alert", "", "r", data={"diamonds": 150})) == "big"
    assert gift_worth(alerts[1]) == 150.0


DATA_TYPES = rules("""
  - id: typed
    on: gift
    do:
      - alert:
          text: "{{ user.nickname }}"
          data:
            nickname: "{{ user.nickname }}"
            diamonds: "{{ event.total_diamonds }}"
            share: "{{ event.total_diamonds / 200 }}"
            big: "{{ event.total_diamonds >= 100 }}"
            mod: "{{user.is_moderator}}"
            thanked: "{{ user.last_thanked }}"
            huge: "{{ event.total_diamonds * 10 ** 15 }}"
            line: "{{ event.total_diamonds }} diamonds"
            spaced: " {{ event.total_diamonds }}"
            plain: "5000"
            literal: {count: 3, ratio: 0.5, on: true, off: false, none: null}
            nested: ["{{ event.count }}", {name: "{{ event.name }}", count: "{{ event.count }}"}]
""")


def test_a_lone_data_expression_keeps_its_type_and_everything_else_is_text():
    [action] = run_events([gift(0, "Lion", 29_999, 1, user("u1", nickname="123"))], DATA_TYPES)
    assert action.data == {
        "nickname": "123",  # a str, though it reads as a number: type comes from the value
        "diamonds": 29_999,
        "share": 149.995,
        "big": True,
        "mod": False,
        "thanked": None,
        "huge": "29999000000000000000",  # beyond ±(2**53 - 1): text, as JSON readers would lose digits
        "line": "29999 diamonds",
        "spaced": " 29999",
        "plain": "5000",
        "literal": {"count": 3, "ratio": 0.5, "on": True, "off": False, "none": None},
        "nested": [1, {"name": "Lion", "count": 1}],
    }
    assert [type(v) for v in action.data.values()][:6] == [str, int, float, bool, bool, type(None)]


def test_a_data_expression_that_fails_at_run_time_drops_the_firing_and_is_counted():
    r = rules("""
  - id: broken
    on: gift
    do: [{say: "thanks"}, {alert: {text: x, data: {per_unit: "{{ event.total_diamonds / (event.count - 1) }}"}}}]
""")
    engine = Engine(r)
    assert run_events([gift(0, "Rose", 1, 1, "ana")], r, engine=engine) == []  # no say either: all or nothing
    assert engine.counters["rule_errors"] == 1 and engine.fired["broken"] == 0
    say, alert = run_events([gift(0, "Rose", 1, 3, "ana")], r)  # count 3: 3 / 2
    assert say.text == "thanks" and alert.data == {"per_unit": 1.5}


@pytest.mark.parametrize("attack, problem", [
    ("{{ cycler.__init__.__globals__ }}", "unknown variable 'cycler'"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "unknown variable 'lipsum'"),
    ("{{ config }}", "unknown variable 'config'"),
    ("{{ [1, 2, 3]|random }}", "unknown filter 'random'"),
    ("{{ user.nickname|attr('__class__')|evil }}", "unknown filter 'evil'"),
])
def test_a_sandbox_escape_in_a_data_expression_is_refused_at_load(attack, problem):
    with pytest.raises(RuleLoadError) as info:
        rules(f"  - id: attack\n    on: chat\n    do: [{{alert: {{text: x, data: {{v: \"{attack}\"}}}}}}]\n")
    assert all(p.startswith("<rules>:4:38: rule attack: in text: ") for p in info.value.problems)
    assert any(problem in p for p in info.value.problems)  # every problem at once


@pytest.mark.parametrize("attack, problem", [
    ("{{ ''.__class__.__mro__ }}", "'__class__' is not allowed"),
    ("{{ user.nickname.__class__.__base__ }}", "'__class__' is not allowed"),
    ("{{ (user|attr('__class__')).__name__ }}", "'__class__' is not allowed"),
    ("{{ user['_secret'] }}", "'_secret' is not allowed"),
    ("{{ 9 ** 9 ** 9 ** 9 }}", "power too large"),
    ("{{ 'a' * 10 ** 9 }}", "repeated sequence too long"),
    ("{{ 'a' * 100000000 }}", "repeated sequence too long"),
])
def test_a_private_name_or_a_huge_constant_is_refused_at_load(attack, problem):
    with pytest.raises(RuleLoadError) as info:
        rules(f"  - id: attack\n    on: chat\n    do: [{{alert: {{text: x, data: {{v: \"{attack}\"}}}}}}]\n")
    assert info.value.problems == [f"<rules>:4:38: rule attack: in text: {problem}" + (
        " (in a constant expression)" if "too" in problem else ": names starting with '_' are private")]


@pytest.mark.parametrize("attack", ["{{ user|attr(event.text) }}", "{{ 'a' * (event.text|length) * 10 ** 8 }}",
                                    "{{ 9 ** (event.text|length * 10) }}"])
def test_a_data_expression_the_sandbox_refuses_at_run_time_drops_the_firing(attack):
    r = rules(f"  - id: attack\n    on: chat\n    do: [{{alert: {{text: x, data: {{v: \"{attack}\"}}}}}}]\n")
    engine = Engine(r)
    assert run_events([chat(0, "__class__", "ana")], r, engine=engine) == []
    assert engine.counters["rule_errors"] == 1
