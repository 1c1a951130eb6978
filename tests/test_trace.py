"""The engine's trace: why each rule fired or the first reason it did not (virtual time, no I/O)."""

from __future__ import annotations

from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.engine.trace import Tracer
from bot.events.model import Event, User
from bot.testing import chat, event, gift

RULES = """
settings:
  chat:
    per_minute: 2
    burst: 1
rules:
  - id: big
    on: gift
    priority: 10
    when: event.total_diamonds >= 100
    stop: true
    do:
      - say: "Wow {{ user.nickname }}!"
  - id: thanks
    on: gift
    cooldown: 30s
    do:
      - say: "Thanks {{ user.nickname }}"
  - id: per_user
    on: gift
    cooldown: { user: 10s }
    do:
      - alert: "{{ user.nickname }}"
  - id: hello
    command: "!hello"
    do:
      - say: "Hi {{ user.nickname }}"
  - id: welcome
    on: chat
    once: user
    do:
      - alert: "welcome {{ user.nickname }}"
  - id: mods
    on: chat
    permission: moderator
    do:
      - alert: "mod said {{ event.text }}"
  - id: tiered
    on: follow
    tier_by: stats.follows
    tiers:
      - min: 5
        do:
          - alert: "5 follows"
  - id: tick
    every: 1m
    min_chat: 3
    do:
      - cta: "follow!"
"""


def traced(rules: str = RULES, size: int = 100) -> tuple[Engine, Tracer]:
    engine = Engine(load_rules_text(rules))
    return engine, Tracer(size).attach(engine)


def outcome(tracer: Tracer, record: tuple, rule: str) -> str:
    lines = tracer.lines_for(record, rule)
    assert len(lines) == 1, lines
    return lines[0].split(": ", 1)[1]


def test_each_rule_gets_fired_or_its_first_reason():
    engine, tracer = traced()
    tracer.start = 0
    engine.feed(gift(0, "Rose", 1, 1, "cleo"), 0)
    engine.feed(gift(1000, "Rose", 1, 1, "cleo"), 1000)
    engine.feed(gift(2000, "Lion", 500, 1, "dan"), 2000)
    first, second, third = [r for r in tracer if r[2] is not None and r[2].type == "gift"]
    assert outcome(tracer, first, "big") == "`when` false: event.total_diamonds=1"
    assert outcome(tracer, first, "thanks").startswith("fired (say)")
    assert outcome(tracer, first, "per_user") == "fired (alert)"
    assert outcome(tracer, second, "thanks") == "cooldown 29s left"
    assert outcome(tracer, second, "per_user") == "per-user cooldown 9s left"
    assert tracer.lines_for(second, "thanks") == ["00:01.000 gift cleo: cooldown 29s left"]
    assert outcome(tracer, third, "big").startswith("fired (say)")
    assert outcome(tracer, third, "thanks") == "stopped by big's stop"
    assert engine.suppressed["thanks", "cooldown"] == 1
    assert engine.suppressed["thanks", "stopped"] == 1
    assert engine.suppressed["big", "when"] == 2


def test_once_permission_trigger_tier_and_budget():
    engine, tracer = traced()
    engine.feed(chat(0, "hi", "ana"), 0)
    engine.feed(chat(100, "!hello", "ana"), 100)
    engine.feed(chat(200, "!hello", "bob"), 200)
    engine.feed(event("follow", 300, "eve"), 300)
    a, b, c, d = list(tracer)[-4:]
    assert outcome(tracer, a, "hello") == "trigger not matched: not !hello"
    assert outcome(tracer, a, "welcome") == "fired (alert)"
    assert outcome(tracer, a, "mods") == "permission: moderator only"
    assert outcome(tracer, b, "welcome") == "once per user: already fired for this viewer"
    assert outcome(tracer, b, "hello").startswith("fired (say) [say: sent]")
    assert outcome(tracer, c, "hello").startswith("fired (say) [say: queued (")
    assert outcome(tracer, d, "tiered") == "tier not reached: 1.0 < 5"
    engine.advance(31_000)  # the queued line goes out when the budget allows
    assert "sent after" in outcome(tracer, c, "hello")


