"""Replay end to end: file → source → engine → sinks, at any speed, through the CLI too."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from bot.actions.dispatcher import Dispatcher
from bot.cli import main
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.runner import replay
from bot.sources.replay import ReplaySource
from bot.testing import CaptureSink

T0 = 1_763_665_200_000  # 2025-11-20T19:00:00Z


def flat(event: str, t_ms: int, msg_id: str, **data) -> str:
    """A TikFinity / TikTok-Live-Connector v1 line."""
    base = {"userId": "1", "uniqueId": "ana", "nickname": "Ana", "msgId": msg_id, "createTime": str(T0 + t_ms)}
    return orjson.dumps({"event": event, "data": {**base, **data}}).decode()


RULES = """
rules:
  - id: tick
    every: 1s
    when: since.chat >= 1
    do: [{cta: "tick {{ since.chat }}"}]
  - id: thank
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: hi
    on: chat
    do: [{say: "hi {{ event.text }}"}]
"""


def short_session(path):
    """Three seconds of stream: chats, a gift streak, a lost streak end, a duplicate, a broken line."""
    lines = [
        flat("chat", 0, "1", comment="hello"),
        flat("gift", 200, "2", giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=1, repeatEnd=False),
        flat("gift", 500, "3", giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=3, repeatEnd=False),
        flat("gift", 800, "4", giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=4, repeatEnd=True),
        flat("chat", 1500, "5", comment="again"),
        flat("chat", 1500, "5", comment="again"),  # reconnect backlog: same msgId
        '{"event": "chat", "data": {',  # truncated
        flat("gift", 1700, "6", uniqueId="bob", userId="2", nickname="Bob", giftId=5487, giftName="Finger Heart",
             diamondCount=5, giftType=1, repeatCount=2, repeatEnd=False),  # its end frame never comes
        flat("chat", 2900, "7", comment="bye"),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(path, speed):
    sink = CaptureSink()
    dispatcher = Dispatcher([sink])
    engine = Engine(load_rules_text(RULES), streak_silence_ms=1000)
    source = ReplaySource(path)
    result = asyncio.run(replay(source, engine, dispatcher, speed=speed))
    return sink.actions, result


def test_replay_folds_streaks_drops_duplicates_and_skips_broken_lines(tmp_path):
    actions, result = run(short_session(tmp_path / "s.jsonl"), None)
    assert [(a.ts - T0, a.rule, a.text) for a in actions] == [
        (0, "hi", "hi hello"),
        (800, "thank", "thanks Ana for 4x Rose"),
        (1000, "tick", "tick 1"),
        (1500, "hi", "hi again"),
        (2000, "tick", "tick 1"),
        (2700, "thank", "thanks Bob for 2x Finger Heart"),  # flushed after 1 s of silence
        (2900, "hi", "hi bye"),
    ]
    assert result.malformed == 1 and result.duplicates == 1 and result.streaks_flushed == 1


def test_timers_fire_at_the_same_virtual_times_at_any_speed(tmp_path):
    path = short_session(tmp_path / "s.jsonl")
    fast, _ = run(path, None)
    started = time.monotonic()
    real, _ = run(path, 1.0)  # real time: the session lasts 2.9 s
    elapsed = time.monotonic() - started
    scaled, _ = run(path, 10.0)
    assert [a.to_dict() for a in real] == [a.to_dict() for a in fast] == [a.to_dict() for a in scaled]
    assert elapsed >= 2.5  # it really was paced, not replayed at full speed


def test_cli_replay_prints_actions_and_a_summary(tmp_path, capsys):
    session = short_session(tmp_path / "s.jsonl")
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    out = tmp_path / "actions.jsonl"
    assert main(["replay", str(session), "--rules", str(rules), "--out", str(out), "--streak-silence", "1s"]) == 0
    captured = capsys.readouterr()
    assert "thanks Ana for 4x Rose" in captured.out
    assert len(captured.out.splitlines()) == 7
    summary = captured.err.strip().splitlines()[-1]
    assert summary.startswith("events read: 8 (")
    assert "actions: 9 (" in summary and "malformed lines skipped: 1" in summary and "duplicates dropped: 1" in summary
    assert "leaderboard 2" in summary  # the overlay's updates, as `livebot run` makes them (not printed)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(records) == 9
    records = [r for r in records if r["kind"] != "leaderboard"]
    assert len(records) == 7
    assert set(records[0]) == {"ts", "kind", "text", "rule", "user", "event_id", "data"}
    assert records[1] == {"ts": T0 + 800, "kind": "say", "text": "thanks Ana for 4x Rose", "rule": "thank",
                          "user": "ana", "event_id": "4", "data": {}}


def test_the_replay_summary_counts_lossy_events(tmp_path, capsys):
    """A like without its total, a gift without its diamonds: decoded (their other fields are real),
    and counted as lossy in the summary; a complete line is not."""
    session = tmp_path / "s.jsonl"
    session.write_text("\n".join([
        flat("like", 0, "1", likeCount=3),
        flat("gift", 100, "2", giftId=5655, giftName="Rose", giftType=2, repeatCount=1, repeatEnd=False),
        flat("chat", 200, "3", comment="complete"),
    ]) + "\n")
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    assert main(["replay", str(session), "--rules", str(rules), "--quiet"]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "events read: 3 (" in summary and "lossy events: 2;" in summary


def test_cli_replay_refuses_bad_rules_and_missing_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    on: gfit\n    do: [{say: hi}]\n")
    session = short_session(tmp_path / "s.jsonl")
    assert main(["replay", str(session), "--rules", str(bad)]) == 1
    assert f"{bad}:3:9: rule x: unknown event type 'gfit' (did you mean 'gift'?)" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--rules", str(bad)]) == 2


@pytest.mark.parametrize("speed", ["0", "-1", "fast"])
def test_cli_rejects_bad_speeds(speed, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["replay", "x.jsonl", "--rules", "rules", "--speed", speed])
    assert info.value.code == 2


DEMO = "examples/demo-session.jsonl"


def test_the_demo_replays_to_its_golden_actions(capsys):
    assert main(["replay", DEMO, "--rules", "rules/", "--quiet", "--check", "examples/demo-actions.golden.jsonl"]) == 0
    assert "golden check passed" in capsys.readouterr().err


def test_a_changed_rule_fails_the_golden_check_with_a_diff(tmp_path, capsys):
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree("rules", rules)
    gifts = rules / "gifts.yaml"
    gifts.write_text(gifts.read_text().replace("Thank you {{ user.nickname }} for", "Thanks {{ user.nickname }} for"))
    assert main(["replay", DEMO, "--rules", str(rules), "--quiet", "--check", "examples/demo-actions.golden.jsonl"]) == 1
    err = capsys.readouterr().err
    assert '-{"ts":' in err and '"text":"Thanks ' in err and "golden check FAILED" in err


def test_demo_gifts_are_counted_once_per_streak():
    """Count the demo's gifts independently of the engine: streak ends, lost streaks, single gifts."""
    from bot.testing import ruleset, run_file
    from bot.engine.core import Engine

    seen, gifts, diamonds, open_streaks = set(), 0, 0, {}
    for line in open(DEMO, "rb"):
        try:
            obj = orjson.loads(line)
            d = obj["data"]
            if obj["event"] != "gift" or d["msgId"] in seen or not isinstance(d["giftId"], int):
                continue
        except (orjson.JSONDecodeError, KeyError):
            continue
        seen.add(d["msgId"])
        key = (d["userId"], d["giftId"], d["groupId"])
        if d["giftType"] == 1 and not d["repeatEnd"]:
            open_streaks[key] = (d["repeatCount"], d["diamondCount"])
            continue
        open_streaks.pop(key, None)
        gifts, diamonds = gifts + 1, diamonds + d["repeatCount"] * d["diamondCount"]
    gifts += len(open_streaks)  # never ended: flushed after silence
    diamonds += sum(c * dia for c, dia in open_streaks.values())
    engine = Engine(ruleset("rules"))
    run_file(DEMO, "rules", engine=engine)
    assert (engine.state.counts["gift"], engine.state.diamonds) == (gifts, diamonds)
    assert engine.streaks.flushed >= 1


