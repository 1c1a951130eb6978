"""``livebot report``: numbers computed by hand on a small session, the engine's own numbers on the
demo, rule effects, terminal and HTML output (viewer text escaped), the CLI, the daemon hook, and
memory that does not grow with the number of events."""

from __future__ import annotations

import asyncio
import gc
import io
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from bot.cli import main
from bot.report import analyze_actions, analyze_session, write_report
from bot.report import fmt
from bot.report.html import render_compare_html, render_html
from bot.report.terminal import print_compare, print_report

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo-session.jsonl"
DEMO_ACTIONS = ROOT / "examples" / "demo-actions.golden.jsonl"
T0 = 1_763_665_200_000  # 2025-11-20T19:00:00Z, a whole second
XSS = "<img src=x onerror=alert(1)>"

USERS = {
    "ana": {"userId": "1", "uniqueId": "ana", "nickname": "Ana"},
    "bob": {"userId": "2", "uniqueId": "bob", "nickname": "Bob [red]x[/red]"},
    "cleo": {"userId": "3", "uniqueId": "cleo", "nickname": XSS},
}


def flat(event: str, t_ms: int, msg_id: str, who: str | None = None, **data) -> str:
    """A TikFinity / TikTok-Live-Connector v1 line."""
    base = dict(USERS[who]) if who else {}
    base.update(msgId=msg_id, createTime=str(T0 + t_ms))
    return orjson.dumps({"event": event, "data": {**base, **data}}).decode()


def gift(t_ms, msg_id, who, name, diamonds, count, gift_type, end, gift_id):
    return flat("gift", t_ms, msg_id, who, giftId=gift_id, giftName=name, diamondCount=diamonds, repeatCount=count,
                giftType=gift_type, repeatEnd=end)


