"""The self-contained HTML report: inline CSS, charts as embedded PNGs, no scripts, nothing fetched.

Rendered with a Jinja2 environment that autoescapes everything: nicknames, comments and gift
names are viewer-supplied, so ``<img src=x onerror=alert(1)>`` shows as text."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from bot import __version__
from bot.report import fmt
from bot.report.collabs import compare_rows as collab_compare_rows
from bot.report.effects import MEASURES, ActionStats, RuleStats
from bot.report.stats import SessionStats

FOLLOWERS_SHOWN = 60

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["num"] = fmt.num
_env.filters["duration"] = fmt.duration
_env.filters["offset"] = fmt.offset
_env.filters["clock"] = fmt.clock
_env.filters["percent"] = fmt.percent

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --card:#f9fafb; --accent:#6d28d9; --warn:#92400e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; }
@media (max-width: 900px) { .cards { grid-template-columns: repeat(3, 1fr); } }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
.card .v { font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums; white-space: nowrap; }
.card .k { color: var(--muted); font-size: 12.5px; }
.card.money { border-color: #c4b5fd; background: #f5f3ff; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
.estimate { background: #fffbeb; border: 1px solid #fde68a; color: var(--warn); border-radius: 8px;
            padding: 8px 12px; margin: 14px 0 0; font-size: 13.5px; }
figure { margin: 8px 0 0; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: baseline; }
th { font-weight: 600; color: var(--muted); font-size: 12.5px; text-transform: uppercase; letter-spacing: .02em; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.who { overflow-wrap: anywhere; }
td.rule { white-space: nowrap; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
th.group { text-align: center; border-bottom: 1px solid var(--line); }
table.narrow { width: auto; min-width: 420px; }
.id { color: var(--muted); font-size: 12.5px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
@media (max-width: 760px) { .grid2 { grid-template-columns: 1fr; } }
.up { color: #047857; } .down { color: #b91c1c; }
.follow-list { columns: 2 180px; font-size: 14px; padding-left: 18px; margin: 6px 0; }
.method { font-size: 13.5px; color: #374151; background: var(--card); border-left: 3px solid var(--accent);
          padding: 8px 12px; margin: 10px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
<body>
<main>
{{ body }}
<footer>Made by livebot {{ version }} · times in UTC · gift streaks counted once with their final count,
duplicate messages dropped, as the rules see them.</footer>
</main>
</body>
</html>
"""

_PAGE = _env.from_string(PAGE)