def test_timers_are_traced():
    engine, tracer = traced()
    engine.advance(0)
    engine.advance(60_000)
    record = list(tracer)[-1]
    assert record[0] == "timer"
    assert outcome(tracer, record, "tick") == "min_chat: 0 of 3 chat lines since it last fired"
    assert engine.suppressed["tick", "min_chat"] == 1


def test_the_ring_buffer_is_bounded():
    engine, tracer = traced(size=10)
    for i in range(50):
        engine.feed(chat(i * 10, "hi", f"v{i}"), i * 10)
    assert len(tracer.records) == 10
    assert len(tracer.notes) <= tracer.notes.maxlen


def test_paused_rules_are_skipped_and_traced():
    engine, tracer = traced()
    engine.pause({"welcome"})
    assert engine.feed(chat(0, "hi", "ana"), 0) == []
    assert outcome(tracer, list(tracer)[-1], "welcome") == "paused"
    engine.pause(set())
    assert [a.rule for a in engine.feed(chat(10, "hi", "bob"), 10)] == ["welcome"]


def test_a_test_event_fires_marked_and_counts_for_nothing():
    engine, tracer = traced()
    ev = gift(0, "Rose", 1, 1, "cleo")
    ev.data["test"] = True
    actions = engine.feed(ev, 0)
    assert actions and all(a.data.get("test") is True for a in actions)
    assert engine.state.diamonds == 0 and engine.state.lifetime_snapshot() == {}


def test_untraced_engine_records_nothing_but_counts():
    engine = Engine(load_rules_text(RULES))
    engine.feed(gift(0, "Rose", 1, 1, "cleo"), 0)
    assert engine._trace is None
    assert engine.suppressed["big", "when"] == 1


# -- livebot test and livebot replay --why ------------------------------------------------------

WHY_RULES = """rules:
  - id: big
    on: gift
    when: event.total_diamonds >= 100
    do: [{say: "wow {{ user.nickname }}"}]
  - id: thanks
    on: gift
    cooldown: 30s
    do: [{say: "thanks {{ user.nickname }}"}]
"""


def test_a_failing_rule_test_shows_the_expected_rules_trace(tmp_path):
    from bot.ruletests import run_paths

    (tmp_path / "r.yaml").write_text(WHY_RULES)
    (tmp_path / "t.yaml").write_text("""rules: r.yaml
tests:
  - name: big gift
    events: [{at: 600ms, type: gift, user: ana, diamonds: 1}]
    expect: [{rule: big}]
""")
    lines: list[str] = []
    assert run_paths([tmp_path / "t.yaml"], out=lines.append) == 1
    out = "\n".join(lines)
    assert "      not fired at 00:00.600: `when` false: event.total_diamonds=1" in out


