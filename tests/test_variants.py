"""CTA variants: the loader's checks, the engine's seeded pick (the same in every replay and across a
restart, recorded in the action), and ``livebot report --variants`` counting follows, shares and
diamonds after each variant with honest intervals, over one session or several."""

from __future__ import annotations

import math

import orjson
import pytest

from bot.cli import main
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.engine.snapshot import restore, snapshot
from bot.report.stats import analyze_session
from bot.report.variants import analyze_variants, render_variants_html, t95
from bot.testing import chat, run_events

T = 1_767_225_600_000

RULES = """
rules:
  - id: rot
    every: 1m
    do:
      - cta: {variants: ["A {{ stats.chats }}", "B", "C"], data: {x: 1}}
  - id: draw
    every: 1m
    do:
      - say: {variants: ["x", "y"], pick: draw}
"""


def test_rotation_goes_in_turn_and_a_draw_is_the_same_in_every_run_and_recorded():
    first = run_events([chat(T, "hi", "a")], RULES, until=T + 20 * 60_000)
    again = run_events([chat(T, "hi", "a")], RULES, until=T + 20 * 60_000)
    rot = [a for a in first if a.rule == "rot"]
    assert [a.data["variant"] for a in rot] == [i % 3 for i in range(20)]
    assert [a.text for a in rot[:4]] == ["A 1", "B", "C", "A 1"]
    assert rot[0].data == {"x": 1, "variant": 0, "variants": 3}
    drawn = [a.data["variant"] for a in first if a.rule == "draw"]
    assert drawn == [a.data["variant"] for a in again if a.rule == "draw"]
    assert set(drawn) == {0, 1}  # (20 draws of two: both come up)
    assert drawn != [i % 2 for i in range(20)]  # a draw, not a rotation


def test_the_pick_carries_on_across_a_restart():
    rules = load_rules_text(RULES)
    straight = run_events([chat(T, "hi", "a")], rules, until=T + 10 * 60_000)
    engine = Engine(rules)
    out = engine.feed(chat(T, "hi", "a"), T) + engine.advance(T + 4 * 60_000)
    again = Engine(rules)
    restore(again, orjson.loads(orjson.dumps(snapshot(engine))))
    again.advance(T + 4 * 60_000)  # (the timers start again from the restart: feed them the same time)
    out += again.advance(T + 10 * 60_000) + again.close()
    picks = [(a.rule, a.data["variant"]) for a in out]
    assert picks[:8] == [(a.rule, a.data["variant"]) for a in straight][:8]


@pytest.mark.parametrize("body, message", [
    ('{text: "a", variants: ["b", "c"]}', "5:15: rule r: give 'text' or 'variants', not both"),
    ('{variants: ["only one"]}', "5:25: rule r: 'variants' is a list of 2 to 20 texts"),
    ('{variants: ["a", "b"], pick: random}', "5:43: rule r: 'pick' is 'rotate' (in turn) or 'draw'"),
    ('{variants: ["a", "{{ user.nicknam }}"]}', "5:31: rule r: in text: unknown field"),
])
def test_bad_variants_are_load_errors_with_their_position(body, message):
    with pytest.raises(RuleLoadError) as err:
        load_rules_text(f"rules:\n  - id: r\n    on: chat\n    do:\n      - say: {body}\n", "r.yaml")
    assert err.value.problems[0].startswith("r.yaml:" + message)


# -- the report ------------------------------------------------------------------------------------

def _session(path, start, follows, shares, gifts, end):
    lines = [{"type": "chat", "ts": start, "msg_id": "s", "user": {"user_id": "1", "unique_id": "a"},
              "data": {"text": "hi"}}]
    for i, ts in enumerate(follows):
        lines.append({"type": "follow", "ts": ts, "msg_id": f"f{i}", "user": {"user_id": f"f{i}"}, "data": {}})
    for i, ts in enumerate(shares):
        lines.append({"type": "share", "ts": ts, "msg_id": f"s{i}", "user": {"user_id": f"s{i}"}, "data": {}})
    for i, (ts, diamonds) in enumerate(gifts):
        lines.append({"type": "gift", "ts": ts, "msg_id": f"g{i}", "user": {"user_id": f"g{i}"},
                      "data": {"name": "Lion", "diamonds": diamonds, "count": 1, "gift_type": 2, "gift_id": 1}})
    lines.append({"type": "live_end", "ts": end, "msg_id": "end", "user": None, "data": {}})
    lines.sort(key=lambda d: d["ts"])
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    return path