SINGLE = """
<h1>Session report</h1>
<p class="sub"><span class="file">{{ name }}</span> · {{ s.started | clock(true) }} – {{ s.ended | clock }}
 · {{ s.duration_ms | duration }}</p>

<div class="cards">
{% for c in cards %}
  <div class="card{% if c.get("money") %} money{% endif %}"><div class="v">{{ c.value }}</div><div class="k">{{ c.label }}</div></div>
{% endfor %}
</div>
<p class="estimate"><strong>Estimated earnings are an estimate, not a payout:</strong>
{{ s.diamonds | num }} diamonds × {{ rate }} per diamond = {{ earnings }}.
What TikTok actually pays depends on region, agreements, fees and exchange rates.</p>

<h2>Viewers over time</h2>
{% if charts.viewers %}
<figure><img src="{{ charts.viewers }}" alt="Viewers over time">
<figcaption>The highest viewer count TikTok reported in each minute. Peak {{ s.peak_viewers | num }}
{% if s.peak_viewers_at is not none %}at {{ (s.peak_viewers_at - s.started) | offset }}{% endif %};
average {{ summary.average_viewers | num }} (weighted by how long each count stood).</figcaption></figure>
{% else %}<p class="note">No viewer counts in this session.</p>{% endif %}

<h2>Comments, likes and gifts per minute</h2>
{% if charts.activity %}
<figure><img src="{{ charts.activity }}" alt="Comments, likes and gifts per minute">
<figcaption>Likes are taps added up; a gift streak counts once, in the minute it ended. The last minute may be
partial.</figcaption></figure>
{% else %}<p class="note">No events in this session.</p>{% endif %}

<h2>Diamonds over time</h2>
{% if charts.diamonds %}
<figure><img src="{{ charts.diamonds }}" alt="Diamonds per minute and running total">
<figcaption>Diamonds per minute (bars) and the running total (line): {{ s.diamonds | num }} in all.</figcaption></figure>
{% else %}<p class="note">No events in this session.</p>{% endif %}

<div class="grid2">
<section>
<h2>Top gifters</h2>
{% if gifters %}
<table>
<tr><th class="n">#</th><th>Viewer</th><th class="n">Diamonds</th><th class="n">Gifts</th><th class="n">Share</th></tr>
{% for g in gifters %}
<tr><td class="n">{{ g.rank }}</td><td class="who"><bdi>{{ g.nickname }}</bdi> <span class="id">@{{ g.unique_id }}</span></td>
<td class="n">{{ g.diamonds | num }}</td><td class="n">{{ g.gifts | num }}</td><td class="n">{{ g.share | percent }}</td></tr>
{% endfor %}
</table>
<p class="note">{{ s.gifters | length | num }} gifters in all.</p>
{% else %}<p class="note">No gifts in this session.</p>{% endif %}
</section>
<section>
<h2>Gifts by type</h2>
{% if gift_types %}
<table>
<tr><th>Gift</th><th class="n">Diamonds each</th><th class="n">Gifts</th><th class="n">Count</th><th class="n">Diamonds</th></tr>
{% for g in gift_types %}
<tr><td class="who"><bdi>{{ g.name }}</bdi></td><td class="n">{{ g.diamonds_each | num }}</td><td class="n">{{ g.gifts | num }}</td>
<td class="n">{{ g.units | num }}</td><td class="n">{{ g.diamonds | num }}</td></tr>
{% endfor %}
</table>
<p class="note">Gifts: a streak once; count: the units sent.</p>
{% else %}<p class="note">No gifts in this session.</p>{% endif %}
</section>
</div>
{% if charts.gift_types %}
<figure><img src="{{ charts.gift_types }}" alt="Diamonds by gift type"></figure>
{% endif %}

{% if collabs.battle_count %}
<h2>Battles</h2>
<p class="sub">{{ collabs.battle_count | num }} battle{% if collabs.battle_count != 1 %}s{% endif %}: {{ collabs.won | num }} won, {{ collabs.lost | num }} lost,
{{ collabs.draws | num }} draw{% if collabs.draws != 1 %}s{% endif %}{% if collabs.unfinished %}, {{ collabs.unfinished | num }} unfinished{% endif %};
{{ collabs.battle_diamonds | num }} diamonds received during battles.</p>
<table>
<tr><th class="n">#</th><th>Start</th><th>Opponent</th><th>Result</th><th class="n">Score (us : them)</th>
<th class="n">Diamonds during</th><th class="n">Gifts</th><th>MVP</th></tr>
{% for b in battles %}
<tr><td class="n">{{ b.n }}</td><td>{{ b.offset | offset }}{% if not b.seen_start %} (joined late){% endif %}</td>
<td class="who"><bdi>{{ b.opponents }}</bdi></td><td>{{ b.outcome }}</td>
<td class="n">{{ b.our_score | num }} : {{ b.their_score | num }}</td><td class="n">{{ b.diamonds | num }}</td>
<td class="n">{{ b.gifts | num }}</td><td class="who">{% if b.mvp %}<bdi>{{ b.mvp }}</bdi> ({{ b.mvp_score | num }}){% else %}–{% endif %}</td></tr>
{% endfor %}
</table>
<p class="note">Diamonds during a battle: the gifts this room received between its start and its end (a gift streak
counts once, when it ends). "Joined late": the recording began during that battle.</p>
{% endif %}
{% if collabs.envelopes %}
<h2>Envelopes</h2>
<p class="note">{{ collabs.envelopes | num }} envelope{% if collabs.envelopes != 1 %}s{% endif %} (treasure chests), worth {{ collabs.envelope_coins | num }} coins
{%- if collabs.envelope_diamonds %} and {{ collabs.envelope_diamonds | num }} diamonds{% endif %}.</p>
{% endif %}

<h2>Busiest minutes</h2>
{% if busiest %}
<table>
<tr><th>Minute</th><th class="n">Viewer actions</th><th class="n">Comments</th><th class="n">Likes</th><th class="n">Gifts</th>
<th class="n">Diamonds</th><th class="n">Follows</th><th class="n">Shares</th><th class="n">Joins</th></tr>
{% for m in busiest %}
<tr><td>{{ (m.minute * 60000) | offset }} ({{ m.at | clock }})</td><td class="n">{{ m.activity | num }}</td>
<td class="n">{{ m.chats | num }}</td><td class="n">{{ m.likes | num }}</td><td class="n">{{ m.gifts | num }}</td>
<td class="n">{{ m.diamonds | num }}</td><td class="n">{{ m.follows | num }}</td><td class="n">{{ m.shares | num }}</td>
<td class="n">{{ m.joins | num }}</td></tr>
{% endfor %}
</table>
<p class="note">Ranked by viewer actions: comments, like events, gifts, follows, shares, joins and subscriptions.</p>
{% else %}<p class="note">No viewer actions in this session.</p>{% endif %}

<div class="grid2">
<section>
<h2>New followers ({{ s.new_followers | num }})</h2>
<p class="note">{{ s.follows | num }} follow events from {{ s.new_followers | num }} viewers, in the order they first followed.</p>
{% if followers %}
<ol class="follow-list">
{% for f in followers %}<li><bdi>{{ f.nickname }}</bdi> <span class="id">@{{ f.unique_id }} · {{ f.offset | offset }}</span></li>
{% endfor %}
</ol>
{% if s.new_followers > followers | length %}<p class="note">… and {{ (s.new_followers - followers | length) | num }} more.</p>{% endif %}
{% else %}<p class="note">No new followers in this session.</p>{% endif %}
</section>
<section>
<h2>Top commenters</h2>
{% if chatters %}
<table>
<tr><th class="n">#</th><th>Viewer</th><th class="n">Comments</th></tr>
{% for c in chatters %}
<tr><td class="n">{{ c.rank }}</td><td class="who"><bdi>{{ c.nickname }}</bdi> <span class="id">@{{ c.unique_id }}</span></td>
<td class="n">{{ c.comments | num }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="note">No comments in this session.</p>{% endif %}
</section>
</div>

{% if actions %}
<h2>Rules: how often they fired and what followed</h2>
<p class="sub">{{ actions.total | num }} actions from <span class="file">{{ actions_name }}</span>.</p>
{% include "rules" %}
{% endif %}

<h2>Data quality</h2>
<table class="narrow">
{% for label, value in quality %}<tr><td>{{ label }}</td><td class="n">{{ value }}</td></tr>
{% endfor %}
</table>
"""

