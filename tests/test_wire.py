"""Every wire format, every event kind, and bad input that must fail cleanly."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events.model import Event, User
from bot.events.wire import DecodeError, decode_line, decode_obj

USER = {"userId": "6812345678901234567", "uniqueId": "ana.b", "nickname": "Ana 🌸", "followRole": 1,
        "isModerator": False, "isSubscriber": True, "gifterLevel": 12}
ANA = User("6812345678901234567", "ana.b", "Ana 🌸", 1, False, True, 12)


def flat(event: str, **data) -> bytes:
    return orjson.dumps({"event": event, "data": {**USER, "msgId": "7301", "createTime": "1763665200123", **data}})


def one(line, **kw) -> Event:
    [ev] = decode_line(line, **kw)
    return ev


# -- TikFinity / TikTok-Live-Connector v1 ---------------------------------------------------------

def test_flat_chat():
    ev = one(flat("chat", comment="hello 👋"))
    assert (ev.type, ev.ts, ev.msg_id, ev.user, ev.data) == ("chat", 1763665200123, "7301", ANA, {"text": "hello 👋"})
    assert ev.raw["event"] == "chat"  # the payload as received is kept


def test_flat_gift_streak_frames_and_end():
    frame = one(flat("gift", giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=3, repeatEnd=False))
    end = one(flat("gift", giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=7, repeatEnd=True))
    assert frame.data == {"gift_id": 5655, "name": "Rose", "diamonds": 1, "count": 3, "gift_type": 1, "streak_end": False}
    assert frame.is_streak_frame and not end.is_streak_frame and end.data["count"] == 7


def test_flat_non_streakable_gift():
    ev = one(flat("gift", giftId=11046, giftName="Galaxy", diamondCount=1000, giftType=2, repeatCount=1, repeatEnd=False))
    assert ev.type == "gift" and not ev.is_streak_frame and ev.data["diamonds"] == 1000


@pytest.mark.parametrize("event, data, kind, expected", [
    ("like", {"likeCount": 15, "totalLikeCount": 3021}, "like", {"count": 15, "total": 3021}),
    ("member", {"actionId": 1}, "join", {}),
    ("social", {"displayType": "pm_main_follow_message_viewer_2"}, "follow", {}),
    ("social", {"displayType": "pm_mt_guidance_share"}, "share", {}),
    ("follow", {"displayType": "pm_main_follow_message_viewer_2"}, "follow", {}),
    ("share", {}, "share", {}),
    ("subscribe", {"subMonth": 3}, "subscribe", {"months": 3}),
    ("questionNew", {"questionText": "hi?"}, "question", {"text": "hi?"}),
    ("social", {"displayType": "pm_mt_something_new"}, "unknown", {"kind": "social:pm_mt_something_new"}),
])
def test_flat_kinds(event, data, kind, expected):
    ev = one(flat(event, **data))
    assert (ev.type, ev.data, ev.user) == (kind, expected, None if kind == "unknown" else ANA)


def test_flat_viewers_and_stream_end_have_no_user():
    viewers = one(orjson.dumps({"event": "roomUser", "data": {"viewerCount": 212, "topViewers": []}}), fallback_ts=5)
    end = one(b'{"event": "streamEnd", "data": {"action": 3}}', fallback_ts=9)
    assert (viewers.type, viewers.data, viewers.user, viewers.ts) == ("viewers", {"count": 212}, None, 5)
    assert (end.type, end.user, end.ts) == ("live_end", None, 9)


def test_times_in_seconds_or_ms_as_numbers_or_strings():
    assert one(flat("chat", comment="x", createTime=1763665200)).ts == 1763665200000
    assert one(flat("chat", comment="x", createTime="1763665200")).ts == 1763665200000
    assert one(flat("chat", comment="x", createTime=1763665200123)).ts == 1763665200123
    assert one(flat("chat", comment="x", createTime=None), fallback_ts=42).ts == 42


def test_room_id_from_payload_or_argument():
    assert one(flat("chat", comment="x"), room_id="r1").room_id == "r1"
    assert one(flat("chat", comment="x", roomId="7299"), room_id="r1").room_id == "7299"


# -- Euler Stream bundles ----------------------------------------------------------------------------

EULER_USER = {"userId": "6812345678901234567", "uniqueId": "ana.b", "nickname": "Ana 🌸",
              "followInfo": {"followStatus": 1}, "userIdentity": {"isSubscriberOfAnchor": True}}


def bundle(*messages, timestamp=1763665200000):
    return orjson.dumps({"timestamp": timestamp, "messages": [{"type": t, "data": d} for t, d in messages]})


def common(msg_id="9001", t="1763665201000", **extra):
    return {"common": {"msgId": msg_id, "createTime": t, **extra}, "user": EULER_USER}


def test_euler_bundle_of_every_kind():
    events = decode_line(bundle(
        ("WebcastChatMessage", {**common("1"), "content": "hi from Euler"}),
        ("WebcastGiftMessage", {**common("2"), "giftId": 5655, "repeatCount": 4, "repeatEnd": 1,
                                "giftDetails": {"giftName": "Rose", "diamondCount": 1, "giftType": 1}}),
        ("WebcastGiftMessage", {**common("3"), "repeatCount": 1, "repeatEnd": 0,
                                "gift": {"id": 6267, "name": "Corgi", "diamondCount": 299, "type": 2}}),
        ("WebcastLikeMessage", {**common("4"), "likeCount": 5, "totalLikeCount": 900}),
        ("WebcastMemberMessage", {**common("5"), "action": 1}),
        ("WebcastSocialMessage", {**common("6", displayText={"key": "pm_main_follow_message_viewer_2"})}),
        ("WebcastSocialMessage", {**common("7"), "action": 3}),
        ("WebcastRoomUserSeqMessage", {"common": {"msgId": "8"}, "viewerCount": 321}),
        ("WebcastSubNotifyMessage", {**common("9"), "subMonth": 2}),
        ("WebcastControlMessage", {"common": {"msgId": "10"}, "action": 3}),
        ("WebcastGiftBroadcastMessage", {"common": {"msgId": "11"}}),
    ))
    assert [e.type for e in events] == ["chat", "gift", "gift", "like", "join", "follow", "share", "viewers",
                                        "subscribe", "live_end", "unknown"]
    chat, rose, corgi, like = events[:4]
    assert chat.data == {"text": "hi from Euler"} and chat.msg_id == "1" and chat.ts == 1763665201000
    assert chat.user == User("6812345678901234567", "ana.b", "Ana 🌸", 1, False, True, 0)
    assert rose.data == {"gift_id": 5655, "name": "Rose", "diamonds": 1, "count": 4, "gift_type": 1, "streak_end": True}
    assert corgi.data == {"gift_id": 6267, "name": "Corgi", "diamonds": 299, "count": 1, "gift_type": 2,
                          "streak_end": False}
    assert like.data == {"count": 5, "total": 900}
    assert events[7].data == {"count": 321} and events[7].user is None and events[7].ts == 1763665200000
    assert events[8].data == {"months": 2}
    assert events[10].data == {"kind": "WebcastGiftBroadcastMessage"}


def test_one_broken_message_does_not_sink_the_bundle():
    events = decode_line(bundle(("WebcastChatMessage", {**common("1"), "content": "ok"}),
                                ("WebcastLikeMessage", {**common("2"), "likeCount": "lots"}),
                                ("WebcastChatMessage", "not an object")))
    assert [e.type for e in events] == ["chat", "unknown", "unknown"]
    assert events[1].data["kind"] == "malformed" and "likeCount" in events[1].data["error"]


def test_control_messages_pause_resume_end_and_others_are_unknown():
    """ControlAction (tiktok-live-proto v3 enums): 1 paused, 2 unpaused, 3 ended, 4 suspended."""
    events = decode_line(bundle(*[("WebcastControlMessage", {"common": {"msgId": str(a)}, "action": a})
                                  for a in (1, 2, 3, 4, 7)]))
    assert [e.type for e in events] == ["live_pause", "live_resume", "live_end", "live_end", "unknown"]


# -- our normalized JSONL -------------------------------------------------------------------------------

@pytest.mark.parametrize("ev", [
    Event("chat", 1, "r", "m1", ANA, {"text": "hi"}),
    Event("gift", 2, "r", "m2", ANA, {"gift_id": 1, "name": "Rose", "diamonds": 1, "count": 3, "gift_type": 1,
                                      "streak_end": True}),
    Event("gift", 2, "r", "m2", ANA, {"gift_id": 1, "name": "Rose", "diamonds": 1, "count": 3, "gift_type": 1,
                                      "streak_end": False, "flushed": True}),
    Event("like", 3, "r", "m3", ANA, {"count": 5, "total": 50}),
    Event("viewers", 4, "r", "m4", None, {"count": 99}),
    Event("follow", 5, "r", "m5", ANA, {}),
    Event("share", 6, "r", "m6", ANA, {}),
    Event("join", 7, "r", "m7", ANA, {}),
    Event("subscribe", 8, "r", "m8", ANA, {"months": 2}),
    Event("live_end", 9, "r", "", None, {}),
    Event("unknown", 10, "r", "m10", None, {"kind": "emote"}, raw={"event": "emote"}),
])
def test_normalized_round_trip(ev):
    assert decode_line(orjson.dumps(ev.to_dict())) == [ev]


def test_a_flat_line_normalized_and_read_back_is_the_same_event():
    ev = one(flat("gift", giftId=5655, giftName="Rose", diamondCount=1, giftType=1, repeatCount=2, repeatEnd=True))
    assert one(orjson.dumps(ev.to_dict())) == ev


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    (b'{"event": "chat", "data": {', "not JSON"),
    (b'"just text"', "expected a JSON object or array, got str"),
    (b'{"hello": "world"}', "unknown format"),
    (b'{"type": "explosion", "ts": 1}', "unknown event type"),
    (b'{"event": "gift", "data": {"giftId": "oops", "diamondCount": 1}}', "field 'giftId' is not a number"),
    (b'{"event": "gift", "data": {"giftId": 1, "diamondCount": [1]}}', "field 'diamondCount' is not a number"),
    (b'{"event": "chat", "data": {"comment": {"a": 1}, "userId": "1"}}', "field 'comment' is not text"),
    (b'{"event": "chat", "data": [1]}', "field 'data' is not an object"),
    (b'{"event": 5, "data": {}}', "field 'event' is not text"),
    (b'{"messages": "nope"}', "field 'messages' is not a list"),
    (b'\xff\xfe{"event": "chat"}', "not JSON"),
    (b'{"event": "chat", "data": {"comment": "x", "userId": ["1"]}}', "field 'userId' is not text"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
])
def test_bad_lines_raise_a_clear_decode_error(line, message):
    with pytest.raises(DecodeError, match=message):
        decode_line(line)


def test_huge_lines_are_refused_before_parsing():
    with pytest.raises(DecodeError, match="line too long"):
        decode_line(b'{"event": "chat", "data": {"comment": "' + b"x" * (2 << 20) + b'"}}')


def test_emoji_rtl_and_huge_strings_are_just_data():
    ev = one(flat("chat", comment="مرحبا 🌍 " + "x" * 100_000, nickname="שרה ‮evil"))
    assert ev.user.nickname == "שרה ‮evil" and len(ev.data["text"]) > 100_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_decode_error(data):
    try:
        assert all(isinstance(e, Event) for e in decode_line(data))
    except DecodeError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["chat", "gift", "like", "member", "social", "roomUser", "subscribe", "streamEnd", "x"]),
       st.dictionaries(st.sampled_from(["userId", "uniqueId", "nickname", "comment", "giftId", "diamondCount",
                                        "repeatCount", "giftType", "repeatEnd", "likeCount", "createTime", "msgId",
                                        "viewerCount", "displayType", "followRole", "isModerator"]), json_values))
def test_arbitrary_flat_payloads_decode_or_raise_decode_error(event, data):
    try:
        assert all(isinstance(e, Event) for e in decode_obj({"event": event, "data": data}))
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({"type": st.sampled_from(["WebcastChatMessage", "WebcastGiftMessage",
                                                                 "WebcastSocialMessage", "Other"]),
                                       "data": json_values}), max_size=4))
def test_arbitrary_euler_bundles_never_raise(messages):
    events = decode_obj({"timestamp": 1, "messages": messages})
    assert len(events) == len(messages)


@pytest.mark.parametrize("data, message", [
    ({"type": "gift", "ts": 1, "data": {"diamonds": "many", "count": 1}}, "field 'diamonds' is not a number"),
    ({"type": "chat", "ts": 1, "data": {"text": ["x"]}}, "field 'text' is not text"),
    ({"type": "chat", "ts": "soon", "data": {}}, "field 'ts' is not a number"),
    ({"type": "chat", "ts": 1, "user": {"nickname": {"a": 1}}}, "user field 'nickname' is not text"),
    ({"type": "like", "ts": 1, "user": {"follow_role": "x"}}, "invalid literal"),
])
def test_normalized_lines_are_type_checked(data, message):
    with pytest.raises(DecodeError, match=message):
        decode_line(orjson.dumps(data))


def test_normalized_numbers_as_strings_are_read_as_numbers():
    ev = one(orjson.dumps({"type": "gift", "ts": "5", "data": {"diamonds": "10", "count": "2", "gift_type": 2}}))
    assert (ev.ts, ev.data["diamonds"], ev.data["count"]) == (5, 10, 2)


# -- issue 13: what a line needs, and which value wins -------------------------------------------------

@pytest.mark.parametrize("line, reason", [
    ({"event": "gift", "data": {"uniqueId": 5}}, "gift id"),  # no sender name, no gift: never "Thank you  for 1x"
    ({"event": "gift", "data": {"giftId": 5655, "giftName": "Rose"}}, "without a user"),
    ({"event": "chat", "data": {}}, "without text"),
    ({"event": "chat", "data": {"comment": "hi"}}, "without a user"),
    ({"event": "follow", "data": {"displayType": "pm_main_follow_message_viewer_2"}}, "without a user"),
    ({"event": "member", "data": {"actionId": 1}}, "without a user"),
    ({"event": "roomUser", "data": {"topViewers": []}}, "viewer count"),
    ({"event": "gift", "data": {"common": {"msgId": "1"}, "user": {"id": "0", "displayId": ""}, "giftId": "5655"}},
     "without a user"),
    ({"event": "chat", "data": {"common": {"msgId": "1"}, "user": {"id": "7", "displayId": "a"}, "content": ""}},
     "without text"),
    ({"event": "linkMicBattle", "data": {"common": {"msgId": "1"}, "action": 4}}, "battle id"),
])
def test_a_line_without_what_its_kind_needs_is_refused(line, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_obj(line)


def test_in_a_bundle_a_message_without_what_its_kind_needs_is_malformed_and_the_rest_kept():
    events = decode_line(bundle(("WebcastGiftMessage", {"common": {"msgId": "1"}, "giftId": 5655}),
                                ("WebcastChatMessage", {**common("2"), "content": "ok"})))
    assert [e.type for e in events] == ["unknown", "chat"]
    assert events[0].data["kind"] == "malformed" and "without a user" in events[0].data["error"]


def test_member_lines_that_are_not_joins_are_not_joins():
    flat_line = decode_obj({"event": "member", "data": {"userId": "1", "uniqueId": "a", "actionId": 3}})
    nested = decode_line(bundle(("WebcastMemberMessage", {**common("1"), "action": 3})))
    assert [(e.type, e.data) for e in flat_line + nested] == [("unknown", {"kind": "member:3"})] * 2


def test_a_default_at_the_top_does_not_shadow_a_filled_nested_value():
    [ev] = decode_obj({"event": "member", "data": {
        "common": {"msgId": "1", "createTime": "1763665201000"}, "action": 1, "userId": "0", "followStatus": "0",
        "user": {"id": "42", "displayId": "ana", "nickname": "Ana", "followStatus": "0",
                 "followInfo": {"followStatus": "2"}}}})
    assert (ev.type, ev.user.user_id, ev.user.unique_id, ev.user.follow_role) == ("join", "42", "ana", 2)


def test_the_message_level_user_identity_sets_the_flags():
    [ev] = decode_line(bundle(("WebcastChatMessage", {
        "common": {"msgId": "1"}, "user": {"userId": "7", "uniqueId": "mod"}, "comment": "!ban",
        "userIdentity": {"isModeratorOfAnchor": True, "isSubscriberOfAnchor": True, "isFollowerOfAnchor": True}})))
    assert (ev.user.is_moderator, ev.user.is_subscriber, ev.user.follow_role) == (True, True, 1)
    [plain] = decode_line(bundle(("WebcastChatMessage", {"common": {"msgId": "2"}, "content": "hi",
                                                         "user": {"userId": "8", "uniqueId": "v"}})))
    assert (plain.user.is_moderator, plain.user.is_subscriber, plain.user.follow_role) == (False, False, 0)


def test_likes_and_viewers_read_total_where_tlc2_puts_it():
    [like] = decode_obj({"event": "like", "data": {"common": {"msgId": "1"}, "user": {"id": "7", "displayId": "a"},
                                                   "count": 4, "total": "1200"}})
    [viewers] = decode_obj({"event": "roomUser", "data": {"common": {"msgId": "2"}, "total": "321",
                                                          "totalUser": "9000"}})
    assert (like.data, viewers.data) == ({"count": 4, "total": 1200}, {"count": 321})


def test_tlc2_gift_streak_frames_are_frames_not_gifts_from_nobody():
    """Issue 13: a TLC 2.x streak frame was a gift from nobody, named "", 0 diamonds, type 0."""
    base = {"common": {"msgId": "1"}, "user": {"id": "7", "displayId": "ana", "nickname": "Ana"}, "giftId": "5655",
            "groupId": "99", "gift": {"id": "5655", "name": "Rose", "diamondCount": 1, "type": 1}}
    [frame] = decode_obj({"event": "gift", "data": {**base, "repeatCount": 2, "repeatEnd": 0}})
    [end] = decode_obj({"event": "gift", "data": {**base, "repeatCount": 5, "repeatEnd": 1}})
    assert frame.is_streak_frame and not end.is_streak_frame
    assert (end.user.unique_id, end.data["name"], end.data["diamonds"], end.data["count"]) == ("ana", "Rose", 1, 5)


def test_euler_v1_reads_the_event_block():
    [ev] = decode_line(bundle(("WebcastSocialMessage", {
        "event": {"msgId": "77", "createTime": "1763665209000",
                  "eventDetails": {"displayType": "pm_mt_guidance_share", "label": ""}},
        "user": {"userId": "7", "uniqueId": "a", "nickname": "A"}})))
    assert (ev.type, ev.msg_id, ev.ts) == ("share", "77", 1763665209000)
