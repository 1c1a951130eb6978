"""Numbers and times as the report prints them, and the headline metrics that both the terminal
and the HTML report (and the comparison of two sessions) line up."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

DEFAULT_RATE = 0.005  # US$ per diamond: a common rule of thumb, shown as an estimate
DEFAULT_CURRENCY = "US$"


def num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def money(value: float, currency: str = DEFAULT_CURRENCY) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{currency}{abs(value):,.2f}"


def rate_text(rate: float, currency: str = DEFAULT_CURRENCY) -> str:
    return f"{currency}{rate:g}"


def duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    sign = "-" if ms < 0 else ""
    s = abs(ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{sign}{h} h {m:02d} min"
    return f"{sign}{m} min {sec:02d} s"


def offset(ms: int) -> str:
    """Time since the start: ``+12:34`` or ``+1:02:03``."""
    s = max(0, ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"+{h}:{m:02d}:{sec:02d}" if h else f"+{m:02d}:{sec:02d}"


def clock(ms: int | None, with_date: bool = False) -> str:
    if ms is None:
        return "–"
    try:
        t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    return t.strftime("%Y-%m-%d %H:%M UTC" if with_date else "%H:%M UTC")


def plain(text: Any, limit: int = 40) -> str:
    """Viewer text for a terminal: control characters (escape sequences) removed, long text cut."""
    s = "".join(c for c in str(text) if unicodedata.category(c) != "Cc")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def change(a: float | None, b: float | None, fmt: Callable[[float], str]) -> str:
    """B − A with its sign, and the relative change when A is not zero."""
    if a is None or b is None:
        return "–"
    d = b - a
    if d == 0:
        return "±0"
    text = f"{'+' if d > 0 else '−'}{fmt(abs(d))}"
    if a:
        rel = abs(d) / abs(a) * 100
        text += f" ({'+' if d > 0 else '−'}{rel:.1f}%)" if rel < 10 else f" ({'+' if d > 0 else '−'}{rel:.0f}%)"
    return text


def metrics(currency: str = DEFAULT_CURRENCY) -> list[tuple[str, str, Callable[[Any], str]]]:
    """(label, key of ``SessionStats.summary``, formatter), in the order they are shown."""
    return [
        ("Duration", "duration_ms", duration),
        ("Peak viewers", "peak_viewers", num),
        ("Average viewers (time-weighted)", "average_viewers", num),
        ("Viewers seen (did anything)", "viewers_seen", num),
        ("Comments", "comments", num),
        ("Comments per minute", "comments_per_minute", lambda v: num(v, 1)),
        ("Likes", "likes", num),
        ("Gifts (a streak once)", "gifts", num),
        ("Gifters", "gifters", num),
        ("Diamonds", "diamonds", num),
        ("Diamonds per hour", "diamonds_per_hour", num),
        ("Estimated earnings", "earnings", lambda v: money(v, currency)),
        ("New followers", "new_followers", num),
        ("Shares", "shares", num),
        ("Joins", "joins", num),
        ("Subscriptions", "subscribes", num),
    ]


# A change is coloured (green up, red down) only when it is big enough to mean something: at least
# a quarter up or a fifth down, and, for counts, more than twice the Poisson noise of the two counts
# (|b − a| > 2·√(a + b), about a 95 % interval). 0.95× or 1.01× is shown plain.
RATIO_UP, RATIO_DOWN = 1.25, 0.8


def notable(a: float | None, b: float | None, counts: bool = False) -> bool | None:
    """True (b notably above a), False (notably below), None (no colour)."""
    if a is None or b is None or a == b:
        return None
    if a > 0:
        r = b / a
        if RATIO_DOWN < r < RATIO_UP:
            return None
    if counts and a >= 0 and b >= 0 and abs(b - a) <= 2 * math.sqrt(a + b):
        return None
    return b > a


_COUNTS = frozenset({"peak_viewers", "viewers_seen", "comments", "likes", "gifts", "gifters", "diamonds",
                     "new_followers", "shares", "joins", "subscribes"})


def compare_rows(sa: dict[str, Any], sb: dict[str, Any], currency: str = DEFAULT_CURRENCY) -> list[dict[str, str]]:
    rows = []
    for label, key, f in metrics(currency):
        a, b = sa.get(key), sb.get(key)
        rows.append({"label": label, "a": f(a), "b": f(b), "change": change(a, b, f),
                     "up": None if key == "duration_ms" else notable(a, b, key in _COUNTS)})
    return rows
