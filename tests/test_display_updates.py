"""Display updates are not rule firings: the report's rule table leaves out the overlay's goals, subathon
clock and the per-gift sounds of ``settings: sounds:`` (as it does the leaderboard), while a rule's own
``- sound:`` stays a firing of that rule; the console prints none of goal, timer or sound."""

from __future__ import annotations

import io
from pathlib import Path

from bot.actions.dispatcher import Dispatcher
from bot.actions.model import Action
from bot.cli import main
from bot.sinks.console import ConsoleSink

ROOT = Path(__file__).resolve().parent.parent


def _rule_rows(capsys, actions: Path) -> list[str]:
    assert main(["report", str(ROOT / "examples" / "demo-session.jsonl"), "--actions", str(actions)]) == 0
    out = capsys.readouterr().out
    table = out.split("Rules:", 1)[1].split("Base rate", 1)[0]
    rows = [line.split() for line in table.splitlines()[1:]]
    return [row[0] for row in rows if row and row[0] != "Rule" and not row[0].startswith(("─", "━", "-"))]


def test_the_rule_table_leaves_out_display_updates(tmp_path, capsys):
    for pack, shown in (("sounds", ["follow-sound", "gift-sound-tiers"]), ("goals", ["goal-reached"])):
        out = tmp_path / f"{pack}.jsonl"
        assert main(["replay", str(ROOT / "examples" / "demo-session.jsonl"), "--rules",
                     str(ROOT / "rules" / "examples" / f"{pack}.yaml"), "--out", str(out), "--quiet"]) == 0
        capsys.readouterr()
        text = out.read_text()
        assert '"rule":"sounds"' in text.replace(" ", "") or pack != "sounds"  # the per-gift sounds were there
        assert sorted(_rule_rows(capsys, out)) == sorted(shown)


async def test_the_console_prints_no_display_update():
    stream = io.StringIO()
    dispatcher = Dispatcher([ConsoleSink(stream)])
    await dispatcher.dispatch([Action(1000, "goal", "Likes: 5 / 10", "goals"), Action(1000, "timer", "59:00", "subathon"),
                               Action(1000, "sound", "rose.mp3", "sounds", "ana"),
                               Action(1000, "sound", "big.mp3", "tier", "ana"),
                               Action(1000, "say", "Thanks ana", "thanks", "ana")])
    await dispatcher.close()
    assert [line.split()[1] for line in stream.getvalue().splitlines()] == ["say"]
