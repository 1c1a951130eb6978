"""Which rules fired, how often, and what followed them.

For each firing of a rule at time t, the follows, comments and diamonds of the window
(t, t + window] are added up (to the second, cut short at the end of the session) together with
the window's length. "Per window after" is that sum divided by the time looked at, times the
window; the base rate is the whole session's count divided by its length, times the window. A
ratio above 1 means more came after the rule fired than the session's average. It is an
association, not proof: windows of firings closer than the window overlap (one follow can count
for both), and a rule that reacts to an event (thank-follow, thank-gift) fires when the stream is
already busy, so its windows are busy by construction. It says most for timer rules (``every``,
``after``), such as a follow reminder — and little when a rule fired only a few times.

Actions stamped before the session's start or more than a window after its end are left out and
counted (another stream's, when the actions log is shared; those just after the end are the
session's last chat lines, counted as fired but with nothing to measure). The actions file is read
as a stream; what is kept is one small record per rule.
"""

from __future__ import annotations

import bisect
import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bot.report.stats import S_CHATS, S_DIAMONDS, S_FOLLOWS, SessionStats
from bot.engine.sounds import SOUNDS_RULE
from bot.sinks.console import DISPLAY_KINDS

DEFAULT_WINDOW_MS = 120_000
MEASURES = ("follows", "comments", "diamonds")  # the columns of ``after`` and ``base``


@dataclass
class RuleStats:
    rule: str
    fired: int = 0
    by_timer: int = 0  # firings with no triggering event (timers: every / after)
    kinds: Counter[str] = field(default_factory=Counter)
    first: int | None = None
    last: int | None = None
    looked_ms: int = 0  # the windows' lengths added up (cut short at the session's end)
    after: list[int] = field(default_factory=lambda: [0, 0, 0])  # follows, comments, diamonds in the windows

    @property
    def trigger(self) -> str:
        if self.by_timer == self.fired:
            return "timer"
        return "event" if self.by_timer == 0 else "mixed"

    def after_per_window(self, window_ms: int) -> list[float] | None:
        """Follows, comments and diamonds per window after a firing (None: nothing to look at)."""
        if self.looked_ms <= 0:
            return None
        return [n / self.looked_ms * window_ms for n in self.after]


@dataclass
class ActionStats:
    path: str
    window_ms: int = DEFAULT_WINDOW_MS
    lines: int = 0
    malformed: int = 0
    total: int = 0
    outside: int = 0  # actions left out: stamped before the session's start or over a window after its end
    display: int = 0  # the overlay's leaderboard and poll_update actions: not rule firings, left out
    rules: dict[str, RuleStats] = field(default_factory=dict)
    base: list[float] | None = None  # follows, comments, diamonds per window over the whole session

    def by_rule(self) -> list[RuleStats]:
        """Most fired first; ties by rule id."""
        return sorted(self.rules.values(), key=lambda r: (-r.fired, r.rule))


class _Cumulative:
    """Sums of the per-second counters over any span of seconds, by bisection (sparse: only the
    seconds that had something are stored)."""

    def __init__(self, seconds: dict[int, list[int]]) -> None:
        self.keys = sorted(seconds)
        self.sums: list[list[int]] = [[0, 0, 0]]
        run = [0, 0, 0]
        for k in self.keys:
            row = seconds[k]
            run = [run[0] + row[S_FOLLOWS], run[1] + row[S_CHATS], run[2] + row[S_DIAMONDS]]
            self.sums.append(run)

    def between(self, after_sec: int, until_sec: int) -> list[int]:
        """Totals of the seconds s with after_sec < s <= until_sec."""
        lo = bisect.bisect_right(self.keys, after_sec)
        hi = bisect.bisect_right(self.keys, until_sec)
        a, b = self.sums[lo], self.sums[hi]
        return [b[0] - a[0], b[1] - a[1], b[2] - a[2]]


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def analyze_actions(path: str | Path, session: SessionStats, window_ms: int = DEFAULT_WINDOW_MS) -> ActionStats:
    """Read an actions JSONL file (``--out`` of replay, or the daemon's) against its session's numbers.
    A line that is not an action record is counted as malformed and skipped."""
    path = Path(path)
    out = ActionStats(path=str(path), window_ms=window_ms)
    cum = _Cumulative(session.seconds)
    start, end = session.started, session.ended
    duration = session.duration_ms
    if duration > 0:
        totals = [session.follows, session.chats, session.diamonds]
        out.base = [n / duration * window_ms for n in totals]
    with _open(path) as f:
        for number, line in enumerate(f, 1):
            out.lines = number
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                ts = rec["ts"]
                if not isinstance(ts, int) or isinstance(ts, bool):
                    raise TypeError("ts")
                rule = rec.get("rule")
                rule = "(no rule)" if rule is None else str(rule)
                kind = str(rec.get("kind") or "")
            except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
                out.malformed += 1
                continue
            if isinstance(rec.get("data"), dict) and rec["data"].get("test") is True:
                continue  # fired by a test event from the control page: not the stream's
            if kind in DISPLAY_KINDS or (kind == "sound" and rule == SOUNDS_RULE):
                # the overlay's leaderboard, poll counts, goals, subathon clock and the per-gift sounds of
                # settings: sounds: shown or played, not a rule's firing
                out.display += 1
                continue
            if start is None or end is None or ts < start or ts > end + window_ms:
                out.outside += 1  # another stream's (a shared actions log) or a file of another session
                continue
            out.total += 1
            r = out.rules.get(rule)
            if r is None:
                r = out.rules[rule] = RuleStats(rule)
            r.fired += 1
            r.kinds[kind] += 1
            data = rec.get("data")
            if not rec.get("event_id") and not (isinstance(data, dict) and data.get("merged")):
                r.by_timer += 1  # no triggering event, and not a merge of several thank-yous
            r.first = ts if r.first is None else min(r.first, ts)
            r.last = ts if r.last is None else max(r.last, ts)
            until = min(ts + window_ms, end)
            if until > ts:
                r.looked_ms += until - ts
                got = cum.between(ts // 1000, until // 1000)
                r.after[0] += got[0]
                r.after[1] += got[1]
                r.after[2] += got[2]
    return out
