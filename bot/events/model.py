"""The normalized event: one shape for every source and wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Every event type the engine knows. Rules may only name these.
CHAT = "chat"
GIFT = "gift"
GIFT_PROGRESS = "gift_progress"
LIKE = "like"
VIEWERS = "viewers"
FOLLOW = "follow"
SHARE = "share"
JOIN = "join"
SUBSCRIBE = "subscribe"
LIVE_END = "live_end"
UNKNOWN = "unknown"
TOP_GIFTER = "top_gifter"  # made by the engine when a viewer climbs into the top gifters
CONNECT = "connect"  # made by live sources when they (re)connect
DISCONNECT = "disconnect"  # ... and when the connection drops or closes
# On-stream features (bot/engine/features.py): made by the engine, and the timer's controls.
GOAL_REACHED = "goal_reached"
SUBATHON_END = "subathon_end"
SUBATHON_CONTROL = "subathon_control"  # pause / resume / add time (the daemon's POST /subathon/...)
FIRST_CHAT = "first_chat"  # a viewer's first chat line ever (bot/engine/credits.py)
POINTS_CONTROL = "points_control"  # give or take a viewer's points (the daemon's POST /points/adjust)
POLL_CONTROL = "poll_control"  # open / close a poll (the control page's POST /api/poll; bot/engine/pollcontrol.py)
FEATURE_TYPES = frozenset({GOAL_REACHED, SUBATHON_END, SUBATHON_CONTROL, FIRST_CHAT, POINTS_CONTROL, POLL_CONTROL})

MODERATION = "moderation"  # made by the policy guard for a chat line it flags (bot.policy)

# Collaborations and TikTok's other room events (issue 13; see EVENTS-SPEC in the README's field table).
# "us" is the creator whose room we read (the room's host), "them" the opponent side of a battle.
BATTLE_START = "battle_start"
BATTLE_UPDATE = "battle_update"
BATTLE_END = "battle_end"
BATTLE_ARMIES = "battle_armies"
COHOST_JOIN = "cohost_join"
COHOST_LEAVE = "cohost_leave"
GUEST_JOIN = "guest_join"
GUEST_LEAVE = "guest_leave"
LINKMIC_LAYER = "linkmic_layer"
ENVELOPE = "envelope"
SUPERFAN_JOIN = "superfan_join"
SUPERFAN_BOX = "superfan_box"
QUESTION = "question"
EMOTE = "emote"
GOAL_UPDATE = "goal_update"
TIKTOK_POLL = "tiktok_poll"
RANK_UPDATE = "rank_update"
MOD_DELETE = "mod_delete"
ROOM_PIN = "room_pin"
LIVE_PAUSE = "live_pause"
LIVE_RESUME = "live_resume"
COLLAB_TYPES: frozenset[str] = frozenset(
    {BATTLE_START, BATTLE_UPDATE, BATTLE_END, BATTLE_ARMIES, COHOST_JOIN, COHOST_LEAVE, GUEST_JOIN, GUEST_LEAVE,
     LINKMIC_LAYER, ENVELOPE, SUPERFAN_JOIN, SUPERFAN_BOX, QUESTION, EMOTE, GOAL_UPDATE, TIKTOK_POLL, RANK_UPDATE,
     MOD_DELETE, ROOM_PIN, LIVE_PAUSE, LIVE_RESUME}
)

EVENT_TYPES: frozenset[str] = frozenset(
    {CHAT, GIFT, GIFT_PROGRESS, LIKE, VIEWERS, FOLLOW, SHARE, JOIN, SUBSCRIBE, LIVE_END, UNKNOWN, TOP_GIFTER,
     CONNECT, DISCONNECT, MODERATION}
) | COLLAB_TYPES | FEATURE_TYPES

# Per-type data fields, in the order they are written out.
DATA_FIELDS: dict[str, tuple[str, ...]] = {
    CHAT: ("text",),
    # name: the gift's original (English) name, which rules match; display_name: the localized name a
    # source showed (TikFinity's giftName beside originalName), only when it differs
    GIFT: ("gift_id", "name", "diamonds", "count", "gift_type", "streak_end", "group_id", "display_name"),
    GIFT_PROGRESS: ("gift_id", "name", "diamonds", "count", "gift_type", "streak_end", "group_id", "display_name"),
    LIKE: ("count", "total"),
    VIEWERS: ("count",),
    SUBSCRIBE: ("months",),
    UNKNOWN: ("kind",),
    TOP_GIFTER: ("rank", "previous_rank", "diamonds"),
    CONNECT: ("source",),
    DISCONNECT: ("source", "reason"),
    LIVE_END: ("source", "reason"),
    # opponents / top: lists of {user_id, unique_id, nickname} (top: and score), best first; mvp: one such or None
    BATTLE_START: ("battle_id", "opponents", "duration_s"),
    BATTLE_UPDATE: ("battle_id", "our_score", "their_score", "time_left_s"),
    BATTLE_END: ("battle_id", "our_score", "their_score", "winner", "mvp", "top"),
    BATTLE_ARMIES: ("battle_id", "our_score", "their_score", "top"),
    COHOST_JOIN: ("channel_id",),  # event.user is the co-host / guest
    COHOST_LEAVE: ("channel_id",),
    GUEST_JOIN: ("channel_id",),
    GUEST_LEAVE: ("channel_id",),
    LINKMIC_LAYER: ("action", "channel_id", "users"),  # users: list of {user_id, unique_id, nickname}
    ENVELOPE: ("coins", "diamonds", "people"),
    SUPERFAN_JOIN: (),
    SUPERFAN_BOX: ("coins", "people"),
    QUESTION: ("text",),
    EMOTE: ("emote_id",),
    GOAL_UPDATE: ("goal_id", "description", "progress", "target"),
    TIKTOK_POLL: ("poll_id", "title", "options", "phase"),  # options: list of {text, votes}
    RANK_UPDATE: ("rank", "rank_type"),
    MOD_DELETE: ("msg_ids",),
    ROOM_PIN: ("text", "pinned_by"),  # pinned_by: a user dict or None
    LIVE_PAUSE: (),
    LIVE_RESUME: (),
    GOAL_REACHED: ("goal_id", "title", "target", "progress", "step", "steps", "scope", "goal_type"),
    SUBATHON_END: ("added_ms",),
    SUBATHON_CONTROL: ("op", "ms"),
    FIRST_CHAT: ("text",),
    POINTS_CONTROL: ("user_key", "points"),
    MODERATION: ("reason", "strikes", "muted_until", "checks"),
    POLL_CONTROL: ("op", "question", "options", "duration_ms"),
}

STREAKABLE_GIFT_TYPE = 1
MAX_INT = 2**53 - 1  # the largest whole number an event carries (JavaScript's safe integers)


@dataclass(slots=True)
class User:
    """Who caused an event. Every field is plain data, never code."""

    user_id: str = ""
    unique_id: str = ""
    nickname: str = ""
    follow_role: int = 0  # 0 none, 1 follower, 2 friend, 3 (TikTok's followRole; 3 seen on TikFinity lines)
    is_moderator: bool = False
    is_subscriber: bool = False
    gifter_level: int = 0
    key: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        # A stable identity for per-user state: the numeric id, else the @handle. Users are not
        # changed after they are made, so it is computed once.
        self.key = self.user_id or self.unique_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "unique_id": self.unique_id,
            "nickname": self.nickname,
            "follow_role": self.follow_role,
            "is_moderator": self.is_moderator,
            "is_subscriber": self.is_subscriber,
            "gifter_level": self.gifter_level,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> User:
        """Read back ``to_dict``; raises ValueError or TypeError on values of the wrong kind."""
        def text(k: str) -> str:
            v = d.get(k)
            if v is None:
                return ""
            if isinstance(v, (dict, list)):
                raise ValueError(f"user field '{k}' is not text")
            return str(v)

        def number(k: str) -> int:
            v = d.get(k) or 0
            try:
                n = int(v)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"user field '{k}' is not a whole number ({str(exc)[:80]})") from None
            if not -MAX_INT <= n <= MAX_INT:
                raise ValueError(f"user field '{k}' is out of range ({str(v)[:40]})")
            return n

        return cls(
            user_id=text("user_id"),
            unique_id=text("unique_id"),
            nickname=text("nickname"),
            follow_role=number("follow_role"),
            is_moderator=bool(d.get("is_moderator")),
            is_subscriber=bool(d.get("is_subscriber")),
            gifter_level=number("gifter_level"),
        )


@dataclass(slots=True)
class Event:
    """One normalized live event.

    ``data`` holds the per-type fields listed in ``DATA_FIELDS`` (chat ``text``; gift
    ``gift_id``, ``name``, ``diamonds`` per unit, ``count``, ``gift_type``, ``streak_end``, and
    ``group_id`` — the streak's id — when the source gives one;
    like ``count`` and ``total``; viewers ``count``). ``raw`` keeps the payload as received.
    """

    type: str
    ts: int  # milliseconds since the epoch
    room_id: str = ""
    msg_id: str = ""
    user: User | None = None
    data: dict[str, Any] = field(default_factory=dict)
    raw: Any = None
    received: int | None = None  # live: when it reached us (ms, wall clock), the engine's time for it

    @property
    def is_streak_frame(self) -> bool:
        """A gift frame of a streak still in progress (more frames will follow)."""
        return (
            self.type == GIFT
            and self.data.get("gift_type") == STREAKABLE_GIFT_TYPE
            and not self.data.get("streak_end")
        )

    def to_dict(self, with_raw: bool = True) -> dict[str, Any]:
        """The normalized JSONL record (read back by ``bot.events.wire``)."""
        out: dict[str, Any] = {
            "type": self.type,
            "ts": self.ts,
            "room_id": self.room_id,
            "msg_id": self.msg_id,
            "user": self.user.to_dict() if self.user else None,
            "data": self.data,
        }
        if self.received is not None:
            out["recv"] = self.received
        if with_raw and self.raw is not None:
            out["raw"] = self.raw
        return out
