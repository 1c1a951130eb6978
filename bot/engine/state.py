"""Session statistics and per-viewer counters that conditions and texts can read."""

from __future__ import annotations

from dataclasses import dataclass

from bot.events.model import CHAT, EVENT_TYPES, GIFT, LIKE, VIEWERS, Event, User


@dataclass(slots=True)
class ViewerStats:
    first_seen: int
    chats: int = 0
    gifts: int = 0
    diamonds: int = 0
    likes: int = 0


class SessionState:
    """What happened this session so far: counts by type, diamonds, likes, viewers, viewers' totals."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(EVENT_TYPES, 0)
        self.diamonds = 0
        self.likes = 0
        self.viewers = 0
        self.peak_viewers = 0
        self.started: int | None = None
        self.viewers_by_key: dict[str, ViewerStats] = {}

    def record(self, ev: Event, now: int) -> None:
        """Count one (folded) event."""
        if self.started is None:
            self.started = now
        kind = ev.type
        self.counts[kind] = self.counts.get(kind, 0) + 1
        vs = None
        if ev.user is not None:
            key = ev.user.key
            vs = self.viewers_by_key.get(key)
            if vs is None:
                vs = self.viewers_by_key[key] = ViewerStats(first_seen=now)
        if kind == GIFT:
            value = int(ev.data.get("diamonds", 0)) * int(ev.data.get("count", 1))
            self.diamonds += value
            if vs is not None:
                vs.gifts += 1
                vs.diamonds += value
        elif kind == CHAT:
            if vs is not None:
                vs.chats += 1
        elif kind == LIKE:
            n = int(ev.data.get("count", 0))
            self.likes += n
            if vs is not None:
                vs.likes += n
        elif kind == VIEWERS:
            self.viewers = int(ev.data.get("count", 0))
            self.peak_viewers = max(self.peak_viewers, self.viewers)

    def user_view(self, user: User) -> dict:
        """The ``user`` a template sees: identity plus this session's totals."""
        view = user.to_dict()
        vs = self.viewers_by_key.get(user.key)
        if vs is not None:
            view.update(chats=vs.chats, gifts=vs.gifts, diamonds=vs.diamonds, likes=vs.likes,
                        first_seen=vs.first_seen)
        else:
            view.update(chats=0, gifts=0, diamonds=0, likes=0, first_seen=None)
        return view

    def stats_view(self, now: int) -> dict:
        """The ``stats`` a template sees."""
        c = self.counts
        return {
            "events": sum(c.values()),
            "chats": c["chat"], "gifts": c["gift"], "follows": c["follow"], "shares": c["share"],
            "joins": c["join"], "subscribes": c["subscribe"],
            "diamonds": self.diamonds, "likes": self.likes,
            "viewers": self.viewers, "peak_viewers": self.peak_viewers,
            "minutes": 0 if self.started is None else (now - self.started) // 60_000,
        }
