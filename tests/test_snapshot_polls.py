"""An open poll or quiz survives a restart (bot/engine/snapshot.py): votes, voters, deadline, texts."""

from __future__ import annotations

import orjson
import pytest

from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.engine.snapshot import restore, snapshot
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import chat, user

MOD = user("mod", is_moderator=True)

RULES = load_rules_text("""
rules:
  - id: game-poll
    command: "!poll"
    permission: moderator
    do:
      - incr: {var: polls}
      - poll:
          text: "Next game? 1 Minecraft, 2 Fortnite, 3 Just chatting"
          options: [Minecraft, Fortnite, Just chatting]
          duration: 60s
          result: >-
            {{ poll.winner }} wins with {{ poll.top }} of {{ poll.total }} votes{% if poll.tie %} (tie){% endif %},
            poll {{ vars.polls }} asked by {{ user.nickname }} ({{ user.vars.asked }}),
            bumps {{ vars.bumps | default(0) }}
  - id: bump
    command: "!bump"
    do: [{incr: {var: bumps}}]
  - id: me
    command: "!me"
    do: [{incr: {var: asked, per: user}}]
  - id: trivia
    command: "!trivia"
    permission: moderator
    do:
      - quiz:
          text: "Which planet is known as the Red Planet?"
          answer: [Mars, the red planet]
          duration: 30s
          win: "{{ winner.nickname }} got it: {{ quiz.answer }} (asked by {{ user.nickname }})"
          timeout: "Nobody? It was {{ quiz.answer }}. Asked by {{ user.nickname }}."
""")

# The same rules with the poll rule edited (another result text) and the quiz rule removed.
CHANGED = load_rules_text("""
rules:
  - id: game-poll
    command: "!poll"
    do:
      - poll:
          text: "Other?"
          options: [A, B]
          result: "NEW TEXT {{ poll.winner }}"
""")
GONE = load_rules_text("""
rules:
  - {id: hello, command: "!hello", do: [{say: hi}]}
""")

BEFORE = [chat(0, "!me", MOD), chat(0, "!poll", MOD), chat(1000, "1", "a"), chat(2000, "fortnite", "b"),
          chat(3000, "2", "c"), chat(3500, "!trivia", MOD), chat(4000, "venus", "a")]
AFTER = [chat(10_000, "3", "d"), chat(20_000, "!bump", "x"), chat(25_000, "!me", MOD),
         chat(30_000, "just chatting", "e"),
         chat(31_000, "!poll", MOD),  # still busy: one poll at a time, after the restart too
         chat(40_000, "JUST CHATTING!", "b")]  # b changes their vote
END = 70_000


def run(engine: Engine, events, until: int | None = None) -> list:
    clock = VirtualClock()
    out = [a for ev in events for a in engine.feed(ev, clock.set(ev.ts))]
    if until is not None:
        out += engine.advance(clock.set(until))
    return out + engine.close()


def travelled(engine: Engine) -> dict:
    """A snapshot as it comes back from the store."""
    return orjson.loads(orjson.dumps(snapshot(engine)))


def restarted(before, rules=RULES, **kwargs) -> Engine:
    a = Engine(RULES, **kwargs)
    run_open(a, before)
    b = Engine(rules, **kwargs)
    restore(b, travelled(a))
    return b


def run_open(engine: Engine, events) -> list:
    """Feed without closing (the process is killed after these)."""
    clock = VirtualClock()
    return [a for ev in events for a in engine.feed(ev, clock.set(ev.ts))]


@pytest.mark.parametrize("poll_update_ms", [0, 5000])
def test_an_open_poll_and_quiz_survive_a_restart_and_close_as_without_it(poll_update_ms):
    straight = Engine(RULES, poll_update_ms=poll_update_ms)
    run_open(straight, BEFORE)
    expected = run(straight, AFTER, END)

    b = restarted(BEFORE, poll_update_ms=poll_update_ms)
    assert b.poll is not None and b.poll.votes == {"id-a": 0, "id-b": 1, "id-c": 1}
    assert b.poll.opened == 0 and b.poll.ends == 60_000 and b.quiz is not None and b.quiz.ends == 33_500
    assert b.next_deadline() == (33_500 if not poll_update_ms else b.poll.update_due())
    got = run(b, AFTER, END)
    assert got == expected
    result = [a for a in got if a.kind == "poll_result"]
    assert [(a.ts, a.rule) for a in result] == [(60_000, "game-poll")]
    # vars and user.vars as they are at the close: the busy !poll still counted, !me and !bump came after.
    assert result[0].text == "Just chatting wins with 3 of 5 votes, poll 2 asked by mod (2), bumps 1"
    assert result[0].data["votes"] == {"Minecraft": 1, "Fortnite": 1, "Just chatting": 3}
    timeout = [a for a in got if a.rule == "trivia"]
    assert [(a.ts, a.kind, a.text) for a in timeout] == [(33_500, "say", "Nobody? It was Mars. Asked by mod.")]
    assert b.counters["poll_busy"] == straight.counters["poll_busy"] == 1
    if poll_update_ms:
        assert [a.kind for a in got].count("poll_update") >= 2


