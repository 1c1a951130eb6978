"""Read events off the wire: three real formats, detected per line.

1. Our normalized JSONL, exactly as ``Event.to_dict()`` writes it (``{"type", "ts", ...}``).
2. TikFinity's local WebSocket / TikTok-Live-Connector v1: ``{"event": "gift", "data": {...}}``
   with flat camelCase fields (``uniqueId``, ``giftName``, ``diamondCount``, ``repeatEnd``, ...).
3. Euler Stream bundles: ``{"timestamp": ..., "messages": [{"type": "WebcastGiftMessage",
   "data": {...}}]}``, whose ``data`` is TikTok's protobuf message as JSON (``common.msgId``,
   ``user.uniqueId``, ``giftDetails.diamondCount`` or ``gift.diamondCount``, ...).

Anything else raises ``DecodeError`` with one short sentence. In an Euler bundle, one broken
message does not sink the others: it becomes an ``unknown`` event with ``kind: "malformed"``.
Event kinds we do not model become ``unknown`` events (``data.kind`` names them), not errors.

Every event decoded here can be written by ``Event.to_dict`` (the recorder) and read back as the
same event, so refused too: lines over ``MAX_LINE`` (our own records: ``MAX_RECORD``), payloads
nested deeper than orjson writes, and whole numbers beyond ``MAX_INT``.

The counts of a TikFinity line or an Euler message (diamonds, gift repeats, likes, viewers, months)
must be 0 to ``MAX_COUNT``, and a gift worth at most ``MAX_COUNT`` diamonds in all; anything else is
refused as a wrong-typed field is (see ``_count``).
"""

from __future__ import annotations

from typing import Any

import orjson

from bot.events.model import (CHAT, DATA_FIELDS, EVENT_TYPES, FOLLOW, GIFT, JOIN, LIKE, LIVE_END, MAX_INT, SHARE,
                              SUBSCRIBE, UNKNOWN, VIEWERS, Event, User)

MAX_LINE = 1 << 20  # 1 MiB: longer lines are refused, not parsed
# Our own records (``Event.to_dict``, what the recorder writes) hold the payload as received beside
# its normalized fields, so a record of a MAX_LINE payload is up to about twice as long.
MAX_RECORD = 2 * MAX_LINE + (64 << 10)
_RECORD_START = (b'{"type":', '{"type":')  # how ``Event.to_dict`` serialized by orjson begins
# A payload is kept with its event (``Event.raw``) and written back by the recorder, so one that
# orjson cannot write (nested deeper than it goes, about 250 levels; from Python callers also keys
# that are not text, whole numbers beyond 64 bits, lone surrogates) is refused here, at the edge.
# Nesting that deep takes at least two bytes a level: shorter lines need no check.
_SHALLOW = 400
# Whole numbers beyond ``MAX_INT`` (2**53 - 1) are refused: JSON readers in JavaScript (overlays,
# Streamer.bot) lose precision past it, and orjson cannot write integers beyond 64 bits at all.
# The largest count a TikFinity line or an Euler message may carry (``diamondCount``, ``repeatCount``,
# ``likeCount``, ``viewerCount``, ``subMonth``; a stream's ``totalLikeCount`` may reach ``MAX_INT``,
# as a long stream of a big creator can pass a billion likes), and the most one gift may be worth
# (``diamondCount`` times ``repeatCount``). TikTok's dearest gift is about 45,000 diamonds and the
# protobuf schemas' counters are 32-bit, so a billion is already nonsense; the bound also keeps the
# session sums built from these counts far below ``MAX_INT`` (9 million gifts at the limit first).
MAX_COUNT = 10**9


class DecodeError(ValueError):
    """A line that is not a valid event in any known format."""


def decode_line(line: bytes | str, *, fallback_ts: int = 0, room_id: str = "") -> list[Event]:
    """Decode one line of any supported format into events."""
    size = len(line) if isinstance(line, (bytes, bytearray)) or len(line) * 4 <= MAX_LINE else len(line.encode(
        "utf-8", "surrogatepass"))
    if size > MAX_LINE and (size > MAX_RECORD or line[:8] not in _RECORD_START):
        raise DecodeError(f"line too long ({size} bytes; the limit is {MAX_LINE})")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    return _decode(obj, fallback_ts, room_id, size > _SHALLOW)