def hand_session(path: Path) -> Path:
    """Three minutes written by hand. The numbers the tests expect are worked out beside each line."""
    lines = [
        # minute 0
        flat("roomUser", 0, "v1", viewerCount=10),                             # viewers 10 from 0 s
        flat("member", 1_000, "m1", "ana"),                                     # join
        flat("chat", 2_000, "c1", "ana", comment="hello"),                      # comment 1
        flat("like", 3_000, "l1", "ana", likeCount=5, totalLikeCount=5),        # likes 5
        gift(4_000, "g1", "ana", "Rose", 1, 1, 1, False, 5655),                 # streak frame (progress)
        gift(4_500, "g2", "ana", "Rose", 1, 3, 1, False, 5655),                 # streak frame (progress)
        gift(5_000, "g3", "ana", "Rose", 1, 6, 1, True, 5655),                  # streak end: ONE gift, 6 diamonds
        flat("chat", 10_000, "c2", "bob", comment="hi"),                        # comment 2
        flat("chat", 10_000, "c2", "bob", comment="hi"),                        # duplicate msgId: dropped
        '{"event": "chat", "data": {',                                          # malformed: counted, skipped
        flat("social", 20_000, "f1", "bob", displayType="pm_main_follow_message_viewer_2"),  # follow 1
        gift(30_000, "g4", "bob", "Galaxy", 1000, 1, 2, False, 11046),          # not streakable: 1,000 diamonds
        flat("roomUser", 40_000, "v2", viewerCount=20),                         # viewers 20 from 40 s (the peak)
        # minute 1
        flat("chat", 60_000, "c3", "cleo", comment="<b>bold</b><script>alert(2)</script>"),  # comment 3
        gift(65_000, "g5", "cleo", "Finger Heart", 5, 2, 1, False, 5487),       # its end never comes:
        flat("like", 80_000, "l2", "ana", likeCount=10, totalLikeCount=15),     # ... flushed at 70 s: 10 diamonds
        flat("social", 90_000, "f2", "cleo", displayType="pm_main_follow_message_viewer_2"),  # follow 2
        flat("social", 95_000, "f3", "cleo", displayType="pm_main_follow_message_viewer_2"),  # follow 3 (same viewer)
        gift(100_000, "g6", "ana", "Hand Hearts", 100, 1, 2, False, 5660),      # 100 diamonds
        flat("roomUser", 110_000, "v3", viewerCount=15),                        # viewers 15 from 110 s
        # minute 2
        flat("chat", 125_000, "c4", "bob", comment="bye"),                      # comment 4
        flat("social", 150_000, "s1", "ana", displayType="pm_mt_guidance_share"),  # share
        flat("streamEnd", 179_000, "e1"),                                       # the end: 2 min 59 s
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def action(t_ms: int, rule: str, kind: str = "say", event_id: str | None = None, **extra) -> str:
    return orjson.dumps({"ts": T0 + t_ms, "kind": kind, "text": "x", "rule": rule, "user": None,
                         "event_id": event_id, "data": extra}).decode()


def hand_actions(path: Path) -> Path:
    lines = [
        action(5_000, "thank-gift", event_id="g3"),       # window (5 s, 125 s]
        action(10_000, "follow-reminder", kind="cta"),    # a timer: window (10 s, 130 s]
        action(170_000, "thank-gift", event_id="g9"),     # window cut short at the end: (170 s, 179 s]
        action(290_000, "thank-gift", event_id="g10"),    # just after the end (a queued line): fired, not measured
        action(500_000, "thank-gift", event_id="g11"),    # past the end and a window: another stream's, left out
        action(20_000, "thank-gift", users=["a", "b"], merged=2),  # a merged line: no event id, not a timer
        "nope",                                           # malformed
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def session(tmp_path):
    return hand_session(tmp_path / "session.jsonl")


# -- the numbers, by hand ---------------------------------------------------------------------

def test_totals_computed_by_hand(session):
    s = analyze_session(session)
    assert s.lines == 23 and s.malformed == 1 and s.duplicates == 1
    assert s.streaks_flushed == 1  # Finger Heart
    assert s.started == T0 and s.ended == T0 + 179_000 and s.duration_ms == 179_000
    assert s.chats == 4
    assert s.likes == 15
    assert s.gifts == 4  # Rose streak once, Galaxy, Finger Heart (flushed), Hand Hearts
    assert s.gift_units == 6 + 1 + 2 + 1
    assert s.diamonds == 6 + 1000 + 10 + 100 == 1116
    assert s.counts["gift_progress"] == 3  # two Rose frames, one Finger Heart frame: never counted as gifts
    assert s.follows == 3 and s.new_followers == 2 and s.shares == 1 and s.joins == 1
    assert s.peak_viewers == 20 and s.peak_viewers_at == T0 + 40_000
    # 10 for 40 s, 20 for 70 s, 15 for 69 s, over 179 s
    assert s.average_viewers == pytest.approx((10 * 40 + 20 * 70 + 15 * 69) / 179)
    assert len(s.viewers_seen) == 3 and len(s.gifters) == 3


def test_earnings_estimate(session):
    s = analyze_session(session)
    assert s.earnings(0.005) == pytest.approx(5.58)
    assert fmt.money(s.earnings(0.005)) == "US$5.58"
    assert s.earnings(0.01) == pytest.approx(11.16)
    assert s.summary(0.005)["earnings"] == pytest.approx(5.58)


def test_top_gifters_and_gift_types(session):
    s = analyze_session(session)
    top = s.top_gifters(10)
    assert [(g["unique_id"], g["diamonds"], g["gifts"]) for g in top] == [("bob", 1000, 1), ("ana", 106, 2),
                                                                         ("cleo", 10, 1)]
    assert top[0]["share"] == pytest.approx(1000 / 1116)
    assert [(g.name, g.gifts, g.units, g.diamonds) for g in s.gifts_by_type()] == [
        ("Galaxy", 1, 1, 1000), ("Hand Hearts", 1, 1, 100), ("Finger Heart", 1, 2, 10), ("Rose", 1, 6, 6)]


def test_per_minute_counts(session):
    s = analyze_session(session)
    xs, cols = s.minute_series()
    assert xs == [0, 1, 2]
    assert cols["chats"] == [2, 1, 1]
    assert cols["likes"] == [5, 10, 0]
    assert cols["gifts"] == [2, 2, 0]  # Rose and Galaxy; the flushed Finger Heart (at 70 s) and Hand Hearts
    assert cols["diamonds"] == [1006, 110, 0]
    assert cols["follows"] == [1, 2, 0]
    assert cols["shares"] == [0, 0, 1]
    assert cols["viewers_max"] == [20, 15, 15]  # minute 2 had no report: the last count carries over
    # viewer actions: join, 2 comments, like, 2 gifts, follow | comment, gift, like, 2 follows, gift | comment, share
    assert cols["activity"] == [7, 6, 2]
    assert [m["minute"] for m in s.busiest_minutes(5)] == [0, 1, 2]


def test_a_streak_counts_once_with_its_final_count(tmp_path):
    lines = [gift(i * 200, f"r{i}", "ana", "Rose", 1, i, 1, i == 9, 5655) for i in range(1, 10)]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    s = analyze_session(path)
    assert (s.gifts, s.gift_units, s.diamonds, s.counts["gift_progress"]) == (1, 9, 9, 8)


def test_other_wire_formats_give_the_same_numbers(session, tmp_path):
    """Our normalized JSONL (as the daemon records) and gzip read the same."""
    import gzip

    from bot.events.wire import decode_line

    normalized = tmp_path / "normalized.jsonl"
    with open(normalized, "wb") as f:
        for line in session.read_bytes().splitlines():
            try:
                for ev in decode_line(line):
                    f.write(orjson.dumps(ev.to_dict(with_raw=False)) + b"\n")
            except ValueError:
                f.write(line + b"\n")  # the broken line stays broken
    zipped = tmp_path / "session.jsonl.gz"
    zipped.write_bytes(gzip.compress(session.read_bytes()))
    want = analyze_session(session).summary(0.005)
    assert analyze_session(normalized).summary(0.005) == want
    assert analyze_session(zipped).summary(0.005) == want


def test_an_euler_bundle_with_a_broken_message(tmp_path):
    bundle = {"timestamp": T0, "messages": [
        {"type": "WebcastChatMessage", "data": {"common": {"msgId": "1", "createTime": str(T0)},
                                                "user": {"userId": "9", "uniqueId": "zed", "nickname": "Zed"},
                                                "content": "hey"}},
        {"type": "WebcastGiftMessage", "data": "not an object"},
    ]}
    path = tmp_path / "euler.jsonl"
    path.write_bytes(orjson.dumps(bundle) + b"\n")
    s = analyze_session(path)
    assert s.chats == 1 and s.malformed_messages == 1 and s.malformed == 0


def test_the_same_numbers_as_the_engine_on_the_demo_session():
    """The report folds and drops exactly as the engine does before rules: same totals, same leaderboard."""
    from bot.actions.dispatcher import Dispatcher
    from bot.engine.core import Engine
    from bot.engine.loader import load_rules
    from bot.runner import replay
    from bot.sources.replay import ReplaySource

    engine = Engine(load_rules(ROOT / "rules"))
    result = asyncio.run(replay(ReplaySource(DEMO), engine, Dispatcher([])))
    s = analyze_session(DEMO)
    st = engine.state
    assert (s.diamonds, s.likes, s.peak_viewers) == (st.diamonds, st.likes, st.peak_viewers)
    assert {k: v for k, v in s.counts.items()} == {k: v for k, v in st.counts.items() if v and k != "top_gifter"}
    assert (s.duplicates, s.streaks_flushed, s.malformed) == \
        (result.duplicates, result.streaks_flushed, result.malformed)
    assert [(g["unique_id"], g["diamonds"]) for g in s.top_gifters(10)] == \
        [(g["unique_id"], g["diamonds"]) for g in engine.board.top(10)]
    assert len(s.viewers_seen) == len(st.viewers_by_key)


# -- rule effects -------------------------------------------------------------------------------

def test_what_followed_each_rule_by_hand(session, tmp_path):
    s = analyze_session(session)
    a = analyze_actions(hand_actions(tmp_path / "actions.jsonl"), s)
    assert (a.total, a.malformed, a.outside) == (5, 1, 1)  # 7 lines: one malformed, one left out
    reminder = a.rules["follow-reminder"]
    assert reminder.fired == 1 and reminder.trigger == "timer"
    # (10 s, 130 s]: follows at 20, 90, 95 s; comments at 60, 125 s (the one at 10 s is not after);
    # diamonds: Galaxy 1,000 at 30 s, Finger Heart 10 flushed at 70 s, Hand Hearts 100 at 100 s
    assert reminder.looked_ms == 120_000
    assert reminder.after == [3, 2, 1110]
    assert reminder.after_per_window(120_000) == pytest.approx([3, 2, 1110])
    # the base rate: the session's totals over its 179 s, per 2 minutes
    assert a.base == pytest.approx([3 / 179_000 * 120_000, 4 / 179_000 * 120_000, 1116 / 179_000 * 120_000])
    thanks = a.rules["thank-gift"]
    assert thanks.fired == 4 and thanks.trigger == "event"  # the merged line has no event id but is no timer
    # (5, 125] → follows at 20, 90, 95; comments at 10, 60, 125; diamonds 1,000 + 10 + 100
    # (20, 140] → follows at 90, 95 (not the one at 20 s); comments at 60, 125; diamonds 1,000 + 10 + 100
    # (170, 179] → nothing; at 290 s → after the end: nothing to look at
    assert thanks.looked_ms == 120_000 + 120_000 + 9_000
    assert thanks.after == [3 + 2, 3 + 2, 1110 + 1110]


def test_rule_table_in_the_html_says_how_it_is_counted(session, tmp_path):
    s = analyze_session(session)
    a = analyze_actions(hand_actions(tmp_path / "actions.jsonl"), s)
    html = render_html(s, a)
    assert "follow-reminder" in html and "How this is counted" in html
    assert "association" in html and "not cause" in html
    assert "1.49×" in html  # 3 follows after vs 3 / 179 s × 120 s = 2.01 per 2 min: 1.49×


# -- output ---------------------------------------------------------------------------------------

def test_terminal_summary_shows_viewer_text_as_typed(session):
    s = analyze_session(session)
    buf = io.StringIO()
    print_report(s, rate=0.005, out=Console(file=buf, width=140, color_system=None))
    out = buf.getvalue()
    assert "1,116" in out and "US$5.58" in out and "Top gifters" in out
    assert "Bob [red]x[/red]" in out  # not parsed as rich markup
    assert XSS in out


def test_terminal_strips_control_characters():
    assert fmt.plain("a\x1b[2Jb\x07c") == "a[2Jbc"


def test_html_escapes_viewer_text_and_is_self_contained(session):
    html = render_html(analyze_session(session))
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert XSS not in html
    assert "<script" not in html and "alert(2)" not in html  # comments are not shown at all
    assert "Bob [red]x[/red]" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched
    assert html.count('src="data:image/png;base64,') == 4
    assert "estimate" in html.lower() and "US$0.005" in html


def test_an_empty_session_still_makes_a_report(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    s = analyze_session(path)
    assert s.duration_ms == 0 and s.diamonds == 0
    html = render_html(s)
    assert "No events in this session" in html
    print_report(s, out=Console(file=io.StringIO()))


def test_compare_two_sessions(session, tmp_path):
    other = tmp_path / "b.jsonl"
    other.write_text("\n".join([
        flat("roomUser", 0, "v1", viewerCount=30),
        gift(1_000, "g1", "ana", "Galaxy", 1000, 2, 2, False, 11046),
        flat("chat", 2_000, "c1", "ana", comment="yo"),
        flat("streamEnd", 60_000, "e1"),
    ]) + "\n")
    a, b = analyze_session(session), analyze_session(other)
    rows = {r["label"]: r for r in fmt.compare_rows(a.summary(0.005), b.summary(0.005))}
    assert rows["Diamonds"]["a"] == "1,116" and rows["Diamonds"]["b"] == "2,000"
    assert rows["Diamonds"]["change"] == "+884 (+79%)"
    assert rows["Comments"]["change"] == "−3 (−75%)"
    assert rows["Peak viewers"]["change"] == "+10 (+50%)"
    assert rows["Estimated earnings"]["change"] == "+US$4.42 (+79%)"
    buf = io.StringIO()
    print_compare(a, b, out=Console(file=buf, width=140, color_system=None))
    assert "+884 (+79%)" in buf.getvalue()
    html = render_compare_html(a, b)
    assert "+884 (+79%)" in html and "&lt;img src=x onerror=alert(1)&gt;" in html and XSS not in html


# -- the command and the daemon hook -------------------------------------------------------------

def test_cli_report_writes_html(session, tmp_path, capsys):
    out = tmp_path / "r" / "report.html"
    out.parent.mkdir()  # (a missing folder is refused: tests/test_startup_errors.py)
    actions = hand_actions(tmp_path / "actions.jsonl")
    assert main(["report", str(session), "--actions", str(actions), "--html", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1,116" in captured.out and "follow-reminder" in captured.out
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left behind


def test_cli_compare_and_usage_errors(session, tmp_path, capsys):
    assert main(["report", str(session), str(session), "--html", str(tmp_path / "c.html")]) == 0
    assert "Sessions compared" in capsys.readouterr().out
    assert main(["report", str(session), str(session), str(session)]) == 2
    assert main(["report", str(session), "--actions", str(session), "--actions", str(session)]) == 2
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["report", str(session), "--rate", "-1"]) == 2


def test_cli_as_a_process(session, tmp_path):
    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "bot", "report", str(session), "--html", str(out), "--rate", "0.01"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "US$11.16" in proc.stdout
    assert "malformed_line" in proc.stderr  # the broken line is logged with its number
    assert out.exists()


def test_write_report_for_the_daemon(session, tmp_path):
    out = tmp_path / "reports" / "live.html"
    stats = write_report(session, hand_actions(tmp_path / "a.jsonl"), out)
    assert stats.diamonds == 1116
    html = out.read_text(encoding="utf-8")
    assert "follow-reminder" in html and "US$5.58" in html
    write_report(session, None, out, rate=0.01, currency="€")  # again, over it
    assert "€11.16" in out.read_text(encoding="utf-8")


# -- bounded memory -----------------------------------------------------------------------------

def synthetic_lines(n: int, minutes: int = 30, viewers: int = 300, seed: int = 1):
    """``n`` flat lines spread evenly over ``minutes``: comments, likes, joins, follows, viewer
    counts and gift streaks (one in fifty ends without its end frame), ``viewers`` distinct viewers."""
    rng = random.Random(seed)
    people = [{"userId": str(1000 + i), "uniqueId": f"u{i}", "nickname": f"viewer {i}"} for i in range(viewers)]
    step = minutes * 60_000 / n
    streak: list = [None, 0]  # who, count: one streak at a time, its frames a few lines apart
    for i in range(n):
        ts = T0 + int(i * step)
        who = people[rng.randrange(viewers)]
        r = rng.random()
        d = {**who, "msgId": str(10_000_000 + i), "createTime": str(ts)}
        if r < 0.3:
            obj = {"event": "like", "data": {**d, "likeCount": rng.randint(1, 15), "totalLikeCount": i}}
        elif r < 0.55:
            obj = {"event": "chat", "data": {**d, "comment": f"message {i}"}}
        elif r < 0.75:
            obj = {"event": "member", "data": d}
        elif r < 0.78:
            obj = {"event": "social", "data": {**d, "displayType": "pm_main_follow_message_viewer_2"}}
        elif r < 0.80:
            obj = {"event": "roomUser", "data": {"viewerCount": rng.randint(50, 500), "msgId": d["msgId"],
                                                "createTime": d["createTime"]}}
        else:
            if streak[0] is None:
                streak[0] = who
            who, count = streak[0], streak[1] + 1
            end = count >= 5
            streak[:] = [None, 0] if end else [who, count]
            if end and rng.random() < 0.02:
                end = False  # a lost end frame: flushed later
            obj = {"event": "gift", "data": {**d, **who, "giftId": 5655, "giftName": "Rose", "diamondCount": 1,
                                             "giftType": 1, "repeatCount": count, "repeatEnd": end}}
        yield orjson.dumps(obj)


def _peak(path: Path):
    gc.collect()
    tracemalloc.start()
    try:
        stats = analyze_session(path, dedup_window=10_000)
        return tracemalloc.get_traced_memory()[1], stats
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_events(tmp_path):
    """The same 30 minutes and 300 viewers with 20,000 and with 200,000 events: the peak of traced
    memory is about the same. (The duplicate filter keeps at most ``dedup_window`` message ids —
    500,000 by default, as in the engine — so a small window is used here to see past it; what
    grows with the session's length, the per-minute and per-second rows, is the same in both.)"""
    warm, small, big = tmp_path / "warm.jsonl", tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    for path, n in ((warm, 2_000), (small, 20_000), (big, 200_000)):
        with open(path, "wb") as f:
            for line in synthetic_lines(n):
                f.write(line + b"\n")
    analyze_session(warm)  # warm the decoder's user cache with the 300 viewers before measuring
    (peak_small, _), (peak_big, stats) = _peak(small), _peak(big)
    print(f"traced peak: {peak_small:,} bytes for 20,000 events, {peak_big:,} for 200,000")
    assert peak_big < peak_small * 1.5 + 512 * 1024, (peak_small, peak_big)
    assert stats.gifts > 5_000 and 0 < stats.streaks_flushed < stats.gifts / 20 and 30 <= len(stats.minutes) <= 31


# -- issue 14, item 12 ------------------------------------------------------------------------------

def test_report_on_a_binary_file_says_so_and_exits_1(tmp_path, capsys):
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(bytes(range(256)) * 40)
    assert main(["report", str(binary)]) == 1
    err = capsys.readouterr().err
    assert f"{binary}: not a session recording: none of its" in err and "(first: line 1: not JSON" in err


def test_report_on_lines_of_blank_events_says_so_and_exits_1(tmp_path, capsys):
    blanks = tmp_path / "blanks.jsonl"
    blanks.write_text('{"event": "gift", "data": null}\n{"event": "chat"}\n{"event": "like", "data": {}}\n')
    assert main(["report", str(blanks)]) == 1
    err = capsys.readouterr().err
    assert "none of its 3 line(s) is an event" in err and "a gift line without a gift id" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["report", str(empty)]) == 1
    assert "no events in this file" in capsys.readouterr().err


def test_replay_of_a_binary_file_exits_1(tmp_path, capsys):
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\xff" * 500 + b"\n" + b"\x89PNG" * 10)
    assert main(["replay", str(binary), "--quiet"]) == 1
    assert "not a session recording" in capsys.readouterr().err


# -- issue 14, item 14 ------------------------------------------------------------------------------

def test_a_38_second_session_has_a_viewer_chart_that_shows_its_viewers(tmp_path, monkeypatch):
    from bot.report import charts

    path = tmp_path / "short.jsonl"
    path.write_text("\n".join([flat("roomUser", 0, "v1", viewerCount=12), flat("chat", 5_000, "c1", "ana", comment="hi"),
                               flat("roomUser", 20_000, "v2", viewerCount=30),
                               flat("streamEnd", 38_000, "e1")]) + "\n")
    figures = []
    monkeypatch.setattr(charts, "_uri", lambda fig: figures.append(fig) or "data:")
    stats = analyze_session(path)
    assert charts.session_charts(stats)["viewers"] == "data:"
    ax = figures[0].axes[0]
    assert ax.get_xlim() == (0.0, 1.0)  # the minute it lasted, not -0.5…0.5 around a point
    [line] = ax.get_lines()
    assert list(line.get_xdata()) == [0, 1] and list(line.get_ydata()) == [30, 30]  # a line, not a point


def test_the_followers_list_shows_each_unique_id(tmp_path):
    path = tmp_path / "f.jsonl"
    quinn1 = {"userId": "7", "uniqueId": "quinn_a", "nickname": "Quinn"}
    quinn2 = {"userId": "8", "uniqueId": "quinn_b", "nickname": "Quinn"}
    lines = [orjson.dumps({"event": "follow", "data": {**q, "msgId": f"f{i}", "createTime": str(T0 + i * 1000)}}).decode()
             for i, q in enumerate((quinn1, quinn2))]
    path.write_text("\n".join(lines) + "\n")
    stats = analyze_session(path)
    html = render_html(stats)
    assert "@quinn_a" in html and "@quinn_b" in html
    out = io.StringIO()
    print_report(stats, None, out=Console(file=out, width=200))
    assert "Quinn (@quinn_a), Quinn (@quinn_b)" in out.getvalue()


@pytest.mark.parametrize("a, b, counts, expected", [
    (100, 95, False, None), (100, 101, False, None), (100, 95, True, None), (100, 101, True, None),
    (100, 130, False, True), (100, 70, False, False),
    (10, 13, True, None),       # +30 %, but 3 more in counts of ten is noise
    (100, 200, True, True), (200, 100, True, False), (None, 5, True, None), (0, 50, True, True),
])
def test_only_notable_changes_are_coloured(a, b, counts, expected):
    assert fmt.notable(a, b, counts) is expected


def test_near_even_comparisons_are_not_coloured():
    from bot.report.html import _ratio

    assert _ratio(0.95, 1.0) == ("0.95×", "") and _ratio(1.01, 1.0) == ("1.01×", "")
    assert _ratio(0.5, 1.0)[1] == "down" and _ratio(2.0, 1.0)[1] == "up"
    sa = {key: 100 for _, key, _ in fmt.metrics()}
    rows = {r["label"]: r for r in fmt.compare_rows(sa, {**sa, "comments": 101, "likes": 400})}
    assert rows["Comments"]["up"] is None and rows["Likes"]["up"] is True
