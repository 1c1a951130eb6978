"""``livebot report`` counts battles (won / lost / draw, the diamonds received during each) and
envelopes (how many, coins and diamonds), in the terminal and in the HTML report. The numbers
are worked out by hand beside each line of a session written in our normalized JSONL."""

from __future__ import annotations

import io
import re
from pathlib import Path

import orjson
from rich.console import Console

from bot.cli import main
from bot.report import analyze_session
from bot.report.html import render_html
from bot.report.terminal import print_report

T0 = 1_763_665_200_000
XSS = "<img src=x onerror=alert(1)>"
ANA = {"user_id": "1", "unique_id": "ana", "nickname": "Ana"}
BOB = {"user_id": "2", "unique_id": "bob", "nickname": "Bob"}


def ev(kind: str, t_ms: int, msg_id: str, user: dict | None = None, **data) -> str:
    return orjson.dumps({"type": kind, "ts": T0 + t_ms, "msg_id": msg_id, "user": user, "data": data}).decode()


def gift(t_ms: int, msg_id: str, user: dict, diamonds: int, count: int = 1) -> str:
    return ev("gift", t_ms, msg_id, user, gift_id=1, name="Rose" if diamonds == 1 else "Galaxy", diamonds=diamonds,
              count=count, gift_type=2, streak_end=False)


def creator(name: str) -> dict:
    return {"user_id": f"c-{name}", "unique_id": name, "nickname": name.title()}