def test_replay_why_prints_one_line_per_event_considered(tmp_path, capsys):
    import orjson

    from bot.cli import main

    (tmp_path / "r.yaml").write_text(WHY_RULES)
    t0 = 1_767_225_600_000
    session = tmp_path / "s.jsonl"
    lines = []
    for i, (at, who, diamonds) in enumerate([(0, "ana", 1), (1000, "cleo", 5), (2000, "bob", 500)]):
        lines.append(orjson.dumps({"type": "gift", "ts": t0 + at, "msg_id": f"g{i}",
                                   "user": {"unique_id": who, "nickname": who},
                                   "data": {"name": "Rose", "diamonds": diamonds, "count": 1, "gift_type": 2}}))
    lines.append(orjson.dumps({"type": "chat", "ts": t0 + 3000, "msg_id": "c1",
                               "user": {"unique_id": "dan", "nickname": "dan"}, "data": {"text": "hi"}}))
    session.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["replay", str(session), "--rules", str(tmp_path / "r.yaml"), "--why", "thanks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["00:00.000 gift ana: fired (say)", "00:01.000 gift cleo: cooldown 29s left",
                   "00:02.000 gift bob: cooldown 28s left"]
    assert main(["replay", str(session), "--rules", str(tmp_path / "r.yaml"), "--why"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "00:00.000 gift ana big: `when` false: event.total_diamonds=1" in out
    assert "00:02.000 gift bob big: fired (say)" in out
    assert main(["replay", str(session), "--rules", str(tmp_path / "r.yaml"), "--why", "thank"]) == 2


def test_a_policy_note_shows_with_the_firing_that_made_the_action():
    engine, tracer = traced()
    tracer.start = 0
    actions = engine.feed(chat(0, "hi", "ana"), 0)
    tracer.note(actions[0], "policy", "masked 1 word")
    record = list(tracer)[-1]
    assert tracer.render(record)["rules"][1]["actions"][0]["budget"] == ["policy: masked 1 word"]
    assert "[alert: policy: masked 1 word]" in tracer.lines_for(record, "welcome")[0]


def test_the_report_leaves_test_events_out(tmp_path):
    import orjson

    from bot.report.stats import analyze_session

    t0 = 1_767_225_600_000
    lines = [{"type": "gift", "ts": t0 + i, "msg_id": f"g{i}", "user": {"unique_id": who, "nickname": who},
              "data": {"name": "Lion", "diamonds": d, "count": 1, "gift_type": 2, **({"test": True} if test else {})}}
             for i, (who, d, test) in enumerate([("ana", 5, False), ("tester", 29999, True)])]
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    stats = analyze_session(path)
    assert stats.test_events == 1 and stats.diamonds == 5


async def test_suppression_counts_are_for_the_process_and_go_on_across_a_stream_end():
    """/metrics counters are cumulative (issue 14): a live_end starts a fresh engine, not fresh counts."""
    import asyncio

    from bot.actions.dispatcher import LiveDispatcher
    from bot.clock import VirtualClock
    from bot.control.metrics import registry_for, render
    from bot.live import LiveRunner
    from bot.sources.queue import stamp
    from bot.testing import ruleset

    class Script:
        name = "script"

        async def run(self, queue, clock, stop):
            for i, kind in enumerate(("gift", "live_end", "gift")):
                user = User(user_id="u1", unique_id="ann", nickname="ann") if kind == "gift" else None
                data = {"gift_id": 1, "name": "Rose", "diamonds": 1, "count": 1, "gift_type": 2} if kind == "gift" else {}
                stamp(queue, clock, Event(kind, 1_000 + i, msg_id=f"m{i}", user=user, data=data))

    rules = ruleset("rules:\n  - id: big\n    on: gift\n    when: event.total_diamonds >= 1000\n"
                    "    do: [{say: big}]\n")
    runner = LiveRunner([Script()], Engine(rules), LiveDispatcher([]), clock=VirtualClock(1_000))
    first = runner.engine
    await asyncio.wait_for(runner.run(), 10)
    assert runner.engine is not first  # the stream ended: a fresh engine
    text = render(registry_for(runner)).decode()
    assert 'livebot_rule_suppressed_total{reason="when",rule="big"} 2.0' in text


T = 1_700_000_000_000


def test_a_false_when_keeps_the_values_it_read_then_and_no_event_is_kept_with_its_payload():
    rules = load_rules_text("""
rules:
  - id: count
    on: chat
    do:
      - incr: { var: lines, by: 1 }
  - id: third
    on: chat
    when: vars.lines >= 3 and event.text != "stop"
    do:
      - say: "three"
""")
    engine = Engine(rules)
    tracer = Tracer().attach(engine)
    tracer.start = T
    like = Event("like", T + 5, msg_id="l1", user=User(user_id="1", unique_id="ann", nickname="Ann"),
                 data={"count": 3, "total": 3})
    engine.feed(chat(T, "hi", "ann"), T)
    engine.feed(like, T + 5)
    engine.feed(chat(T + 10, "yo", "bob"), T + 10)
    like.raw = {"a payload": "x" * 2000}
    # no rule could trigger it: only what the trace shows of it, never the Event and its raw payload
    assert tracer.records[1] == ("like", T + 5, "l1", like.user, like.data)
    assert all(record[2] is None or record[2].raw is None for record in tracer)
    lines = [line for record in tracer for line in tracer.lines_for(record, "third")]
    # each line shows what the condition read at its time (vars.lines 1, then 2), not what it is now
    assert lines == ["00:00.000 chat ann: `when` false: vars.lines=1, event.text='hi'",
                     "00:00.010 chat bob: `when` false: vars.lines=2, event.text='yo'"], lines
    assert tracer.render(tracer.find("l1"))["event"]["user"] == {"unique_id": "ann", "nickname": "Ann"}
    assert [r["rules"] for r in map(tracer.render, tracer)][1] == []