def decode_obj(obj: Any, *, fallback_ts: int = 0, room_id: str = "") -> list[Event]:
    """Decode one already-parsed JSON value (the WebSocket and webhook sources use this)."""
    return _decode(obj, fallback_ts, room_id, True)


def _decode(obj: Any, fallback_ts: int, room_id: str, check_raw: bool) -> list[Event]:
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a JSON object, got {type(obj).__name__}")
    try:
        if "event" in obj:
            if check_raw:
                _keepable(obj)
            return [_flat(obj, fallback_ts, room_id)]
        if "messages" in obj:
            return _euler(obj, fallback_ts, room_id, check_raw)
        if "type" in obj and "ts" in obj:
            if check_raw and obj.get("raw") is not None:
                _keepable(obj["raw"])
            return [_normalized(obj)]
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError) as exc:
        raise DecodeError(str(exc)) from None
    raise DecodeError("unknown format: expected 'event' (TikFinity), 'messages' (Euler) or 'type' and 'ts'")


# -- coercion helpers --------------------------------------------------------------------------

def _keepable(raw: Any) -> None:
    """ValueError unless ``raw`` can be written back where a record keeps it (``{"raw": ...}``)."""
    try:
        orjson.dumps([raw])
    except TypeError as exc:
        raise ValueError(f"cannot be kept as received: {str(exc)[:100]}") from None


def _int(value: Any, field: str) -> int:
    """An int from an int, a float or a numeric string (TikTok sends ids and times as strings)."""
    if type(value) is int and -MAX_INT <= value <= MAX_INT:
        return value
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    number: int | None = None
    if isinstance(value, int):
        number = int(value)
    elif isinstance(value, float) and value == value and abs(value) < 1e18:
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            pass
    if number is None:
        raise ValueError(f"field '{field}' is not a number: {str(value)[:40]!r}")
    if not -MAX_INT <= number <= MAX_INT:
        raise ValueError(f"field '{field}' is out of range: {str(value)[:40]!r}")
    return number


def _count(value: Any, field: str, limit: int = MAX_COUNT) -> int:
    """A count from the wire, 0 to ``MAX_COUNT``; ValueError naming the field otherwise.

    A negative or absurd count is corrupt data, and it is refused, never clamped: the line is
    refused as for a wrong-typed field (``DecodeError``; the replay counts it as malformed), and in
    an Euler bundle that one message becomes an ``unknown``/``malformed`` event, kept and counted,
    the rest of the bundle decoded. For a gift, ``diamondCount`` or ``repeatCount`` below 0 would
    subtract from the gifter's and the session's diamonds. Counters are refused too, not clamped at
    0: a made-up 0 is a wrong value rules would act on (a viewer count of 0, a like of nothing), while
    a refused one loses no real data: the next ``roomUser``/like message carries the real numbers.
    Missing counts (``None``) are still 0, as for every other field.
    """
    number = _int(value, field)
    if not 0 <= number <= limit:
        raise ValueError(f"field '{field}' is out of range: {str(value)[:40]!r} (a count is 0 to {limit:,})")
    return number


def _str(value: Any, field: str) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"field '{field}' is not text: {type(value).__name__}")


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _ms(value: Any, field: str) -> int:
    """Milliseconds since the epoch; values that look like seconds are scaled."""
    ts = _int(value, field)
    return ts * 1000 if 0 < ts < 100_000_000_000 else ts


def _dict(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"field '{field}' is not an object: {type(value).__name__}")
    return value


def _first(d: dict, *keys: str) -> Any:
    for k in keys:
        v = d.get(k)
        if v is not None:
            return v
    return None


