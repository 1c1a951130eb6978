"""Read events off the wire: every real format, detected per line.

1. Our normalized JSONL, exactly as ``Event.to_dict()`` writes it (``{"type", "ts", ...}``).
2. ``{"event": "gift", "data": {...}}`` lines: TikFinity's local WebSocket and TikTok-Live-Connector
   1.x with flat camelCase fields (``uniqueId``, ``giftName``, ``diamondCount``, ``repeatEnd``, ...),
   and TikTok-Live-Connector 2.x, whose ``data`` is the nested webcast message (``common``, ``user``,
   ``gift``; int64s as strings): see ``bot.events.formats.webcast``.
3. Bundles: ``{"timestamp": ..., "messages": [{"type": "WebcastGiftMessage", "data": {...}}]}``
   (Euler Stream, schema v1 with ``event``/``eventDetails`` and v2 with ``common``; TLC 2.x objects
   bundled the same way), whose ``data`` is TikTok's protobuf message as JSON.
4. A JSON array of any of these on one line: each item decoded in turn.

Anything else raises ``DecodeError`` with one short sentence, and so does a line of a known kind
that lacks what its kind needs (a gift without a sender or gift id, a chat without text or sender,
a follow / share / join / like without a user, a viewer count without a count): never an event
with blanks. In a bundle or an array, one broken item does not sink the others: it becomes an
``unknown`` event with ``kind: "malformed"``. Event kinds we do not model become ``unknown`` events
(``data.kind`` names them), not errors. An expected field that was missing is counted
(``bot.events.formats.common.lossy()``).

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

from bot.events.formats.common import (MAX_COUNT, Lossy, _bool, _count, _dict, _first, _gift_data, _int,  # noqa: F401
                                       _ms, _str, lossy)
from bot.events.formats.webcast import EVENT_NAMES, FORCED, decode_message
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
        if isinstance(obj, list):
            return _array(obj, fallback_ts, room_id, check_raw)
        raise DecodeError(f"expected a JSON object or array, got {type(obj).__name__}")
    try:
        if "event" in obj:
            if check_raw:
                _keepable(obj)
            return _flat(obj, fallback_ts, room_id)
        if "messages" in obj:
            return _euler(obj, fallback_ts, room_id, check_raw)
        if "type" in obj and "ts" in obj:
            if check_raw and obj.get("raw") is not None:
                _keepable(obj["raw"])
            return [_normalized(obj)]
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError) as exc:
        raise DecodeError(str(exc)[:300]) from None
    raise DecodeError("unknown format: expected 'event' (TikFinity, TikTok-Live-Connector), 'messages' (a bundle) "
                      "or 'type' and 'ts'")


def _array(items: list, fallback_ts: int, room_id: str, check_raw: bool) -> list[Event]:
    """A JSON array of events on one line (a WebSocket frame or a webhook body may batch them)."""
    out: list[Event] = []
    for i, item in enumerate(items):
        if isinstance(item, list):
            raise DecodeError(f"item {i}: an array inside an array of events")
        try:
            out.extend(_decode(item, fallback_ts, room_id, check_raw))
        except DecodeError as exc:
            ts = out[-1].ts if out else fallback_ts
            keep = item
            try:
                _keepable(item)
            except (ValueError, RecursionError):
                keep = None
            out.append(Event(UNKNOWN, ts, room_id, "", None, {"kind": "malformed", "error": f"item {i}: {exc}"[:300]},
                             keep))
    return out


# -- coercion helpers --------------------------------------------------------------------------

def _keepable(raw: Any) -> None:
    """ValueError unless ``raw`` can be written back where a record keeps it (``{"raw": ...}``)."""
    try:
        orjson.dumps([raw])
    except TypeError as exc:
        raise ValueError(f"cannot be kept as received: {str(exc)[:100]}") from None


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
_USER_KINDS = (CHAT, GIFT, LIKE, JOIN, FOLLOW, SHARE, SUBSCRIBE)


def _flat(obj: dict, fallback_ts: int, room_id: str) -> list[Event]:
    name = obj["event"]
    if not isinstance(name, str):
        raise ValueError("field 'event' is not text")
    d = _dict(obj.get("data"), "data")
    kind = _FLAT_TYPES.get(name)
    # TLC 2.x objects (nested user / common), TLC's other events and a follow role only in followInfo
    # (TLC 1.x) go the full way; TikFinity's flat lines of the classic kinds take the fast path.
    if kind is None or "user" in d or "common" in d or ("followInfo" in d and not d.get("followRole")):
        webcast = EVENT_NAMES.get(name)
        if webcast is None:
            kind = UNKNOWN
        else:
            created = d.get("createTime")
            ts = _ms(created, "createTime") if created not in (None, "", "0", 0) else fallback_ts
            return decode_message(webcast, d, ts, room_id, obj, FORCED.get(name))
    data: dict[str, Any]
    missing = False  # an expected field is absent: counted as lossy once the line is decoded
    if kind == "social":  # TLC 1.x / TikFinity: the follow or share is in eventDetails.displayType
        shown = _str(d.get("displayType") or "", "displayType")
        kind = FOLLOW if "follow" in shown else SHARE if "share" in shown else UNKNOWN
        if kind == UNKNOWN:
            return decode_message("WebcastSocialMessage", d, fallback_ts, room_id, obj)
    if kind == CHAT:
        text = d.get("comment")
        if text is None or text == "":
            raise ValueError("a chat line without text (comment)")
        data = {"text": _str(text, "comment")}
    elif kind == GIFT:
        gift_id = d.get("giftId")
        original, shown = d.get("originalName"), d.get("giftName")
        diamonds, gift_type = d.get("diamondCount"), d.get("giftType")
        missing = diamonds is None or gift_type is None or (shown is None and original is None)
        data = _gift_data(gift_id, original if original not in (None, "") else shown, diamonds, d.get("repeatCount"),
                          gift_type, d.get("repeatEnd"), d.get("groupId"))
        if not data["gift_id"]:
            raise ValueError("a gift line without a gift id (giftId)")
        if original not in (None, "") and shown not in (None, "") and shown != original:
            data["display_name"] = _str(shown, "giftName")  # TikFinity's localized name; rules match ``name``
    elif kind == LIKE:
        count, total = d.get("likeCount"), d.get("totalLikeCount")
        missing = count is None or total is None
        data = {"count": _count(count, "likeCount"), "total": _count(total, "totalLikeCount", MAX_INT)}
    elif kind == VIEWERS:
        count = d.get("viewerCount")
        if count is None:
            raise ValueError("a roomUser line without a viewer count (viewerCount)")
        data = {"count": _count(count, "viewerCount")}
    elif kind == SUBSCRIBE:
        months = d.get("subMonth")
        missing = months is None
        data = {"months": _count(months, "subMonth")}
    elif kind == JOIN and d.get("actionId") not in (None, 1, "1"):
        kind = UNKNOWN  # a member line that is not a join (TikTok's MemberMessageAction)
        data = {"kind": f"member:{_int(d.get('actionId'), 'actionId')}"}
    elif kind == UNKNOWN:
        data = {"kind": name}
    else:
        data = {}
    user: User | None = None
    if kind in _USER_KINDS:
        if not (d.get("userId") or d.get("uniqueId")):
            raise ValueError(f"a {name} line without a user (userId or uniqueId)")
        user = _flat_user(d)
    created = d.get("createTime")
    event = Event(
        type=kind,
        ts=_ms(created, "createTime") if created not in (None, "", "0", 0) else fallback_ts,
        room_id=_str(d.get("roomId"), "roomId") or room_id,
        msg_id=_str(d.get("msgId"), "msgId"),
        user=user,
        data=data,
        raw=obj,
    )
    if missing:
        Lossy.total += 1
    return [event]


# -- 3. bundles (Euler Stream v1 / v2, TLC 2.x) ----------------------------------------------------

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
            m = _dict(message, "message")
            out.extend(decode_message(_str(m.get("type"), "type"), _dict(m.get("data"), "data"), bundle_ts, room_id, m))
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError) as exc:
            out.append(Event(UNKNOWN, bundle_ts, room_id, "", None,
                             {"kind": "malformed", "error": f"message {i}: {exc}"[:300]}, message))
    return out
