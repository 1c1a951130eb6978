"""Session statistics, per-viewer counters and rule variables that conditions and texts read."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from bot.events.model import CHAT, EVENT_TYPES, FOLLOW, GIFT, LIKE, VIEWERS, Event, User

LIFETIME_FIELDS = ("diamonds", "gifts", "chats", "likes")


@dataclass(slots=True)
class ViewerStats:
    first_seen: int
    chats: int = 0
    gifts: int = 0
    diamonds: int = 0
    likes: int = 0
    last_thanked: int | None = None


class SessionState:
    """What happened this session so far, plus lifetime totals carried in from earlier sessions."""

    def __init__(self, lifetime: dict[str, dict[str, Any]] | None = None) -> None:
        self.counts: dict[str, int] = dict.fromkeys(EVENT_TYPES, 0)
        self.diamonds = 0
        self.likes = 0
        self.viewers = 0
        self.peak_viewers = 0
        self.started: int | None = None
        self.viewers_by_key: dict[str, ViewerStats] = {}
        self.lifetime: dict[str, dict[str, Any]] = lifetime or {}  # earlier sessions, by viewer key
        self.vars: dict[str, Any] = {}
        self.user_vars: dict[str, dict[str, Any]] = {}
        self._recent_chats: deque[int] = deque()
        # Rows of the lifetime totals that are not viewers (lifetime goals): set by the engine.
        self.extra_lifetime: Callable[[], dict[str, Any]] | None = None

    def record(self, ev: Event, now: int) -> None:
        """Count one (folded) event."""
        if self.started is None:
            self.started = now
        kind = ev.type
        self.counts[kind] += 1
        vs = None
        if ev.user is not None:
            key = ev.user.key
            vs = self.viewers_by_key.get(key)
            if vs is None:
                vs = self.viewers_by_key[key] = ViewerStats(first_seen=now)
        if kind == GIFT:
            value = ev.data.get("diamonds", 0) * ev.data.get("count", 1)
            self.diamonds += value
            if vs is not None:
                vs.gifts += 1
                vs.diamonds += value
        elif kind == CHAT:
            recent = self._recent_chats
            recent.append(now)
            while recent[0] <= now - 60_000:  # (the last minute is all that is read: bounded)
                recent.popleft()
            if vs is not None:
                vs.chats += 1
        elif kind == LIKE:
            n = ev.data.get("count", 0)
            self.likes += n
            if vs is not None:
                vs.likes += n
        elif kind == VIEWERS:
            self.viewers = ev.data.get("count", 0)
            self.peak_viewers = max(self.peak_viewers, self.viewers)

    def thanked(self, user_key: str, now: int) -> None:
        vs = self.viewers_by_key.get(user_key)
        if vs is not None:
            vs.last_thanked = now

    def chats_last_minute(self, now: int) -> int:
        recent = self._recent_chats
        while recent and recent[0] <= now - 60_000:
            recent.popleft()
        return len(recent)

    def lifetime_of(self, key: str) -> dict[str, Any]:
        """Totals over every session so far, this one included."""
        before = self.lifetime.get(key, {})
        vs = self.viewers_by_key.get(key)
        out = {f: int(before.get(f, 0)) + (getattr(vs, f) if vs else 0) for f in LIFETIME_FIELDS}
        out["first_seen"] = before.get("first_seen", vs.first_seen if vs else None)
        out["sessions"] = int(before.get("sessions", 0)) + (1 if vs else 0)
        return out

    def lifetime_snapshot(self) -> dict[str, dict[str, Any]]:
        """Everything to keep for the next session."""
        merged = dict(self.lifetime)
        for key in self.viewers_by_key:
            merged[key] = self.lifetime_of(key)
        if self.extra_lifetime is not None:
            merged.update(self.extra_lifetime())
        return merged

    def user_view(self, user: User) -> dict:
        """The ``user`` a template sees: identity, this session's totals, lifetime totals, variables."""
        view = user.to_dict()
        key = user.key
        vs = self.viewers_by_key.get(key)
        if vs is not None:
            view.update(chats=vs.chats, gifts=vs.gifts, diamonds=vs.diamonds, likes=vs.likes,
                        first_seen=vs.first_seen, last_thanked=vs.last_thanked)
        else:
            view.update(chats=0, gifts=0, diamonds=0, likes=0, first_seen=None, last_thanked=None)
        view["lifetime"] = self.lifetime_of(key)
        view["vars"] = self.user_vars.get(key, {})
        return view

    def stats_view(self, now: int) -> dict:
        """The ``stats`` a template sees."""
        c = self.counts
        return {
            "events": sum(c.values()),
            "chats": c["chat"], "gifts": c["gift"], "follows": c[FOLLOW], "shares": c["share"],
            "joins": c["join"], "subscribes": c["subscribe"],
            "diamonds": self.diamonds, "likes": self.likes,
            "viewers": self.viewers, "peak_viewers": self.peak_viewers,
            "chats_per_minute": self.chats_last_minute(now),
            "minutes": 0 if self.started is None else (now - self.started) // 60_000,
        }