def session(path: Path) -> Path:
    lines = [
        gift(1_000, "g0", ANA, 1000),                                           # before any battle: not counted in one
        # battle 1: won, 5 + 100 diamonds during it (a duplicate message dropped), MVP Ana
        ev("battle_start", 10_000, "b1s", None, battle_id="B1", opponents=[creator("rival")], duration_s=300),
        gift(20_000, "g1", ANA, 1, 5),                                          # 5
        gift(30_000, "g2", BOB, 100),                                           # 100
        gift(30_000, "g2", BOB, 100),                                           # duplicate msg_id: dropped
        ev("battle_update", 40_000, "b1u", None, battle_id="B1", our_score=400, their_score=100, time_left_s=20),
        ev("battle_end", 60_000, "b1e", None, battle_id="B1", our_score=500, their_score=120, winner="us",
           mvp={**ANA, "score": 300}, top=[{**ANA, "score": 300}, {**BOB, "score": 200}]),
        ev("battle_end", 60_500, "b1e2", None, battle_id="B1", our_score=500, their_score=120, winner="us",
           mvp=None, top=[]),                                                   # TikTok repeats the end: once
        gift(61_000, "g3", ANA, 1000),                                          # between battles: not counted
        # battle 2: lost, no gifts during it; the opponent's name is viewer-made text
        ev("battle_start", 120_000, "b2s", None, battle_id="B2", opponents=[{**creator("x"), "nickname": XSS}],
           duration_s=300),
        ev("battle_end", 180_000, "b2e", None, battle_id="B2", our_score=0, their_score=900, winner="them",
           mvp=None, top=[]),
        # battle 3: no winner given: the scores say draw; 1 diamond during it
        ev("battle_start", 200_000, "b3s", None, battle_id="B3", opponents=[creator("pal")], duration_s=60),
        gift(210_000, "g4", BOB, 1),
        ev("battle_end", 260_000, "b3e", None, battle_id="B3", our_score=70, their_score=70, winner="",
           mvp=None, top=[]),
        # battle 4: the recording began after its start (first seen at an update) and it never ended
        ev("battle_update", 300_000, "b4u", None, battle_id="B4", our_score=10, their_score=30, time_left_s=100),
        gift(310_000, "g5", ANA, 100, 2),                                       # 200
        # envelopes: 2, worth 300 coins and 50 diamonds in all
        ev("envelope", 320_000, "e1", BOB, coins=100, diamonds=0, people=10),
        ev("envelope", 330_000, "e2", ANA, coins=200, diamonds=50, people=5),
        ev("live_end", 340_000, "end"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_battles_and_envelopes_counted_by_hand(tmp_path):
    stats = analyze_session(session(tmp_path / "s.jsonl"))
    co = stats.collabs
    assert (co.battle_count, co.won, co.lost, co.draws, co.unfinished) == (4, 1, 1, 1, 1)
    assert [b.outcome for b in co.battles] == ["won", "lost", "draw", "unfinished"]
    assert [b.diamonds for b in co.battles] == [105, 0, 1, 200]
    assert [b.gifts for b in co.battles] == [2, 0, 1, 1]
    assert co.battle_diamonds == 306 and stats.diamonds == 2306
    assert [(b.our_score, b.their_score) for b in co.battles] == [(500, 120), (0, 900), (70, 70), (10, 30)]
    assert [b.seen_start for b in co.battles] == [True, True, True, False]
    assert (co.battles[0].mvp, co.battles[0].mvp_score, co.battles[0].opponents) == ("Ana", 300, ["Rival"])
    assert (co.envelopes, co.envelope_coins, co.envelope_diamonds) == (2, 300, 50)


def test_a_session_without_battles_has_no_battle_section(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(gift(1_000, "g0", ANA, 5) + "\n")
    stats = analyze_session(path)
    assert stats.collabs.battle_count == 0 and stats.collabs.envelopes == 0
    out = io.StringIO()
    print_report(stats, out=Console(file=out, width=160, color_system=None))
    assert "Battles" not in out.getvalue() and "Envelopes" not in out.getvalue()
    assert "<h2>Battles</h2>" not in render_html(stats) and "<h2>Envelopes</h2>" not in render_html(stats)


def test_terminal_report_shows_battles_and_envelopes(tmp_path):
    stats = analyze_session(session(tmp_path / "s.jsonl"))
    out = io.StringIO()
    print_report(stats, out=Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "Battles: 4 (1 won, 1 lost, 1 draw, 1 unfinished); 306 diamonds received during battles" in text
    rows = {line.split()[0]: line for line in text.splitlines() if re.match(r"\s*[1-4]\s+\+", line)}
    rows = {k: " ".join(v.split()) for k, v in rows.items()}
    assert rows["1"] == "1 +00:09 Rival won 500 : 120 105 2 Ana"
    assert rows["2"].startswith("2 +01:59 " + XSS + " lost 0 : 900 0 0")
    assert rows["3"] == "3 +03:19 Pal draw 70 : 70 1 1 –"
    assert rows["4"] == "4 +04:59 (joined late) – unfinished 10 : 30 200 1 –"
    assert "Envelopes (treasure chests): 2, worth 300 coins and 50 diamonds." in text


def test_html_report_shows_battles_and_envelopes_escaped(tmp_path):
    html = render_html(analyze_session(session(tmp_path / "s.jsonl")))
    assert "<h2>Battles</h2>" in html
    assert "4 battles: 1 won, 1 lost,\n1 draw, 1 unfinished;\n306 diamonds received during battles." in html
    assert "<td>won</td>" in html and "<td>lost</td>" in html and "<td>draw</td>" in html
    assert '<td class="n">500 : 120</td><td class="n">105</td>' in html
    assert "<bdi>Ana</bdi> (300)" in html
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "2 envelopes (treasure chests), worth 300 coins and 50 diamonds." in html


def test_cli_report_with_battles(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(session(tmp_path / "s.jsonl")), "--html", str(out)]) == 0
    assert "Battles: 4 (1 won, 1 lost, 1 draw, 1 unfinished)" in capsys.readouterr().out
    assert "<h2>Battles</h2>" in out.read_text(encoding="utf-8")


def test_battle_messages_without_an_id_or_after_the_end_start_no_phantom_battle(tmp_path):
    """Euler v1's armies carry no battle id; TikTok repeats a battle's last messages after its end."""
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([
        ev("battle_start", 0, "s1", None, battle_id="B1", opponents=[], duration_s=300),
        ev("battle_update", 10_000, "u1", None, battle_id="", our_score=5, their_score=1, time_left_s=-1),
        gift(20_000, "g1", ANA, 1, 5),
        ev("battle_end", 300_000, "e1", None, battle_id="", our_score=9, their_score=1, winner="us", mvp=None, top=[]),
        ev("battle_end", 300_500, "e2", None, battle_id="B1", our_score=9, their_score=1, winner="us", mvp=None,
           top=[]),                                                             # the same end, with its id
        ev("battle_armies", 301_000, "a1", None, battle_id="", our_score=9, their_score=1, top=[]),  # late
        ev("battle_update", 302_000, "u2", None, battle_id="B1", our_score=9, their_score=1, time_left_s=0),
        # much later, an update without an id and no start seen: a battle we joined late
        ev("battle_update", 900_000, "u3", None, battle_id="", our_score=0, their_score=7, time_left_s=40),
    ]) + "\n")
    co = analyze_session(path).collabs
    assert [(b.battle_id, b.outcome, b.our_score, b.diamonds, b.seen_start) for b in co.battles] == [
        ("B1", "won", 9, 5, True), ("", "unfinished", 0, 0, False)]
    assert (co.battle_count, co.won, co.unfinished) == (2, 1, 1)


def test_one_battle_and_one_envelope_are_said_in_the_singular(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([
        ev("battle_start", 0, "s1", None, battle_id="B1", opponents=[], duration_s=60),
        ev("battle_end", 60_000, "e1", None, battle_id="B1", our_score=1, their_score=1, winner="draw", mvp=None,
           top=[]),
        ev("envelope", 70_000, "v1", ANA, coins=50, diamonds=0, people=3),
    ]) + "\n")
    html = render_html(analyze_session(path))
    assert "1 battle: 0 won, 0 lost,\n1 draw;" in html and "1 envelope (treasure chests), worth 50 coins." in html


def test_compare_lines_up_battles_and_envelopes(tmp_path, capsys):
    quiet = tmp_path / "quiet.jsonl"
    quiet.write_text(gift(1_000, "g0", ANA, 5) + "\n")
    busy = session(tmp_path / "busy.jsonl")
    assert main(["report", str(quiet), str(busy), "--html", str(tmp_path / "c.html")]) == 0
    lines = [" ".join(x.split()) for x in capsys.readouterr().out.splitlines()]
    assert "Battles 0 4 +4" in lines and "Battles won 0 1 +1" in lines and "Battles lost 0 1 +1" in lines
    assert "Diamonds during battles 0 306 +306" in lines and "Envelopes 0 2 +2" in lines
    html = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert '<td>Battles lost</td><td class="n">0</td><td class="n">1</td>\n<td class="n down">+1</td>' in html
    # two sessions without any: no such rows
    assert main(["report", str(quiet), str(quiet)]) == 0
    assert "Battles" not in capsys.readouterr().out
