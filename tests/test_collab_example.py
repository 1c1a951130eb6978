"""The shipped collaboration example (examples/collab-session.jsonl, TikTok-Live-Connector 2.x lines
made by bench/collabgen.py): it is what the script makes, every line decodes, the starter pack
replays it to exactly its golden actions, and those say what rules/collabs.yaml is for."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from bot.cli import main
from bot.events.wire import decode_line
from bot.report import analyze_session

ROOT = Path(__file__).resolve().parent.parent
SESSION = ROOT / "examples" / "collab-session.jsonl"
GOLDEN = ROOT / "examples" / "collab-actions.golden.jsonl"

sys.path.insert(0, str(ROOT / "bench"))
from collabgen import DEFAULT_START, generate  # noqa: E402


def test_the_example_is_what_the_script_makes():
    from datetime import datetime, timezone

    start = int(datetime.fromisoformat(DEFAULT_START).astimezone(timezone.utc).timestamp() * 1000)
    assert SESSION.read_bytes() == b"".join(line + b"\n" for line in generate(start))


def test_every_line_decodes_to_known_events():
    kinds = []
    for line in SESSION.read_bytes().splitlines():
        obj = orjson.loads(line)
        assert set(obj) == {"event", "data"} and "common" in obj["data"]  # TLC 2.x objects
        kinds += [ev.type for ev in decode_line(line)]
    assert "unknown" not in kinds
    for kind in ("cohost_join", "cohost_leave", "battle_start", "battle_update", "battle_end", "envelope", "live_end"):
        assert kind in kinds
    assert kinds.count("battle_start") == kinds.count("battle_end") == 2 and kinds[-1] == "live_end"


def test_the_starter_pack_replays_the_example_to_its_golden_actions(capsys):
    assert main(["replay", str(SESSION), "--rules", str(ROOT / "rules"), "--quiet", "--check", str(GOLDEN)]) == 0
    err = capsys.readouterr().err
    assert "golden check passed" in err and "malformed lines skipped: 0" in err and "rule errors: 0" in err
    assert "lossy events: 0" in err  # every field the decoder expects is there


def test_the_golden_actions_greet_announce_rally_celebrate_and_thank():
    actions = [orjson.loads(x) for x in GOLDEN.read_bytes().splitlines()]
    collab = [(a["rule"], a["kind"], a["text"]) for a in actions
              if a["rule"].startswith(("battle-", "greet-cohost")) and a["kind"] != "alert"]
    assert collab == [
        ("greet-cohost", "say", "Welcome Mia 🎤 to the live! So glad you're here 🎉"),
        ("battle-start", "say", "⚔️ Battle time with Rex 🦖! Let's have some fun, everyone! 🔥"),
        ("battle-rally", "say", "⏱️ 25 seconds left and it's close! Win or lose, this room is the best. Let's go! 🔥"),
        ("battle-win", "say", "🏆 We won the battle, 1,671 to 1,660! What a team, thank you all! 🎉"),
        ("battle-mvp", "shoutout", "👑 Battle MVP: Ana 🌸! Thank you so much for the support! 💜"),
        # the second battle's opponent's name is printed as typed (data, never markup or a template)
        ("battle-start", "say", "⚔️ Battle time with <b>Zed</b>{{7*7}}! Let's have some fun, everyone! 🔥"),
        ("battle-rally", "say", "⏱️ 20 seconds left and it's close! Win or lose, this room is the best. Let's go! 🔥"),
        ("battle-mvp", "shoutout", "👑 Battle MVP: Dev! Thank you so much for the support! 💜"),
    ]


def test_the_report_counts_the_examples_battles_and_envelope():
    co = analyze_session(SESSION).collabs
    assert (co.battle_count, co.won, co.lost, co.draws) == (2, 1, 1, 0)
    assert [(b.our_score, b.their_score, b.diamonds, b.mvp) for b in co.battles] == [
        (1671, 1660, 1671, "Ana 🌸"), (393, 3400, 393, "Dev")]  # in this script our score is the diamonds received
    assert (co.envelopes, co.envelope_coins) == (1, 200)