def _user(d: dict) -> User:
    """A User from a protobuf ``user`` object (Euler; camelCase, with TikTok's alternative names)."""
    follow = _dict(d.get("followInfo"), "followInfo")
    identity = _dict(d.get("userIdentity"), "userIdentity")
    return User(
        user_id=_str(_first(d, "userId", "id"), "userId"),
        unique_id=_str(_first(d, "uniqueId", "displayId", "unique_id"), "uniqueId"),
        nickname=_str(_first(d, "nickname", "nickName"), "nickname"),
        follow_role=_int(_first(d, "followRole", "followStatus") or follow.get("followStatus"), "followRole"),
        is_moderator=_bool(_first(d, "isModerator") or identity.get("isModeratorOfAnchor")),
        is_subscriber=_bool(_first(d, "isSubscriber") or identity.get("isSubscriberOfAnchor")),
        gifter_level=_int(d.get("gifterLevel"), "gifterLevel"),
    )


_USER_FIELDS = ("userId", "uniqueId", "nickname", "followRole", "isModerator", "isSubscriber", "gifterLevel")
_user_cache: dict[tuple, User] = {}


def _plain_user(user_id: Any, unique_id: Any, nickname: Any, follow_role: Any, moderator: Any, subscriber: Any,
                level: Any) -> User:
    """A User from a flat line's seven fields (``_USER_FIELDS``) and nothing else."""
    return User(user_id=_str(user_id, "userId"), unique_id=_str(unique_id, "uniqueId"),
                nickname=_str(nickname, "nickname"), follow_role=_int(follow_role, "followRole"),
                is_moderator=_bool(moderator), is_subscriber=_bool(subscriber), gifter_level=_int(level, "gifterLevel"))


def _flat_user(d: dict) -> User:
    """The viewer of a flat line, from ``_USER_FIELDS`` only, remembered: the same viewer sends
    many events. Users are never changed after decoding, so events may share one. The result
    depends on the key alone, so it never depends on the lines decoded before."""
    user_id, unique_id, nickname = d.get("userId"), d.get("uniqueId"), d.get("nickname")
    # 1, 1.0 and true are equal keys but not the same text: the types are part of the key
    key = (user_id, unique_id, nickname, type(user_id), type(unique_id), type(nickname), d.get("followRole"),
           d.get("isModerator"), d.get("isSubscriber"), d.get("gifterLevel"))
    try:
        user = _user_cache.get(key)
    except TypeError:  # a list or object where a value belongs: the slow way gives the right error
        return _plain_user(*key[:3], *key[6:])
    if user is None:
        user = _plain_user(*key[:3], *key[6:])
        if len(_user_cache) >= 50_000:
            _user_cache.clear()
        _user_cache[key] = user
    return user


# -- 1. normalized -----------------------------------------------------------------------------

_FIELD_TYPES = {"text": "str", "gift_id": "int", "name": "str", "diamonds": "int", "count": "int",
                "gift_type": "int", "streak_end": "bool", "group_id": "str", "total": "int", "months": "int",
                "kind": "str", "rank": "int", "previous_rank": "int?", "source": "str", "reason": "str",
                "display_name": "str", "battle_id": "str", "opponents": "list", "duration_s": "int",
                "our_score": "int", "their_score": "int", "time_left_s": "int", "winner": "str", "mvp": "dict?",
                "top": "list", "channel_id": "str", "action": "str", "users": "list", "coins": "int",
                "people": "int", "emote_id": "str", "goal_id": "str", "description": "str", "progress": "int",
                "target": "int", "poll_id": "str", "title": "str", "options": "list", "phase": "str",
                "rank_type": "str", "msg_ids": "list", "pinned_by": "dict?"}


def _typed(field: str, value: Any) -> Any:
    kind = _FIELD_TYPES.get(field, "any")
    if kind == "int":
        return _int(value, field)
    if kind == "int?":
        return None if value is None else _int(value, field)
    if kind == "str":
        return _str(value, field)
    if kind == "bool":
        return _bool(value)
    if kind == "list":
        if not isinstance(value, list):
            raise ValueError(f"field '{field}' is not a list: {type(value).__name__}")
        return value
    if kind == "dict?":
        return None if value is None else _dict(value, field)
    return value


