"""``livebot report --variants``: which text of a rule's CTA variants was followed by more.

For each action that carries ``data.variant`` (``bot/engine/variants.py``), over one session or
several (each with its actions file), the follows, shares and diamonds of the window after it,
(t, t + window], are counted to the second. A firing whose window runs past its session's end is
left out (and counted), so every firing measured looked at the same length of time. Per variant:
how often it was shown, the mean per firing, and a 95% interval of that mean (Student's t over the
firings; none with fewer than two; for follows and shares never narrower than the exact Poisson
interval of their total). It is an association, not proof: the variants were shown at
different moments of different streams; windows of firings closer than the window overlap;
rotation ties a variant to its turn in the order. Overlapping intervals mean the data cannot tell
the variants apart.
"""

from __future__ import annotations

import bisect
import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bot.report.stats import S_DIAMONDS, S_FOLLOWS, S_SHARES, SessionStats

MEASURES = ("follows", "shares", "diamonds")
MIN_FIRINGS = 2
# Student's t, two-sided 95%, by degrees of freedom (beyond the table: the large-sample values).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045,
        2.042)


def t95(df: int) -> float:
    if df < 1:
        raise ValueError("no interval with fewer than two firings")
    if df <= len(_T95):
        return _T95[df - 1]
    return 2.021 if df <= 40 else 2.000 if df <= 60 else 1.980 if df <= 120 else 1.960