def test_lifetime_totals_carry_over_between_replays_with_state(tmp_path, capsys):
    session = short_session(tmp_path / "s.jsonl")
    rules = tmp_path / "r.yaml"
    rules.write_text("""rules:
  - id: total
    on: gift
    do: [{say: "{{ user.nickname }}: {{ user.lifetime.diamonds }} over {{ user.lifetime.sessions }} sessions"}]
""")
    state = tmp_path / "state.json"
    out = []
    for _ in range(2):
        assert main(["replay", str(session), "--rules", str(rules), "--state", str(state), "--quiet",
                     "--out", str(tmp_path / "a.jsonl")]) == 0
        out.append([r["text"] for x in (tmp_path / "a.jsonl").read_bytes().splitlines()
                    if (r := orjson.loads(x))["rule"] == "total"])
    assert out == [["Ana: 4 over 1 sessions", "Bob: 10 over 1 sessions"],
                   ["Ana: 8 over 2 sessions", "Bob: 20 over 2 sessions"]]
    state.write_text("not json")
    assert main(["replay", str(session), "--rules", str(rules), "--state", str(state), "--quiet"]) == 1
    assert "cannot read the state file" in capsys.readouterr().err


def test_python_dash_m_bot_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bot", "validate", "rules/"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("ok: 20 rules in 5 file(s)")
