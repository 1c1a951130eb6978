"""One pass over a session file, in memory that does not grow with the number of events.

Events are read with ``ReplaySource`` (every wire format; a malformed line is counted and
skipped) and go through the engine's own ``Deduper`` and ``StreakFolder``, in the engine's order
and on the engine's clock (the events' time, never backwards; the receive time for recorded
live sessions): a duplicate ``msg_id`` is dropped, a gift streak counts once with its final count,
a streak whose end never came counts when it is flushed. So the report's numbers are the numbers
the rules saw.

What is kept: totals; one small row of counters per minute and per second that had something
(they grow with the session's length, not its events: 10 hours are 600 rows and at most 36,000);
per-viewer totals for gifters, commenters and new followers (they grow with distinct viewers
only); gift types (capped). Nothing is kept per event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.events.dedup import Deduper
from bot.events.model import (CHAT, FOLLOW, GIFT, GIFT_PROGRESS, JOIN, LIKE, SHARE, SUBSCRIBE, UNKNOWN, VIEWERS, Event)
from bot.events.streaks import StreakFolder
from bot.report.collabs import KINDS as COLLAB_KINDS, CollabStats
from bot.sources.replay import ReplaySource, not_a_session

MINUTE_MS = 60_000

# The columns of a per-minute row.
M_ACTIVITY, M_CHATS, M_LIKES, M_GIFTS, M_DIAMONDS, M_FOLLOWS, M_SHARES, M_JOINS, M_SUBS, M_VIEWERS_MAX, \
    M_VIEWERS_LAST = range(11)
MINUTE_FIELDS = ("activity", "chats", "likes", "gifts", "diamonds", "follows", "shares", "joins", "subscribes",
                 "viewers_max", "viewers_last")
# The columns of a per-second row (what the rule-effect windows sum).
S_FOLLOWS, S_CHATS, S_DIAMONDS, S_SHARES = range(4)  # (shares: the CTA variants' report, variants.py)
SECOND_FIELDS = ("follows", "chats", "diamonds", "shares")

# Viewer actions that make up a minute's "activity" (viewer-count updates and progress frames do not).
_ACTIVITY = frozenset({CHAT, LIKE, GIFT, FOLLOW, SHARE, JOIN, SUBSCRIBE})
MAX_GIFT_TYPES = 5_000  # gift names beyond this many distinct ones are pooled as "(other)"
OTHER_GIFTS = "(other gift types)"


@dataclass(slots=True)
class Gifter:
    nickname: str
    unique_id: str
    diamonds: int = 0
    gifts: int = 0
    seq: int = 0  # when the current total was reached: ties rank who got there first higher (as the engine)


@dataclass(slots=True)
class GiftType:
    name: str
    diamonds_each: int
    gifts: int = 0  # gift events (a streak once)
    units: int = 0  # the gifts' counts added up
    diamonds: int = 0


@dataclass
class SessionStats:
    """The numbers of one session. Fill it with ``add`` and ``finish``, or use ``analyze_session``."""

    path: str = ""
    started: int | None = None  # the clock at the first event (ms since the epoch)
    ended: int | None = None  # ... and at the last one (a flushed streak included)
    lines: int = 0
    malformed: int = 0  # lines skipped
    unreadable: str | None = None  # why the file gave no event at all (see replay.not_a_session)
    malformed_messages: int = 0  # broken messages inside an Euler bundle (kept as unknown events)
    duplicates: int = 0
    streaks_flushed: int = 0
    late_frames: int = 0
    test_events: int = 0  # test events from the control page, left out of every figure
    read: Counter[str] = field(default_factory=Counter)  # events decoded, by type (before folding)
    counts: Counter[str] = field(default_factory=Counter)  # events after dedup and folding, by type
    chats: int = 0
    likes: int = 0  # taps, added up
    gifts: int = 0  # gift events, a streak once
    gift_units: int = 0
    diamonds: int = 0
    follows: int = 0  # follow events
    shares: int = 0
    joins: int = 0
    subscribes: int = 0
    peak_viewers: int = 0
    peak_viewers_at: int | None = None
    viewer_samples: int = 0
    minutes: dict[int, list[int]] = field(default_factory=dict)  # minute since start -> row (MINUTE_FIELDS)
    seconds: dict[int, list[int]] = field(default_factory=dict)  # second since the epoch -> row (SECOND_FIELDS)
    gifters: dict[str, Gifter] = field(default_factory=dict)
    chatters: dict[str, list] = field(default_factory=dict)  # key -> [comments, nickname, unique_id]
    followers: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # key -> (first follow, nick, id)
    gift_types: dict[str, GiftType] = field(default_factory=dict)
    collabs: CollabStats = field(default_factory=CollabStats)  # battles and envelopes
    viewers_seen: set[str] = field(default_factory=set)
    _viewer_area: int = 0  # viewer count × ms, for the time-weighted average
    _viewer_last: tuple[int, int] | None = None  # (count, since)
    _viewer_first: int | None = None
    _seq: int = 0

    # -- filling ---------------------------------------------------------------------------

    def add(self, ev: Event, now: int) -> None:
        """Count one event as the rules see it (already deduplicated and folded), at clock ``now``."""
        if self.started is None:
            self.started = now
        if self.ended is None or now > self.ended:
            self.ended = now
        kind = ev.type
        self.counts[kind] += 1
        minute = (now - self.started) // MINUTE_MS
        row = self.minutes.get(minute)
        if row is None:
            row = self.minutes[minute] = [0] * 9 + [-1, -1]
        user = ev.user
        if kind in _ACTIVITY:
            row[M_ACTIVITY] += 1
            if user is not None:
                self.viewers_seen.add(user.key)
        if kind == CHAT:
            self.chats += 1
            row[M_CHATS] += 1
            self._second(now)[S_CHATS] += 1
            if user is not None:
                entry = self.chatters.get(user.key)
                if entry is None:
                    self.chatters[user.key] = [1, user.nickname, user.unique_id]
                else:
                    entry[0] += 1
                    entry[1] = user.nickname
        elif kind == LIKE:
            n = _int(ev.data.get("count"))
            self.likes += n
            row[M_LIKES] += n
        elif kind == GIFT:
            self._gift(ev, now, row)
        elif kind == VIEWERS:
            self._viewers(_int(ev.data.get("count")), now, row)
        elif kind == FOLLOW:
            self.follows += 1
            row[M_FOLLOWS] += 1
            self._second(now)[S_FOLLOWS] += 1
            if user is not None and user.key not in self.followers:
                self.followers[user.key] = (now, user.nickname, user.unique_id)
        elif kind == SHARE:
            self.shares += 1
            row[M_SHARES] += 1
            self._second(now)[S_SHARES] += 1
        elif kind == JOIN:
            self.joins += 1
            row[M_JOINS] += 1
        elif kind == SUBSCRIBE:
            self.subscribes += 1
            row[M_SUBS] += 1
        elif kind in COLLAB_KINDS:
            self.collabs.add(kind, ev.data, now)
        elif kind == UNKNOWN and ev.data.get("kind") == "malformed":
            self.malformed_messages += 1

    def _second(self, now: int) -> list[int]:
        sec = now // 1000
        row = self.seconds.get(sec)
        if row is None:
            row = self.seconds[sec] = [0, 0, 0, 0]
        return row

    def _gift(self, ev: Event, now: int, row: list[int]) -> None:
        data = ev.data
        each = _int(data.get("diamonds"))
        count = max(1, _int(data.get("count", 1)))
        value = each * count
        self.gifts += 1
        self.gift_units += count
        self.diamonds += value
        row[M_GIFTS] += 1
        row[M_DIAMONDS] += value
        self.collabs.gift(value)
        if value:
            self._second(now)[S_DIAMONDS] += value
        name = str(data.get("name") or f"gift {data.get('gift_id', '?')}")
        gt = self.gift_types.get(name)
        if gt is None:
            if len(self.gift_types) >= MAX_GIFT_TYPES:
                name = OTHER_GIFTS
                gt = self.gift_types.get(name)
            if gt is None:
                gt = self.gift_types[name] = GiftType(name, each)
        gt.gifts += 1
        gt.units += count
        gt.diamonds += value
        user = ev.user
        if user is not None:
            g = self.gifters.get(user.key)
            if g is None:
                g = self.gifters[user.key] = Gifter(user.nickname, user.unique_id)
            g.nickname, g.unique_id = user.nickname, user.unique_id
            g.diamonds += value
            g.gifts += 1
            self._seq += 1
            g.seq = self._seq

    def _viewers(self, count: int, now: int, row: list[int]) -> None:
        self.viewer_samples += 1
        if self.peak_viewers_at is None or count > self.peak_viewers:
            self.peak_viewers, self.peak_viewers_at = count, now
        if row[M_VIEWERS_MAX] < count:
            row[M_VIEWERS_MAX] = count
        row[M_VIEWERS_LAST] = count
        if self._viewer_last is not None:
            last, since = self._viewer_last
            self._viewer_area += last * (now - since)
        else:
            self._viewer_first = now
        self._viewer_last = (count, now)

    # -- reading ---------------------------------------------------------------------------

    @property
    def duration_ms(self) -> int:
        if self.started is None or self.ended is None:
            return 0
        return self.ended - self.started

    @property
    def average_viewers(self) -> float | None:
        """The viewer counts TikTok reported, weighted by how long each stood (None: never reported)."""
        if self._viewer_last is None or self._viewer_first is None or self.ended is None:
            return None
        last, since = self._viewer_last
        span = self.ended - self._viewer_first
        if span <= 0:
            return float(last)
        return (self._viewer_area + last * (self.ended - since)) / span

    @property
    def new_followers(self) -> int:
        return len(self.followers)

    def earnings(self, rate: float) -> float:
        return self.diamonds * rate

    def top_gifters(self, n: int = 10) -> list[dict[str, Any]]:
        """Best first; ties: who reached the total first ranks higher (as the engine's leaderboard)."""
        best = sorted(self.gifters.values(), key=lambda g: (-g.diamonds, g.seq))[:n]
        total = self.diamonds or 1
        return [{"rank": i, "nickname": g.nickname, "unique_id": g.unique_id, "diamonds": g.diamonds,
                 "gifts": g.gifts, "share": g.diamonds / total} for i, g in enumerate(best, 1)]

    def top_chatters(self, n: int = 10) -> list[dict[str, Any]]:
        best = sorted(self.chatters.values(), key=lambda e: -e[0])[:n]
        return [{"rank": i, "nickname": e[1], "unique_id": e[2], "comments": e[0]} for i, e in enumerate(best, 1)]

    def follower_list(self, n: int | None = None) -> list[dict[str, Any]]:
        """New followers in the order they followed (the first ``n``)."""
        items = sorted(self.followers.values(), key=lambda f: f[0])
        if n is not None:
            items = items[:n]
        return [{"at": at, "offset": at - (self.started or at), "nickname": nick, "unique_id": uid}
                for at, nick, uid in items]

    def gifts_by_type(self, n: int | None = None) -> list[GiftType]:
        items = sorted(self.gift_types.values(), key=lambda g: (-g.diamonds, -g.gifts, g.name))
        return items if n is None else items[:n]

    def minute_series(self) -> tuple[list[int], dict[str, list[int]]]:
        """Minute indexes from 0 to the last, with every column; minutes without events are zeros
        (the viewer count carries over from the last report). A clock that jumped days ahead gives
        only the minutes that had events."""
        if not self.minutes:
            return [], {f: [] for f in MINUTE_FIELDS}
        last = max(self.minutes)
        xs = list(range(last + 1)) if last <= 14 * 24 * 60 else sorted(self.minutes)
        cols: dict[str, list[int]] = {f: [] for f in MINUTE_FIELDS}
        viewers = None
        for m in xs:
            row = self.minutes.get(m)
            for i, f in enumerate(MINUTE_FIELDS[:M_VIEWERS_MAX]):
                cols[f].append(row[i] if row else 0)
            if row is not None and row[M_VIEWERS_LAST] >= 0:
                cols["viewers_max"].append(row[M_VIEWERS_MAX])
                viewers = row[M_VIEWERS_LAST]
            else:
                cols["viewers_max"].append(viewers if viewers is not None else 0)
            cols["viewers_last"].append(viewers if viewers is not None else 0)
        return xs, cols

    def busiest_minutes(self, n: int = 5) -> list[dict[str, Any]]:
        """The minutes with the most viewer actions (comments, like events, gifts, follows, shares,
        joins, subscriptions), busiest first; ties: the earlier minute first."""
        best = sorted(self.minutes.items(), key=lambda kv: (-kv[1][M_ACTIVITY], kv[0]))[:n]
        out = []
        for m, row in best:
            if row[M_ACTIVITY] == 0:
                continue
            out.append({"minute": m, "at": (self.started or 0) + m * MINUTE_MS,
                        **{f: row[i] for i, f in enumerate(MINUTE_FIELDS[:M_VIEWERS_MAX])}})
        return out

    def per_minute(self, total: int) -> float:
        minutes = self.duration_ms / MINUTE_MS
        return total / minutes if minutes > 0 else 0.0

    def summary(self, rate: float) -> dict[str, Any]:
        """The headline numbers (also what ``compare`` lines up)."""
        avg = self.average_viewers
        return {
            "duration_ms": self.duration_ms,
            "events": sum(n for k, n in self.counts.items() if k != GIFT_PROGRESS),
            "peak_viewers": self.peak_viewers, "average_viewers": avg, "viewers_seen": len(self.viewers_seen),
            "comments": self.chats, "comments_per_minute": self.per_minute(self.chats), "likes": self.likes,
            "gifts": self.gifts, "diamonds": self.diamonds, "diamonds_per_hour": self.per_minute(self.diamonds) * 60,
            "earnings": self.earnings(rate), "gifters": len(self.gifters), "new_followers": self.new_followers,
            "shares": self.shares, "joins": self.joins, "subscribes": self.subscribes,
        }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def analyze_session(path: str | Path, *, streak_silence_ms: int = 5000, dedup_window: int = 500_000,
                    room_id: str = "") -> SessionStats:
    """Read a session file once and return its numbers (raises OSError if it cannot be read)."""
    source = ReplaySource(path, room_id=room_id)
    stats = SessionStats(path=str(path))
    dedup = Deduper(dedup_window)
    folder = StreakFolder(streak_silence_ms)
    add = stats.add
    clock = 0
    due = None  # the folder's next deadline, cached: only a gift can change it
    for ev in source.events():
        t = ev.ts if ev.received is None else ev.received
        if t > clock:  # the engine's VirtualClock: never backwards
            clock = t
        if due is not None and due <= clock:  # as Engine.feed: what is due first, at its own time
            for flushed in folder.flush_due(clock):
                add(flushed, flushed.ts)
            due = folder.next_deadline()
        if dedup.is_duplicate(ev.msg_id):
            continue
        if "test" in ev.data:  # a test event from the control page: not part of the stream's figures
            stats.test_events += 1
            continue
        if ev.type == GIFT:
            for folded in folder.fold(ev, clock):
                add(folded, clock)
            due = folder.next_deadline()
        else:
            add(ev, clock)
    for flushed in folder.flush_all():  # as Engine.close: open streaks end at their own deadline
        add(flushed, flushed.ts)
    stats.lines = source.lines
    stats.malformed = source.malformed
    stats.unreadable = not_a_session(source)
    stats.read = Counter(source.read)
    stats.duplicates = dedup.dropped
    stats.streaks_flushed = folder.flushed
    stats.late_frames = folder.late_frames
    return stats