def _poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam), summed in log space (no underflow for large lam)."""
    if lam <= 0:
        return 1.0
    log_lam = math.log(lam)
    terms = [-lam + j * log_lam - math.lgamma(j + 1) for j in range(k + 1)]
    top = max(terms)
    total = sum(math.exp(t - top) for t in terms)
    return min(1.0, math.exp(top) * total)


def _solve(k: int, target: float) -> float:
    """The lam where P(X <= k) = target (the CDF falls as lam grows), by bisection."""
    lo, hi = 0.0, k + 20 * math.sqrt(k + 1) + 20
    for _ in range(100):
        mid = (lo + hi) / 2
        if _poisson_cdf(k, mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def poisson95(k: int) -> tuple[float, float]:
    """The exact (Garwood) two-sided 95% interval of a Poisson mean from one count ``k``."""
    if k < 0:
        raise ValueError("a count is at least 0")
    return (0.0 if k == 0 else _solve(k - 1, 0.975)), _solve(k, 0.025)


@dataclass
class Variant:
    rule: str
    kind: str
    index: int
    text: str = ""  # as first shown (rendered: it may differ from firing to firing)
    values: list[tuple[int, int, int]] = field(default_factory=list)  # per firing: follows, shares, diamonds
    cut: int = 0  # firings whose window ran past the session's end: not measured
    sessions: set[str] = field(default_factory=set)

    @property
    def shown(self) -> int:
        return len(self.values) + self.cut

    def mean(self, m: int) -> float | None:
        return sum(v[m] for v in self.values) / len(self.values) if self.values else None

    def interval(self, m: int) -> tuple[float, float] | None:
        """The 95% interval of the mean per firing (None with fewer than two firings measured).

        Student's t over the firings; for the counts (follows, shares) never narrower than the exact
        Poisson interval of their total (Garwood): two windows of 0 follows each do not make "0 – 0"
        (the t interval of equal values has no width), they make 0 – 1.84. Diamonds are sums of gift
        values, not counts: a t interval without spread (every window the same) is none (None)."""
        n = len(self.values)
        if n < MIN_FIRINGS:
            return None
        mean = self.mean(m)
        assert mean is not None
        var = sum((v[m] - mean) ** 2 for v in self.values) / (n - 1)
        half = t95(n - 1) * math.sqrt(var / n)
        low, high = max(0.0, mean - half), mean + half
        if MEASURES[m] == "diamonds":
            return None if var == 0 else (low, high)
        plow, phigh = poisson95(sum(v[m] for v in self.values))
        return min(low, plow / n), max(high, phigh / n)


@dataclass
class VariantReport:
    window_ms: int
    sessions: list[str] = field(default_factory=list)
    groups: dict[tuple[str, str, int], Variant] = field(default_factory=dict)
    malformed: int = 0
    outside: int = 0
    base: list[float] | None = None  # follows, shares, diamonds per window over every session's whole length

    def rules(self) -> list[tuple[str, str, list[Variant]]]:
        """(rule, kind, its variants by index), by rule."""
        out: dict[tuple[str, str], list[Variant]] = {}
        for key in sorted(self.groups):
            out.setdefault(key[:2], []).append(self.groups[key])
        return [(r, k, vs) for (r, k), vs in out.items()]


class _Sums:
    def __init__(self, seconds: dict[int, list[int]]) -> None:
        self.keys = sorted(seconds)
        self.sums = [(0, 0, 0)]
        f = s = d = 0
        for k in self.keys:
            row = seconds[k]
            f, s, d = f + row[S_FOLLOWS], s + row[S_SHARES], d + row[S_DIAMONDS]
            self.sums.append((f, s, d))

    def between(self, after_sec: int, until_sec: int) -> tuple[int, int, int]:
        a = self.sums[bisect.bisect_right(self.keys, after_sec)]
        b = self.sums[bisect.bisect_right(self.keys, until_sec)]
        return b[0] - a[0], b[1] - a[1], b[2] - a[2]


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def analyze_variants(pairs: list[tuple[SessionStats, str | Path]], window_ms: int = 120_000) -> VariantReport:
    """Every (session, its actions file) pair, pooled. Bad action lines are counted, never raised."""
    report = VariantReport(window_ms=window_ms)
    looked = 0
    totals = [0, 0, 0]
    for session, actions_path in pairs:
        report.sessions.append(str(session.path))
        start, end = session.started, session.ended
        if start is None or end is None:
            continue
        looked += end - start
        totals = [totals[0] + session.follows, totals[1] + session.shares, totals[2] + session.diamonds]
        sums = _Sums(session.seconds)
        with _open(Path(actions_path)) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                    ts, data = rec["ts"], rec.get("data")
                    if not isinstance(ts, int) or isinstance(ts, bool):
                        raise TypeError("ts")
                except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
                    report.malformed += 1
                    continue
                if not isinstance(data, dict) or "variant" not in data:
                    continue
                index = data["variant"]
                if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                    report.malformed += 1
                    continue
                if ts < start or ts > end:
                    report.outside += 1
                    continue
                key = (str(rec.get("rule") or "(no rule)"), str(rec.get("kind") or ""), index)
                v = report.groups.get(key)
                if v is None:
                    v = report.groups[key] = Variant(*key, text=str(rec.get("text", ""))[:200])
                v.sessions.add(str(session.path))
                if ts + window_ms > end:
                    v.cut += 1
                    continue
                v.values.append(sums.between(ts // 1000, (ts + window_ms) // 1000))
    if looked > 0:
        report.base = [n / looked * window_ms for n in totals]
    return report


# -- showing it ----------------------------------------------------------------------------------------

def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def rows(report: VariantReport) -> list[dict[str, Any]]:
    """One row per variant: rule, kind, variant (1-based for people), text, shown, measured, and per
    measure ``mean`` and ``interval`` as text."""
    out = []
    for rule, kind, variants in report.rules():
        for v in variants:
            cells = []
            for m in range(len(MEASURES)):
                iv = v.interval(m)
                digits = 0 if MEASURES[m] == "diamonds" else 2
                cells.append({"mean": _fmt(v.mean(m), digits),
                              "interval": "too few" if iv is None else f"{_fmt(iv[0], digits)} – {_fmt(iv[1], digits)}"})
            out.append({"rule": rule, "kind": kind, "variant": v.index + 1, "text": v.text, "shown": v.shown,
                        "measured": len(v.values), "cells": cells, "sessions": len(v.sessions)})
    return out


CAVEAT = ("Association, not proof: the variants were shown at different moments (and streams); windows of "
          "firings closer than the window overlap; rotation ties each variant to its turn. Intervals are 95% "
          "intervals of the mean per firing (Student's t over the firings; for follows and shares at least the "
          "exact Poisson interval of their count); where they overlap, the data cannot "
          "tell the variants apart. Firings whose window ran past the end of their session are not measured.")


def print_variants(report: VariantReport, out: Any = None) -> None:
    from rich.text import Text

    from bot.report import fmt
    from bot.report.terminal import _table, console, window_text

    c = out or console()
    w = window_text(report.window_ms)
    c.print(Text(f"CTA variants over {len(report.sessions)} session(s): what followed in the {w} after each firing",
                 style="bold"))
    found = rows(report)
    if not found:
        c.print("No actions with variants in the actions file(s): give a rule's action 'variants:' (see the README).")
        return
    t = _table("", "Rule", "#", "Text", "Shown", "Measured", "Follows (95%)", "Shares (95%)", "Diamonds (95%)",
               numeric=(1, 3, 4))
    for r in found:
        t.add_row(Text(fmt.plain(r["rule"], 40)), str(r["variant"]), Text(fmt.plain(r["text"], 60)), str(r["shown"]),
                  str(r["measured"]), *[f"{x['mean']} ({x['interval']})" for x in r["cells"]])
    c.print(t)
    if report.base:
        f, s, d = report.base
        c.print(f"Base rate over the whole session(s): {f:,.2f} follows, {s:,.2f} shares, {d:,.0f} diamonds per {w}.")
    c.print(CAVEAT)
    if report.malformed or report.outside:
        c.print(f"Actions: {report.malformed} malformed line(s) skipped; {report.outside} outside their session.")


PAGE = """
<h1>CTA variants</h1>
<p class="sub">{{ sessions | length }} session(s): {% for s in sessions %}<span class="file">{{ s }}</span>{% if not loop.last %}, {% endif %}{% endfor %}.
What followed in the {{ window }} after each firing.</p>
{% if rows %}
<table>
<tr><th>Rule</th><th class="n">#</th><th>Text</th><th class="n">Shown</th><th class="n">Measured</th>
<th class="n">Follows per firing (95%)</th><th class="n">Shares per firing (95%)</th><th class="n">Diamonds per firing (95%)</th></tr>
{% for r in rows %}
<tr><td class="rule">{{ r.rule }}</td><td class="n">{{ r.variant }}</td><td>{{ r.text }}</td><td class="n">{{ r.shown }}</td>
<td class="n">{{ r.measured }}</td>{% for x in r.cells %}<td class="n">{{ x.mean }} <span class="note">({{ x.interval }})</span></td>{% endfor %}</tr>
{% endfor %}
</table>
{% if base %}<p class="note">Base rate over the whole session(s): {{ base }}.</p>{% endif %}
{% else %}<p class="note">No actions with variants in the actions file(s).</p>{% endif %}
<div class="method"><strong>Association, not proof.</strong> {{ caveat }}</div>
"""


def render_variants_html(report: VariantReport) -> str:
    from markupsafe import Markup

    from bot import __version__
    from bot.report.html import _PAGE, CSS, _env, _name, window_text

    w = window_text(report.window_ms)
    base = ""
    if report.base:
        f, s, d = report.base
        base = f"{f:,.2f} follows, {s:,.2f} shares, {d:,.0f} diamonds per {w}"
    body = _env.from_string(PAGE).render(sessions=[_name(s) for s in report.sessions], window=w, rows=rows(report),
                                         base=base, caveat=CAVEAT.removeprefix("Association, not proof: "))
    return _PAGE.render(title="CTA variants", css=Markup(CSS), body=Markup(body), version=__version__)
