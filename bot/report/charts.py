"""The report's charts: PNG images (matplotlib, Agg, no pyplot and no global state), returned as
``data:`` URIs so the HTML file stands alone. Viewer text never goes into a chart: gift names are
shown with ``$`` escaped so matplotlib does not read them as math."""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence
from itertools import accumulate

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bot.report.stats import SessionStats

INK = "#1f2937"
GRID = "#e5e7eb"
COLORS = {"viewers": "#6d28d9", "comments": "#0284c7", "likes": "#db2777", "gifts": "#d97706",
          "diamonds": "#0891b2", "total": "#111827", "a": "#6d28d9", "b": "#d97706"}
WIDTH = 9.6  # inches at 100 dpi: 960 px


def _figure(rows: int = 1, height: float = 2.8, left: float = 0.085) -> tuple[Figure, list]:
    """Fixed margins (not a layout engine), so the plots of every chart line up one under another."""
    fig = Figure(figsize=(WIDTH, height), dpi=100)
    fig.subplots_adjust(left=left, right=0.92, top=1 - 0.12 / height, bottom=0.5 / height, hspace=0.12)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(colors=INK, labelsize=9)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    return fig, list(axes)


def _uri(fig: Figure) -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing glyph is not worth a warning on stderr
        fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _minutes_axis(ax, xs: Sequence[int]) -> None:
    ax.set_xlabel("minutes since the start", fontsize=9, color=INK)
    if xs:
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))


def _safe(text: str, limit: int = 28) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def session_charts(stats: SessionStats) -> dict[str, str | None]:
    """``{name: data URI or None}`` for viewers, activity, diamonds and gift types."""
    xs, cols = stats.minute_series()
    charts: dict[str, str | None] = {"viewers": None, "activity": None, "diamonds": None, "gift_types": None}
    if not xs:
        return charts
    if stats.viewer_samples:
        fig, (ax,) = _figure()
        # each minute's count drawn across its minute (post steps to one edge more), so a session
        # of one minute (a 38-second test) is a line from 0 to 1, not a point on an empty axis
        edges = list(xs) + [xs[-1] + 1]
        ys = list(cols["viewers_max"]) + [cols["viewers_max"][-1]]
        ax.fill_between(edges, ys, step="post", color=COLORS["viewers"], alpha=0.15, linewidth=0)
        ax.step(edges, ys, where="post", color=COLORS["viewers"], linewidth=1.8)
        ax.set_ylabel("viewers", fontsize=9, color=INK)
        ax.set_ylim(bottom=0)
        _minutes_axis(ax, xs)
        ax.set_xlim(xs[0], xs[-1] + 1)
        charts["viewers"] = _uri(fig)

    fig, axes = _figure(rows=3, height=5.2)
    for ax, key, label in zip(axes, ("chats", "likes", "gifts"), ("comments", "likes", "gifts")):
        ax.bar(xs, cols[key], width=0.85, color=COLORS[label])
        ax.set_ylabel(f"{label}\nper minute", fontsize=9, color=INK)
    _minutes_axis(axes[-1], xs)
    charts["activity"] = _uri(fig)

    fig, (ax,) = _figure(height=3.0)
    ax.bar(xs, cols["diamonds"], width=0.85, color=COLORS["diamonds"], label="diamonds per minute")
    ax.set_ylabel("diamonds per minute", fontsize=9, color=INK)
    twin = ax.twinx()
    twin.plot(xs, list(accumulate(cols["diamonds"])), color=COLORS["total"], linewidth=2, label="running total")
    twin.set_ylabel("running total", fontsize=9, color=INK)
    twin.set_ylim(bottom=0)
    twin.tick_params(colors=INK, labelsize=9)
    twin.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    twin.spines["top"].set_visible(False)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8, frameon=False)
    _minutes_axis(ax, xs)
    charts["diamonds"] = _uri(fig)

    types = [g for g in stats.gifts_by_type(10) if g.diamonds > 0]
    if types:
        fig, (ax,) = _figure(height=0.9 + 0.32 * len(types), left=0.2)
        names = [_safe(g.name) for g in reversed(types)]
        ax.barh(range(len(types)), [g.diamonds for g in reversed(types)], color=COLORS["gifts"])
        ax.set_yticks(range(len(types)), names)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel("diamonds", fontsize=9, color=INK)
        ax.grid(True, axis="x", color=GRID)
        ax.grid(False, axis="y")
        charts["gift_types"] = _uri(fig)
    return charts


def compare_charts(a: SessionStats, b: SessionStats, labels: tuple[str, str] = ("A", "B")) -> dict[str, str | None]:
    """Both sessions on one axis of minutes since their own start: viewers, comments, diamonds."""
    xa, ca = a.minute_series()
    xb, cb = b.minute_series()
    charts: dict[str, str | None] = {"viewers": None, "comments": None, "diamonds": None}
    if not xa and not xb:
        return charts
    xs = list(xa) + list(xb)
    specs = (("viewers", "viewers_max", "viewers", False), ("comments", "chats", "comments per minute", False),
             ("diamonds", "diamonds", "diamonds, running total", True))
    for name, key, ylabel, running in specs:
        if name == "viewers" and not (a.viewer_samples or b.viewer_samples):
            continue
        fig, (ax,) = _figure()
        for x, cols, label, color in ((xa, ca, labels[0], COLORS["a"]), (xb, cb, labels[1], COLORS["b"])):
            if not x:
                continue
            ys = list(accumulate(cols[key])) if running else cols[key]
            if len(x) == 1:  # one minute: a line is a point; draw it across its minute
                x, ys = [x[0], x[0] + 1], [ys[0], ys[0]]
            ax.plot(x, ys, color=color, linewidth=1.8, label=_safe(label, 40))
        ax.set_ylabel(ylabel, fontsize=9, color=INK)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        _minutes_axis(ax, xs)
        charts[name] = _uri(fig)
    return charts