RULES = """
<table>
<tr><th rowspan="2">Rule</th><th rowspan="2">Trigger</th><th rowspan="2" class="n">Fired</th>
<th colspan="2" class="group">Follows</th><th colspan="2" class="group">Comments</th><th colspan="2" class="group">Diamonds</th></tr>
<tr><th class="n">per {{ window }} after</th><th class="n">vs base</th><th class="n">per {{ window }} after</th>
<th class="n">vs base</th><th class="n">per {{ window }} after</th><th class="n">vs base</th></tr>
{% for r in rules %}
<tr><td class="rule">{{ r.rule }}</td><td>{{ r.trigger }}</td><td class="n">{{ r.fired | num }}</td>
{% for m in r.measures %}<td class="n">{{ m.after }}</td><td class="n {{ m.cls }}">{{ m.ratio }}</td>{% endfor %}</tr>
{% endfor %}
</table>
<p class="note">Base rate, the whole session: {{ base }}.</p>
<div class="method"><strong>How this is counted.</strong> For each firing at time t we add up the follows, comments
and diamonds of the {{ window }} after it, (t, t + {{ window }}], to the second, cut short at the end of the session,
and divide by the time looked at: "per {{ window }} after". The base rate is the session's total divided by its
length, per {{ window }}; "vs base" is after ÷ base (above 1×: more than usual followed). This shows association,
not cause: windows of firings closer than {{ window }} overlap, so one follow can count for several firings; rules
triggered by an event (thank-follow, thank-gift) fire when the stream is already busy, so their windows are busy by
construction. The comparison means most for timer rules, such as a follow reminder, and little for a rule that
fired only a few times.{% if actions.outside %} {{ actions.outside | num }} action(s) stamped outside the session's
time span are left out.{% endif %}{% if actions.malformed %} {{ actions.malformed | num }} malformed action
line(s) skipped.{% endif %}</div>
"""