def test_a_restored_quiz_is_won_by_a_right_answer_as_before():
    after = [chat(10_000, "THE RED PLANET!", "z")]
    straight = Engine(RULES)
    run_open(straight, BEFORE)
    expected = run(straight, after)
    got = run(restarted(BEFORE), after)
    assert got == expected
    assert [(a.kind, a.text, a.user) for a in got if a.rule == "trivia"] == [
        ("shoutout", "z got it: Mars (asked by mod)", "z")]


def test_a_vote_repeated_after_a_restart_changes_the_vote_and_counts_once():
    after = [chat(10_000, "1", "a"), chat(11_000, "Minecraft", "a"), chat(12_000, "2", "c"), chat(13_000, "1", "c")]
    straight = Engine(RULES)
    run_open(straight, BEFORE)
    expected = run(straight, after, END)
    got = run(restarted(BEFORE), after, END)
    assert got == expected
    [result] = [a for a in got if a.kind == "poll_result"]
    assert result.data["total"] == 3 and result.data["votes"] == {"Minecraft": 2, "Fortnite": 1, "Just chatting": 0}


def test_a_deadline_passed_while_down_closes_at_the_first_advance():
    b = restarted(BEFORE)
    out = b.feed(chat(100_000, "hello", "late"), 100_000)
    assert [(a.ts, a.kind) for a in out] == [(33_500, "say"), (60_000, "poll_result")]
    assert b.poll is None and b.quiz is None and b.next_deadline() is None


def test_a_poll_whose_rule_changed_or_went_closes_with_its_own_texts_as_a_reload_would():
    for rules in (CHANGED, GONE):
        straight = Engine(RULES)
        run_open(straight, BEFORE)
        straight.replace_rules(rules, 5000)  # a reload without a restart keeps the open poll
        expected = run(straight, AFTER, END)
        got = run(restarted(BEFORE, rules), AFTER, END)
        assert got == expected
        busy = [(31_000, "say", "game-poll")] if rules is CHANGED else []  # a second !poll: chat is told
        assert [(a.ts, a.kind, a.rule) for a in got if a.kind in ("poll_result", "say")] == busy + [
            (33_500, "say", "trivia"), (60_000, "poll_result", "game-poll")]
        assert not any("NEW TEXT" in a.text for a in got)


def test_a_snapshot_without_polls_still_restores():
    a = Engine(RULES)
    run_open(a, BEFORE)
    old = travelled(a)
    del old["polls"]  # what the bot wrote before open polls were kept (version 1 too)
    assert old["version"] == 1
    b = Engine(RULES)
    restore(b, old)
    assert b.poll is None and b.quiz is None and b.next_deadline() is None
    assert b.state.counts == a.state.counts and b.state.vars == {"polls": 1}
    # No poll is open, so the !poll after the restart opens one.
    out = run(b, AFTER)
    assert [(a.ts, a.kind) for a in out] == [(31_000, "poll"), (91_000, "poll_result")]
    assert out[1].data["total"] == 1  # b's vote at 40 s, in the new poll
    c = Engine(RULES)
    old["polls"] = None
    restore(c, old)
    assert c.poll is None and c.quiz is None


def _damage(snap: dict, what: str) -> None:
    p, q = snap["polls"]["poll"], snap["polls"]["quiz"]
    if what == "polls":
        snap["polls"] = ["poll"]
    elif what == "poll":
        snap["polls"]["poll"] = "open"
    elif what == "options":
        p["options"] = 3
    elif what == "no options":
        p["options"] = []
    elif what == "vote":
        p["votes"]["id-z"] = 7  # an option the poll does not have
    elif what == "votes":
        p["votes"] = [["id-a", 0]]
    elif what == "ends":
        del p["ends"]
    elif what == "result":
        p["result"] = "{{ poll.winner"
    elif what == "context":
        p["context"] = "user"
    elif what == "link":
        p["links"] = {"user_vars": 5}
    elif what == "rule":
        q["rule"] = None
    elif what == "answers":
        q["answers"] = []
    elif what == "timeout":
        q["timeout"] = 12


@pytest.mark.parametrize("what", ["polls", "poll", "options", "no options", "vote", "votes", "ends", "result",
                                  "context", "link", "rule", "answers", "timeout"])
def test_a_damaged_polls_entry_is_refused(what):
    a = Engine(RULES)
    run_open(a, BEFORE)
    snap = travelled(a)
    _damage(snap, what)
    with pytest.raises(ValueError, match="damaged engine snapshot"):
        restore(Engine(RULES), snap)


def test_the_keeper_resumes_an_open_poll_from_the_store(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(RULES), 0)
    run_open(engine, BEFORE)
    keeper.save(engine, 5000)
    resumed = StateKeeper(store, "room").open(Engine(RULES), 6000)
    assert resumed.poll is not None and resumed.poll.votes == engine.poll.votes
    assert resumed.next_deadline() == 33_500
    store.close()


def test_a_context_that_is_not_plain_data_still_saves():
    a = Engine(RULES)
    run_open(a, BEFORE)
    a.poll.context["event"]["odd"] = (1, {2: object()}, 2**70)  # type: ignore[union-attr]
    snap = travelled(a)
    assert snap["polls"]["poll"]["context"]["event"]["odd"][0] == 1
    b = Engine(RULES)
    restore(b, snap)
    assert b.poll is not None