def _actions(path, shown):
    path.write_bytes(b"".join(orjson.dumps({"ts": ts, "kind": "cta", "text": text, "rule": "fr", "user": None,
                                            "event_id": None, "data": {"variant": v, "variants": 2}}) + b"\n"
                              for ts, v, text in shown) + b"not json\n")
    return path


def test_follows_shares_and_diamonds_after_each_variant_with_a_t_interval(tmp_path):
    m = 60_000
    session = _session(tmp_path / "s.jsonl", T, follows=[T + 30_000, T + 31_000, T + m + 10_000, T + 5 * m + 1000],
                       shares=[T + 5 * m + 2000], gifts=[(T + 5 * m + 3000, 500)], end=T + 10 * m)
    shown = [(T, 0, "Follow! <b>"), (T + m, 0, "Follow! <b>"), (T + 5 * m, 1, "New here?"),
             (T + 7 * m, 1, "New here?"), (T + 10 * m - 1000, 1, "New here?")]  # the last: cut by the end
    actions = _actions(tmp_path / "a.jsonl", shown)
    report = analyze_variants([(analyze_session(session), actions)], 120_000)
    [(rule, kind, (a, b))] = report.rules()
    assert (rule, kind) == ("fr", "cta")
    assert a.values == [(3, 0, 0), (1, 0, 0)]  # (the first window holds 0:30, 0:31 and 1:10)
    assert b.values == [(1, 1, 500), (0, 0, 0)] and b.cut == 1 and b.shown == 3
    low, high = a.interval(0)
    half = t95(1) * math.sqrt(2 / 2)  # mean 2, sample variance 2, n 2
    assert (low, high) == pytest.approx((max(0, 2 - half), 2 + half))
    assert report.malformed == 1
    html = render_variants_html(report)
    assert "Follow! &lt;b&gt;" in html and "<b>" not in html
    assert "Association, not proof." in html


def test_several_sessions_are_pooled_and_the_cli_checks_its_arguments(tmp_path, capsys):
    m = 60_000
    s1 = _session(tmp_path / "s1.jsonl", T, follows=[T + 10_000], shares=[], gifts=[], end=T + 10 * m)
    s2 = _session(tmp_path / "s2.jsonl", T + 86_400_000, follows=[T + 86_400_000 + 20_000], shares=[], gifts=[],
                  end=T + 86_400_000 + 10 * m)
    a1 = _actions(tmp_path / "a1.jsonl", [(T, 0, "A"), (T + 3 * m, 1, "B")])
    a2 = _actions(tmp_path / "a2.jsonl", [(T + 86_400_000, 0, "A"), (T + 86_400_000 + 3 * m, 1, "B")])
    html = tmp_path / "v.html"
    assert main(["report", str(s1), str(s2), "--actions", str(a1), "--actions", str(a2), "--variants",
                 "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "CTA variants over 2 session(s)" in out and "Association, not proof" in out
    assert html.read_text().count("<tr>") == 3  # the head and one row per variant
    report = analyze_variants([(analyze_session(s1), a1), (analyze_session(s2), a2)])
    assert [len(v.sessions) for v in report.groups.values()] == [2, 2]
    assert report.groups[("fr", "cta", 0)].values == [(1, 0, 0), (1, 0, 0)]
    assert main(["report", str(s1), str(s2), "--actions", str(a1), "--variants"]) == 2


def test_an_interval_of_counts_is_never_narrower_than_the_exact_poisson_interval():
    from bot.report.variants import Variant, poisson95

    # Garwood's exact 95% limits (published tables): 0 → 0–3.689, 4 → 1.090–10.242, 10 → 4.795–18.390
    assert poisson95(0) == pytest.approx((0, 3.689), abs=1e-3)
    assert poisson95(4) == pytest.approx((1.090, 10.242), abs=1e-3)
    assert poisson95(10) == pytest.approx((4.795, 18.390), abs=1e-3)
    assert poisson95(5000)[0] == pytest.approx(5000 - 1.96 * 5000 ** 0.5, rel=1e-3)
    # two firings with 0 follows, 0 shares and 0 diamonds after each: the data say little, not "exactly 0"
    v = Variant("r", "cta", 0, values=[(0, 1, 0), (0, 1, 0)])
    assert v.interval(0) == pytest.approx((0, 3.689 / 2), abs=1e-3)
    low, high = v.interval(1)  # 1 share after each: 2 in all over 2 windows
    assert low < 1 < high and (low, high) == pytest.approx((0.242 / 2, 7.225 / 2), abs=1e-3)
    assert v.interval(2) is None  # diamonds without any spread: no interval (shown as too few)