COMPARE = """
<h1>Session comparison</h1>
<p class="sub">A: <span class="file">{{ names[0] }}</span> ({{ a.started | clock(true) }}, {{ a.duration_ms | duration }})<br>
B: <span class="file">{{ names[1] }}</span> ({{ b.started | clock(true) }}, {{ b.duration_ms | duration }})</p>

<table>
<tr><th>Metric</th><th class="n">A</th><th class="n">B</th><th class="n">Change (B − A)</th></tr>
{% for r in rows %}
<tr><td>{{ r.label }}</td><td class="n">{{ r.a }}</td><td class="n">{{ r.b }}</td>
<td class="n {% if r.up is true %}up{% elif r.up is false %}down{% endif %}">{{ r.change }}</td></tr>
{% endfor %}
</table>
<p class="estimate"><strong>Earnings are estimates:</strong> diamonds × {{ rate }} per diamond; what TikTok actually
pays depends on region, agreements, fees and exchange rates.</p>

{% for key, title in (("viewers", "Viewers over time"), ("comments", "Comments per minute"), ("diamonds", "Diamonds, running total")) %}
<h2>{{ title }}</h2>
{% if charts[key] %}<figure><img src="{{ charts[key] }}" alt="{{ title }}: A and B">
<figcaption>Minutes since each session's own start.</figcaption></figure>
{% else %}<p class="note">No data.</p>{% endif %}
{% endfor %}

<h2>Top gifters</h2>
<div class="grid2">
{% for label, gifters in (("A", gifters_a), ("B", gifters_b)) %}
<section><h3>{{ label }}</h3>
{% if gifters %}
<table><tr><th class="n">#</th><th>Viewer</th><th class="n">Diamonds</th><th class="n">Gifts</th></tr>
{% for g in gifters %}
<tr><td class="n">{{ g.rank }}</td><td class="who"><bdi>{{ g.nickname }}</bdi> <span class="id">@{{ g.unique_id }}</span></td>
<td class="n">{{ g.diamonds | num }}</td><td class="n">{{ g.gifts | num }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="note">No gifts.</p>{% endif %}
</section>
{% endfor %}
</div>

{% if rule_rows %}
<h2>Rules fired</h2>
<table><tr><th>Rule</th><th class="n">A</th><th class="n">B</th><th class="n">Change</th>
<th class="n">Follows / {{ window }} after, A</th><th class="n">B</th></tr>
{% for r in rule_rows %}
<tr><td class="rule">{{ r.rule }}</td><td class="n">{{ r.a }}</td><td class="n">{{ r.b }}</td><td class="n">{{ r.change }}</td>
<td class="n">{{ r.follows_a }}</td><td class="n">{{ r.follows_b }}</td></tr>
{% endfor %}
</table>
<p class="note">Follows after a firing are counted as in a single report: association, not cause.</p>
{% endif %}

<h2>Data quality</h2>
<table><tr><th></th><th class="n">A</th><th class="n">B</th></tr>
{% for label, va, vb in quality %}<tr><td>{{ label }}</td><td class="n">{{ va }}</td><td class="n">{{ vb }}</td></tr>
{% endfor %}
</table>
"""

_TEMPLATES = jinja2.DictLoader({"single": SINGLE, "rules": RULES, "compare": COMPARE})
_env.loader = _TEMPLATES


def _name(path: str) -> str:
    return Path(path).name or path


def quality_rows(s: SessionStats) -> list[tuple[str, str]]:
    return [
        ("Lines read", fmt.num(s.lines)),
        ("Malformed lines skipped", fmt.num(s.malformed)),
        ("Broken messages inside bundles", fmt.num(s.malformed_messages)),
        ("Duplicate messages dropped", fmt.num(s.duplicates)),
        ("Gift streaks whose end never came (flushed)", fmt.num(s.streaks_flushed)),
        ("Late streak frames absorbed", fmt.num(s.late_frames)),
        ("Events after dropping and folding", fmt.num(s.summary(0)["events"])),
    ]


def window_text(window_ms: int) -> str:
    s = window_ms // 1000
    return f"{s // 60} min" if s % 60 == 0 else f"{s} s"


def _ratio(after: float | None, base: float | None) -> tuple[str, str]:
    if after is None or not base:
        return "–", ""
    r = after / base
    up = fmt.notable(base, after)  # (only a quarter up or a fifth down is coloured: see fmt.notable)
    return f"{r:.2f}×", ("up" if up is True else "down" if up is False else "")


def rule_rows(actions: ActionStats) -> list[dict[str, Any]]:
    rows = []
    for r in actions.by_rule():
        after = r.after_per_window(actions.window_ms)
        measures = []
        for i, _ in enumerate(MEASURES):
            a = None if after is None else after[i]
            ratio, cls = _ratio(a, actions.base[i] if actions.base else None)
            measures.append({"after": fmt.num(a, 1), "ratio": ratio, "cls": cls})
        rows.append({"rule": r.rule, "trigger": r.trigger, "fired": r.fired, "measures": measures})
    return rows


def base_text(actions: ActionStats) -> str:
    if not actions.base:
        return "no session time to measure"
    w = window_text(actions.window_ms)
    f, c, d = actions.base
    return f"{f:,.1f} follows, {c:,.1f} comments and {d:,.0f} diamonds per {w}"


