"""Counts read off the wire (diamonds, gift repeats, likes, viewers, months) are never negative
nor absurd: a line that carries one is refused like a wrong-typed field (``DecodeError``; in an
Euler bundle, an ``unknown``/``malformed`` event), so it can never subtract from a gifter's total
or from the session's diamonds. See ``MAX_COUNT`` in ``bot/events/wire.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.events.model import GIFT, LIKE, MAX_INT, SUBSCRIBE, VIEWERS
from bot.events.wire import MAX_COUNT, DecodeError, decode_line, decode_obj
from bot.report.stats import analyze_session
from fuzzing import fuzz
from test_fuzz_wire import EULER, EULER_MESSAGES, FLAT, check, mutated  # the fuzzers' shapes and property

USER = {"userId": "6812345678901234567", "uniqueId": "ana.b", "nickname": "Ana 🌸", "followRole": 1}
EULER_USER = {"userId": "6812345678901234567", "uniqueId": "ana.b", "nickname": "Ana 🌸"}
GIFT_DATA = {"giftId": 5655, "giftName": "Rose", "diamondCount": 1, "giftType": 1, "repeatCount": 3,
             "repeatEnd": False}

# (flat event, the field under test, the other fields of a real line)
FLAT_FIELDS = [
    ("gift", "diamondCount", GIFT_DATA),
    ("gift", "repeatCount", GIFT_DATA),
    ("like", "likeCount", {"likeCount": 15, "totalLikeCount": 3021}),
    ("like", "totalLikeCount", {"likeCount": 15, "totalLikeCount": 3021}),
    ("roomUser", "viewerCount", {"viewerCount": 212}),
    ("subscribe", "subMonth", {"subMonth": 3}),
]
BAD = [-1, -5, "-5", -1.5, -(2**53 - 1), MAX_COUNT + 1, str(MAX_COUNT + 1), 2**53 - 1, 1e12]


def flat(event: str, **data: Any) -> dict:
    return {"event": event, "data": {**USER, "msgId": "7301", "createTime": "1763665200123", **data}}


def euler_gift(diamonds: Any = 1, repeat: Any = 4, nested: str = "giftDetails") -> dict:
    details = {"giftName": "Rose", "diamondCount": diamonds, "giftType": 1} if nested == "giftDetails" else \
        {"id": 6267, "name": "Corgi", "diamondCount": diamonds, "type": 2}
    return {"type": "WebcastGiftMessage", "data": {"common": {"msgId": "2"}, "user": EULER_USER, "giftId": 5655,
                                                   "repeatCount": repeat, "repeatEnd": 1, nested: details}}


# -- TikFinity / TikTok-Live-Connector flat lines -------------------------------------------------------

def _refused(field: str, value: Any) -> bool:
    """Whether ``value`` is out of range for ``field`` (a stream's total likes may pass a billion)."""
    if field != "totalLikeCount":
        return True
    return float(value) < 0 or float(value) > MAX_INT


@pytest.mark.parametrize("event, field, data, value", [
    (*f, v) for f in FLAT_FIELDS for v in BAD if _refused(f[1], v)])
def test_a_flat_line_with_a_negative_or_absurd_count_is_refused(event, field, data, value):
    line = orjson.dumps(flat(event, **{**data, field: value}))
    with pytest.raises(DecodeError, match=rf"field '{field}' is out of range"):
        decode_line(line)
    with pytest.raises(DecodeError, match=rf"field '{field}' is out of range"):
        decode_obj(orjson.loads(line))


@pytest.mark.parametrize("event, field, data", FLAT_FIELDS)
def test_counts_from_zero_to_the_limit_are_kept(event, field, data):
    """(And a stream's total likes beyond a billion: big creators' long streams get there.)"""
    if field == "totalLikeCount":
        [ev] = decode_obj(flat(event, **{**data, field: 3 * MAX_COUNT}))
        assert ev.data["total"] == 3 * MAX_COUNT
    for value in (0, "0", 0.0, -0.5, 7, MAX_COUNT, str(MAX_COUNT)):
        other = {"diamondCount": 1} if field == "repeatCount" else {"repeatCount": 1} if event == "gift" else {}
        [ev] = decode_obj(flat(event, **{**data, **other, field: value}))
        assert ev.type in (GIFT, LIKE, VIEWERS, SUBSCRIBE)
        key = {"diamondCount": "diamonds", "totalLikeCount": "total", "subMonth": "months"}.get(field, "count")
        expected = int(float(value))
        assert ev.data[key] == (max(1, expected) if field == "repeatCount" else expected)


def test_a_missing_or_zero_repeat_count_still_means_one_gift():
    """TikTok leaves ``repeatCount`` out (or 0) for a single gift: one gift, not a bad count."""
    for extra in ({"repeatCount": 0}, {"repeatCount": "0"}, {"repeatCount": None}):
        [ev] = decode_obj(flat("gift", **{**GIFT_DATA, "diamondCount": 5, **extra}))
        assert (ev.data["count"], ev.data["diamonds"]) == (1, 5)
    [ev] = decode_obj({"event": "gift", "data": {**USER, "giftId": 1, "diamondCount": 5}})
    assert (ev.data["count"], ev.data["diamonds"]) == (1, 5)


def test_a_gift_worth_more_than_the_limit_is_refused():
    """Each field may be in range and the gift still absurd: ``MAX_COUNT`` diamonds at most."""
    ok = decode_obj(flat("gift", **{**GIFT_DATA, "diamondCount": 1000, "repeatCount": MAX_COUNT // 1000}))
    assert ok[0].data["diamonds"] * ok[0].data["count"] == MAX_COUNT
    with pytest.raises(DecodeError, match=r"fields 'diamondCount' and 'repeatCount' are out of range"):
        decode_obj(flat("gift", **{**GIFT_DATA, "diamondCount": 1000, "repeatCount": MAX_COUNT // 1000 + 1}))
    with pytest.raises(DecodeError, match=r"out of range"):
        decode_obj(flat("gift", **{**GIFT_DATA, "diamondCount": 44_999, "repeatCount": 10**6}))


def test_the_message_names_the_field_and_the_value_and_is_one_short_line():
    with pytest.raises(DecodeError) as info:
        decode_obj(flat("gift", **{**GIFT_DATA, "diamondCount": -1000}))
    message = str(info.value)
    assert message.startswith("field 'diamondCount' is out of range: '-1000'") and str(f"{MAX_COUNT:,}") in message
    assert "\n" not in message and len(message) < 200


# -- Euler bundles ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("nested", ["giftDetails", "gift"])
@pytest.mark.parametrize("diamonds, repeat, field", [(-1, 1, "diamondCount"), (-299, 4, "diamondCount"),
                                                     (MAX_COUNT + 1, 1, "diamondCount"), (1, -4, "repeatCount"),
                                                     (1, "-4", "repeatCount"), (1, 2**40, "repeatCount")])
def test_an_euler_gift_with_a_bad_count_is_malformed_and_the_rest_of_the_bundle_is_kept(nested, diamonds, repeat,
                                                                                         field):
    bundle = {"timestamp": 1763665200000, "messages": [EULER_MESSAGES[0], euler_gift(diamonds, repeat, nested),
                                                       euler_gift(nested=nested)]}
    chat, bad, good = decode_obj(bundle)
    assert chat.type == "chat" and good.type == GIFT and good.data["diamonds"] > 0
    assert (bad.type, bad.data["kind"]) == ("unknown", "malformed")
    assert bad.data["error"].startswith(f"message 1: field '{field}' is out of range")
    assert bad.raw == bundle["messages"][1]  # kept as received, as for a wrong-typed field


@pytest.mark.parametrize("message, field", [
    ({"type": "WebcastLikeMessage", "data": {"likeCount": -5, "totalLikeCount": 900}}, "likeCount"),
    ({"type": "WebcastLikeMessage", "data": {"count": -5, "total": 900}}, "likeCount"),
    ({"type": "WebcastLikeMessage", "data": {"likeCount": 5, "totalLikeCount": -900}}, "totalLikeCount"),
    ({"type": "WebcastLikeMessage", "data": {"likeCount": 5, "total": 2**53}}, "totalLikeCount"),
    ({"type": "WebcastRoomUserSeqMessage", "data": {"viewerCount": -321}}, "viewerCount"),
    ({"type": "WebcastRoomUserSeqMessage", "data": {"total": "-1"}}, "viewerCount"),
    ({"type": "WebcastSubNotifyMessage", "data": {"subMonth": -2}}, "subMonth"),
])
def test_euler_counters_with_a_bad_count_are_malformed(message, field):
    [ev] = decode_obj({"messages": [message]})
    assert (ev.type, ev.data["kind"]) == ("unknown", "malformed")
    assert ev.data["error"].startswith(f"message 0: field '{field}' is out of range")


# -- what it protects: the session's numbers ----------------------------------------------------------------

def test_a_negative_gift_never_subtracts_from_the_gifter_or_the_session(tmp_path):
    good = flat("gift", **{**GIFT_DATA, "giftType": 2, "diamondCount": 5, "repeatCount": 1, "msgId": "1"})
    negative = flat("gift", **{**GIFT_DATA, "giftType": 2, "diamondCount": -1000, "repeatCount": 1, "msgId": "2"})
    backwards = flat("gift", **{**GIFT_DATA, "giftType": 2, "diamondCount": 5, "repeatCount": -3, "msgId": "3"})
    likes = flat("like", likeCount=-50, totalLikeCount=10, msgId="4")
    viewers = flat("roomUser", viewerCount=-7, msgId="5")
    bundle = {"timestamp": 1763665200000, "messages": [euler_gift(-299, 1, "gift")]}
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in (good, negative, backwards, likes, viewers, bundle)))
    stats = analyze_session(path)
    assert (stats.diamonds, stats.gifts, stats.likes, stats.peak_viewers) == (5, 1, 0, 0)
    assert (stats.malformed, stats.malformed_messages) == (4, 1)


# -- property: whatever the values, a decoded count is in range ----------------------------------------------

COUNTS = {GIFT: ("diamonds", "count"), LIKE: ("count", "total"), VIEWERS: ("count",), SUBSCRIBE: ("months",)}
NUMBERS = (st.integers(-(2**63), 2**64 - 1) | st.integers(-2 * MAX_COUNT, 2 * MAX_COUNT) | st.integers(-3, 3)
           | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-MAX_INT, MAX_INT).map(str)
           | st.sampled_from([MAX_COUNT, MAX_COUNT + 1, -MAX_COUNT, "-0", "-1", None]))
COUNT_FIELDS = ["diamondCount", "repeatCount", "likeCount", "totalLikeCount", "viewerCount", "subMonth", "count",
                "total", "subMonths"]


def assert_counts_in_range(events: list | None) -> None:
    for ev in events or ():
        for key in COUNTS.get(ev.type, ()):
            if key in ev.data:
                limit = MAX_INT if (ev.type, key) == (LIKE, "total") else MAX_COUNT
                assert 0 <= ev.data[key] <= limit, (ev.type, key, ev.data)
        if ev.type == GIFT:
            assert ev.data["count"] >= 1 and ev.data["diamonds"] * ev.data["count"] <= MAX_COUNT, ev.data
        if ev.type == "unknown" and ev.data.get("kind") == "malformed":
            assert "\n" not in ev.data["error"]


def _set_count(obj: dict, field: str, value: Any) -> None:
    """Put ``value`` in ``field`` wherever a real flat line or Euler message carries counts."""
    if "event" in obj:
        obj["data"][field] = value
        return
    for message in obj["messages"]:
        data = message["data"]
        if field == "diamondCount":
            for nested in ("giftDetails", "gift"):
                if nested in data:
                    data[nested]["diamondCount"] = value
        else:
            data[field] = value


@fuzz(400)
@given(st.sampled_from(FLAT + EULER), st.lists(st.tuples(st.sampled_from(COUNT_FIELDS), NUMBERS), min_size=1,
                                               max_size=4))
@example(FLAT[1], [("diamondCount", -1000)])
@example(FLAT[2], [("likeCount", -15)])
@example(FLAT[6], [("viewerCount", -212)])
@example(EULER[0], [("repeatCount", -4)])
@example(FLAT[1], [("diamondCount", 2), ("repeatCount", MAX_COUNT // 2 + 1)])
def test_decoded_counts_are_never_negative_nor_absurd(obj, changes):
    """Any number in any count field of a real line: the events decoded keep every count in
    0..MAX_COUNT (and a gift's worth too), or the line is refused with one short message; the
    fuzz property (valid events that round-trip, short errors) holds as for any input."""
    obj = copy.deepcopy(obj)
    for field, value in changes:
        _set_count(obj, field, value)
    assert_counts_in_range(check(decode_obj, obj))
    assert_counts_in_range(check(decode_line, orjson.dumps(obj)))


@fuzz(300)
@given(mutated(FLAT + EULER))
@example({"event": "gift", "data": {**FLAT[1]["data"], "diamondCount": -1}})
@example({"messages": [{**EULER_MESSAGES[3], "data": {**EULER_MESSAGES[3]["data"], "likeCount": -5}}]})
def test_mutated_real_lines_decode_to_counts_in_range(obj):
    """The fuzzers' mutated real payloads (wrong types, removed and wrapped values) too."""
    assert_counts_in_range(check(decode_obj, obj))
    assert_counts_in_range(check(decode_line, orjson.dumps(obj)))