def _normalized(obj: dict) -> Event:
    kind = obj["type"]
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ValueError(f"unknown event type {str(kind)[:40]!r}")
    user = obj.get("user")
    raw_data = _dict(obj.get("data"), "data")
    data = {k: _typed(k, raw_data[k]) for k in DATA_FIELDS.get(kind, ()) if k in raw_data}
    if raw_data.get("flushed"):
        data["flushed"] = True
    if kind == UNKNOWN and "error" in raw_data:
        data["error"] = _str(raw_data["error"], "error")
    return Event(
        type=kind,
        ts=_int(obj["ts"], "ts"),
        room_id=_str(obj.get("room_id"), "room_id"),
        msg_id=_str(obj.get("msg_id"), "msg_id"),
        user=User.from_dict(_dict(user, "user")) if user is not None else None,
        data=data,
        raw=obj.get("raw"),
        received=None if obj.get("recv") is None else _int(obj["recv"], "recv"),
    )


# -- 2. TikFinity / TikTok-Live-Connector v1 ---------------------------------------------------

_FLAT_TYPES = {"chat": CHAT, "gift": GIFT, "like": LIKE, "member": JOIN, "roomUser": VIEWERS, "follow": FOLLOW,
               "share": SHARE, "subscribe": SUBSCRIBE, "streamEnd": LIVE_END, "social": "social"}
_NO_USER = (VIEWERS, LIVE_END)


def _social_kind(display_type: str) -> str | None:
    if "follow" in display_type:
        return FOLLOW
    if "share" in display_type:
        return SHARE
    return None


def _flat(obj: dict, fallback_ts: int, room_id: str) -> Event:
    name = obj["event"]
    if not isinstance(name, str):
        raise ValueError("field 'event' is not text")
    d = _dict(obj.get("data"), "data")
    kind = _FLAT_TYPES.get(name, UNKNOWN)
    data: dict[str, Any]
    if kind == "social":
        kind = _social_kind(_str(d.get("displayType"), "displayType")) or UNKNOWN
    if kind == CHAT:
        data = {"text": _str(d.get("comment"), "comment")}
    elif kind == GIFT:
        data = _gift_data(d.get("giftId"), d.get("giftName"), d.get("diamondCount"), d.get("repeatCount"),
                          d.get("giftType"), d.get("repeatEnd"), d.get("groupId"))
    elif kind == LIKE:
        data = {"count": _count(d.get("likeCount"), "likeCount"),
                "total": _count(d.get("totalLikeCount"), "totalLikeCount", MAX_INT)}
    elif kind == VIEWERS:
        data = {"count": _count(d.get("viewerCount"), "viewerCount")}
    elif kind == SUBSCRIBE:
        data = {"months": _count(d.get("subMonth"), "subMonth")}
    elif kind == UNKNOWN:
        data = {"kind": name if name != "social" else f"social:{d.get('displayType')}"}
    else:
        data = {}
    created = d.get("createTime")
    return Event(
        type=kind,
        ts=_ms(created, "createTime") if created not in (None, "", "0", 0) else fallback_ts,
        room_id=_str(d.get("roomId"), "roomId") or room_id,
        msg_id=_str(d.get("msgId"), "msgId"),
        user=None if kind in _NO_USER or not (d.get("userId") or d.get("uniqueId")) else _flat_user(d),
        data=data,
        raw=obj,
    )


def _gift_data(gift_id: Any, name: Any, diamonds: Any, count: Any, gift_type: Any, end: Any,
               group_id: Any = None) -> dict[str, Any]:
    """A gift's fields; its counts as ``_count`` reads them (a missing or 0 ``repeatCount`` is one gift)."""
    each, repeat = _count(diamonds, "diamondCount"), max(1, _count(count, "repeatCount"))
    if each * repeat > MAX_COUNT:
        raise ValueError(f"fields 'diamondCount' and 'repeatCount' are out of range: {each} x {repeat} diamonds "
                         f"(a gift is worth 0 to {MAX_COUNT:,})")
    data = {
        "gift_id": _int(gift_id, "giftId"),
        "name": _str(name, "giftName"),
        "diamonds": each,
        "count": repeat,
        "gift_type": _int(gift_type, "giftType"),
        "streak_end": _bool(end),
    }
    if group_id not in (None, "", 0, "0"):
        data["group_id"] = _str(group_id, "groupId")
    return data