def render_html(stats: SessionStats, actions: ActionStats | None = None, *, rate: float = fmt.DEFAULT_RATE,
                currency: str = fmt.DEFAULT_CURRENCY, top: int = 10) -> str:
    from bot.report.charts import session_charts

    summary = stats.summary(rate)
    cards = [
        {"label": "Duration", "value": fmt.duration(stats.duration_ms)},
        {"label": "Peak viewers", "value": fmt.num(stats.peak_viewers)},
        {"label": "Average viewers", "value": fmt.num(summary["average_viewers"])},
        {"label": "Viewers seen", "value": fmt.num(summary["viewers_seen"])},
        {"label": "Comments", "value": fmt.num(stats.chats)},
        {"label": "Likes", "value": fmt.num(stats.likes)},
        {"label": "Gifts", "value": fmt.num(stats.gifts)},
        {"label": "Gifters", "value": fmt.num(len(stats.gifters))},
        {"label": "Diamonds", "value": fmt.num(stats.diamonds)},
        {"label": "Estimated earnings", "value": "≈ " + fmt.money(stats.earnings(rate), currency), "money": True},
        {"label": "New followers", "value": fmt.num(stats.new_followers)},
        {"label": "Shares", "value": fmt.num(stats.shares)},
    ]
    ctx = {
        "name": _name(stats.path), "s": stats, "summary": summary, "cards": cards,
        "rate": fmt.rate_text(rate, currency), "earnings": fmt.money(stats.earnings(rate), currency),
        "charts": session_charts(stats), "gifters": stats.top_gifters(top), "gift_types": stats.gifts_by_type(top),
        "busiest": stats.busiest_minutes(5), "followers": stats.follower_list(FOLLOWERS_SHOWN),
        "chatters": stats.top_chatters(top), "quality": quality_rows(stats), "actions": actions,
        "collabs": stats.collabs, "battles": stats.collabs.battle_rows(stats.started),
        "actions_name": _name(actions.path) if actions else "",
        "rules": rule_rows(actions) if actions else [], "base": base_text(actions) if actions else "",
        "window": window_text(actions.window_ms) if actions else "",
    }
    body = _env.get_template("single").render(ctx)
    return _PAGE.render(title=f"Session report: {ctx['name']}", css=Markup(CSS),
                        body=Markup(body), version=__version__)


def render_compare_html(a: SessionStats, b: SessionStats, actions: tuple[ActionStats | None, ActionStats | None]
                        = (None, None), *, rate: float = fmt.DEFAULT_RATE, currency: str = fmt.DEFAULT_CURRENCY,
                        top: int = 10) -> str:
    from bot.report.charts import compare_charts

    names = (_name(a.path), _name(b.path))
    window_ms = next((x.window_ms for x in actions if x is not None), 120_000)
    ctx = {
        "a": a, "b": b, "names": names, "rows": fmt.compare_rows(a.summary(rate), b.summary(rate), currency)
        + collab_compare_rows(a.collabs, b.collabs),
        "rate": fmt.rate_text(rate, currency), "charts": compare_charts(a, b, ("A", "B")),
        "gifters_a": a.top_gifters(top), "gifters_b": b.top_gifters(top),
        "rule_rows": compare_rule_rows(*actions), "window": window_text(window_ms),
        "quality": [(label, va, vb) for (label, va), (_, vb) in zip(quality_rows(a), quality_rows(b))],
    }
    body = _env.get_template("compare").render(ctx)
    return _PAGE.render(title=f"Session comparison: {names[0]} vs {names[1]}", css=Markup(CSS),
                        body=Markup(body), version=__version__)


def compare_rule_rows(a: ActionStats | None, b: ActionStats | None) -> list[dict[str, Any]]:
    if a is None and b is None:
        return []
    ra = a.rules if a else {}
    rb = b.rules if b else {}
    rows = []
    def fired(k: str) -> int:
        return (ra[k].fired if k in ra else 0) + (rb[k].fired if k in rb else 0)

    for rule in sorted(set(ra) | set(rb), key=lambda k: (-fired(k), k)):
        x, y = ra.get(rule), rb.get(rule)

        def follows(r: RuleStats | None, acts: ActionStats | None) -> str:
            after = r.after_per_window(acts.window_ms) if r is not None and acts is not None else None
            return fmt.num(after[0], 1) if after else "–"

        fa = x.fired if x else 0
        fb = y.fired if y else 0
        rows.append({"rule": rule, "a": fmt.num(fa) if a else "–", "b": fmt.num(fb) if b else "–",
                     "change": fmt.change(fa, fb, fmt.num) if a and b else "–",
                     "follows_a": follows(x, a), "follows_b": follows(y, b)})
    return rows


def write_html(path: str | Path, html: str) -> Path:
    """Write atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
