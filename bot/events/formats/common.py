"""Reading values off the wire: the coercions every format shares (see ``bot.events.wire``)."""

from __future__ import annotations

from typing import Any

from bot.events.model import MAX_INT

# Whole numbers beyond ``MAX_INT`` (2**53 - 1) are refused: JSON readers in JavaScript (overlays,
# Streamer.bot) lose precision past it, and orjson cannot write integers beyond 64 bits at all.
# The largest count a TikFinity line or an Euler message may carry (``diamondCount``, ``repeatCount``,
# ``likeCount``, ``viewerCount``, ``subMonth``; a stream's ``totalLikeCount`` may reach ``MAX_INT``,
# as a long stream of a big creator can pass a billion likes), and the most one gift may be worth
# (``diamondCount`` times ``repeatCount``). TikTok's dearest gift is about 45,000 diamonds and the
# protobuf schemas' counters are 32-bit, so a billion is already nonsense; the bound also keeps the
# session sums built from these counts far below ``MAX_INT`` (9 million gifts at the limit first).
MAX_COUNT = 10**9



class Lossy:
    """How many decoded events missed a field their kind is expected to carry (``lossy``).

    Such an event is still decoded (its other fields are real), but a value it should have had was
    not in the payload and reads as its default (0, "", false). The replay summary and ``/metrics``
    show the count, so a format that silently loses a field is seen, not guessed.
    """

    total = 0


def lossy() -> int:
    """Events decoded so far (in this process) that lacked an expected field."""
    return Lossy.total


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