# -- 3. Euler Stream bundles -------------------------------------------------------------------

_EULER_TYPES = {"WebcastChatMessage": CHAT, "WebcastGiftMessage": GIFT, "WebcastLikeMessage": LIKE,
                "WebcastMemberMessage": JOIN, "WebcastSocialMessage": "social", "WebcastRoomUserSeqMessage": VIEWERS,
                "WebcastSubNotifyMessage": SUBSCRIBE, "WebcastControlMessage": "control"}
_CONTROL_ENDED = (3, 4)  # ControlAction: stream ended / ended by TikTok


def _euler(obj: dict, fallback_ts: int, room_id: str, check_raw: bool = True) -> list[Event]:
    messages = obj["messages"]
    if not isinstance(messages, list):
        raise ValueError("field 'messages' is not a list")
    bundle_ts = _ms(obj["timestamp"], "timestamp") if obj.get("timestamp") is not None else fallback_ts
    out = []
    for i, message in enumerate(messages):
        if check_raw:
            try:
                _keepable(message)
            except ValueError as exc:  # malformed, and not kept: it could not be written back
                out.append(Event(UNKNOWN, bundle_ts, room_id, "", None, {"kind": "malformed",
                                                                         "error": f"message {i}: {exc}"}))
                continue
        try:
            out.append(_euler_message(message, bundle_ts, room_id))
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            out.append(Event(UNKNOWN, bundle_ts, room_id, "", None, {"kind": "malformed", "error": f"message {i}: {exc}"},
                             message))
    return out


def _euler_message(message: Any, bundle_ts: int, room_id: str) -> Event:
    m = _dict(message, "message")
    name = _str(m.get("type"), "type")
    d = _dict(m.get("data"), "data")
    common = _dict(d.get("common"), "common")
    kind = _EULER_TYPES.get(name, UNKNOWN)
    user_obj = _dict(d.get("user"), "user")
    data: dict[str, Any]
    if kind == "social":
        display = _dict(common.get("displayText"), "displayText")
        key = _str(_first(display, "key") or d.get("displayType") or "", "displayText.key")
        action = _int(d.get("action"), "action")
        kind = _social_kind(key) or {1: FOLLOW, 3: SHARE}.get(action, UNKNOWN)
    if kind == "control":
        ended = _int(d.get("action"), "action") in _CONTROL_ENDED
        kind = LIVE_END if ended else UNKNOWN
    if kind == CHAT:
        data = {"text": _str(_first(d, "content", "comment"), "content")}
    elif kind == GIFT:
        details = _dict(_first(d, "giftDetails", "gift"), "giftDetails")
        data = _gift_data(_first(d, "giftId") or details.get("id"), _first(details, "giftName", "name"),
                          details.get("diamondCount"), d.get("repeatCount"), _first(details, "giftType", "type"),
                          d.get("repeatEnd"), d.get("groupId"))
    elif kind == LIKE:
        data = {"count": _count(_first(d, "likeCount", "count"), "likeCount"),
                "total": _count(_first(d, "totalLikeCount", "total"), "totalLikeCount", MAX_INT)}
    elif kind == VIEWERS:
        data = {"count": _count(_first(d, "viewerCount", "total"), "viewerCount")}
    elif kind == SUBSCRIBE:
        data = {"months": _count(_first(d, "subMonth", "subMonths"), "subMonth")}
    elif kind == UNKNOWN:
        data = {"kind": name}
    else:
        data = {}
    created = common.get("createTime")
    return Event(
        type=kind,
        ts=_ms(created, "common.createTime") if created not in (None, "", "0", 0) else bundle_ts,
        room_id=_str(common.get("roomId"), "common.roomId") or room_id,
        msg_id=_str(common.get("msgId"), "common.msgId"),
        user=_user(user_obj) if user_obj and kind not in _NO_USER else None,
        data=data,
        raw=m,
    )
