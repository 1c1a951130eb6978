"""The fields templates and conditions can read, known before any event arrives.

The loader checks ``user.nicknam`` or ``event.txt`` against these at load (with a "did you
mean"). They mirror the views the engine builds (``core.Engine._event_context``,
``state.SessionState.user_view`` and ``stats_view``, ``Engine._since_view``, ...);
tests/test_loader.py checks that they stay the same.
"""

from __future__ import annotations

from bot.engine.templates import Fields
from bot.events.model import CHAT, DATA_FIELDS, EVENT_TYPES, GIFT, GIFT_PROGRESS, UNKNOWN, User

EVENT_BASE = ("type", "ts", "msg_id", "room_id")
# Fields the engine or the sources add to some event types beyond DATA_FIELDS.
EVENT_EXTRA: dict[str, tuple[str, ...]] = {
    GIFT: ("total_diamonds", "flushed"),  # flushed: a lost streak end, flushed after silence
    GIFT_PROGRESS: ("total_diamonds",),
    UNKNOWN: ("error",),  # a malformed message of a bundle
    CHAT: ("vote",),  # true when the line was counted as a vote of the open poll
}
USER_IDENTITY = tuple(User().to_dict())
USER_SESSION = ("chats", "gifts", "diamonds", "likes", "first_seen", "last_thanked")
USER_POLICY = ("strikes", "muted", "muted_until")  # the policy guard's moderation (bot.policy)
USER_LIFETIME = ("diamonds", "gifts", "chats", "likes", "first_seen", "sessions")
STATS = ("events", "chats", "gifts", "follows", "shares", "joins", "subscribes", "diamonds", "likes", "viewers",
         "peak_viewers", "chats_per_minute", "minutes")
SINCE = tuple(sorted(EVENT_TYPES)) + ("ms",)
RULE = ("id", "fired")
TIER = ("name", "min")
SPONSOR = ("name", "disclosure", "code", "link")


def _leaves(names: tuple[str, ...], what: str = "") -> Fields:
    return Fields(dict.fromkeys(names), what)


USER = Fields({**dict.fromkeys(USER_IDENTITY + USER_SESSION + USER_POLICY), "lifetime": _leaves(USER_LIFETIME),
               "vars": None})
COMMON = {"stats": _leaves(STATS), "since": _leaves(SINCE), "rule": _leaves(RULE), "tier": _leaves(TIER),
          "sponsor": _leaves(SPONSOR), "goals": None, "points": None}  # goals: by goal id (bot/engine/features.py)


def event_fields(event_type: str) -> tuple[str, ...]:
    """What ``event`` holds for one event type."""
    return EVENT_BASE + DATA_FIELDS.get(event_type, ()) + EVENT_EXTRA.get(event_type, ())


def context_fields(event_types: frozenset[str] | None) -> dict[str, Fields | None]:
    """The known fields for a rule on ``event_types`` (None: a timer). A field of ``event`` is
    known if at least one of the types has it: ``when:`` may tell the types apart."""
    out: dict[str, Fields | None] = dict(COMMON)
    if event_types is None:
        return out
    out["user"] = out["winner"] = USER
    if event_types and event_types <= EVENT_TYPES:
        names = dict.fromkeys(f for t in sorted(event_types) for f in event_fields(t))
        out["event"] = Fields(dict.fromkeys(names), " or ".join(sorted(event_types)) + " events")
    return out
