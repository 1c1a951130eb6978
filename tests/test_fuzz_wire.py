"""Fuzzing the event readers: every wire format, and the replay source over files of junk.

The property, for any input: ``decode_line``/``decode_obj`` return a list of valid events that
survive ``Event.to_dict`` → JSON → ``decode_line`` unchanged (so the recorder can always write
them and a replay reads back the same events), or raise ``DecodeError`` with a short one-line
message. Never another exception, never a hang.

Example counts are small so the suite stays fast; ``LIVEBOT_FUZZ_EXAMPLES=20000`` runs each
target that many times (see RELIABILITY.md).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.events import wire
from bot.events.model import DATA_FIELDS, EVENT_TYPES, Event, User
from bot.events.wire import MAX_LINE, DecodeError, decode_line, decode_obj
from bot.sources.replay import ReplaySource
from fuzzing import fuzz


# -- the property -----------------------------------------------------------------------------------

_TYPES = {"text": str, "name": str, "group_id": str, "kind": str, "source": str, "reason": str, "error": str,
          "gift_id": int, "diamonds": int, "count": int, "gift_type": int, "total": int, "months": int,
          "rank": int, "previous_rank": (int, type(None)), "streak_end": bool, "flushed": bool,
          "display_name": str, "battle_id": str, "opponents": list, "duration_s": int, "our_score": int,
          "their_score": int, "time_left_s": int, "winner": str, "mvp": (dict, type(None)), "top": list,
          "channel_id": str, "action": str, "users": list, "coins": int, "people": int, "emote_id": str,
          "goal_id": str, "description": str, "progress": int, "target": int, "poll_id": str, "title": str,
          "options": list, "phase": str, "rank_type": str, "msg_ids": list, "pinned_by": (dict, type(None))}


def assert_short(message: str) -> None:
    assert message and len(message) <= 400 and "\n" not in message and "\r" not in message, repr(message)


def assert_valid(ev: Event) -> None:
    assert ev.type in EVENT_TYPES
    assert type(ev.ts) is int and isinstance(ev.room_id, str) and isinstance(ev.msg_id, str)
    assert ev.received is None or type(ev.received) is int
    if ev.user is not None:
        u = ev.user
        assert all(isinstance(v, str) for v in (u.user_id, u.unique_id, u.nickname))
        assert all(type(v) is int for v in (u.follow_role, u.gifter_level))
        assert all(type(v) is bool for v in (u.is_moderator, u.is_subscriber))
    allowed = set(DATA_FIELDS.get(ev.type, ())) | {"flushed", "error"}
    for key, value in ev.data.items():
        assert key in allowed, (ev.type, key)
        assert isinstance(value, _TYPES[key]) and (type(value) is not bool or _TYPES[key] is bool), (key, value)


def round_trips(ev: Event) -> None:
    line = orjson.dumps(ev.to_dict())  # what the recorder writes: must never fail
    assert decode_line(line) == [ev]
    assert decode_line(orjson.dumps(ev.to_dict(with_raw=False)))[0].data == ev.data


def check(decode: Any, value: Any, **kw: Any) -> list[Event] | None:
    """Run one decoder on one input and assert the property; the events, or None if refused."""
    try:
        events = decode(value, **kw)
    except DecodeError as exc:
        assert_short(str(exc))
        return None
    assert isinstance(events, list) and all(isinstance(e, Event) for e in events)
    for ev in events:
        assert_valid(ev)
        round_trips(ev)
    return events


# -- strategies: random JSON, and the real shapes with wrong values -----------------------------------

NAMES = ["Ana 🌸", "مرحبا", "שרה\u202eevil", "Z̸̧̛̖̺̤͓̤̓̄̓͊̈́a̶̢̛͉̗l̴̰͍̑g̵o", "{{ 7*7 }}", "{% for %}", "\u0000", "\ufeff",
         "👨‍👩‍👧‍👦" * 50, "<script>alert(1)</script>", "a\nb\r\nc", "\\u0000", "${jndi:ldap://x}", "' OR 1=1 --"]
TRICKY = st.sampled_from([
    None, True, False, 0, -1, 1, 1.0, -0.0, 1.5, 1e300, -1e300, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
    -(2**63), "", "0", "1", "-5", "1e3", " 12 ", "1_000", "٣", "0x10", "inf", "NaN", "true", "false",
    "9" * 30, "1" * 5000, [], {}, [1], {"a": 1}, [[[]]], "x" * 10_000, *NAMES])
# whole numbers as orjson parses them (64 bits; larger ones arrive as floats or as text)
SCALARS = (st.none() | st.booleans() | st.integers(-1000, 1000) | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30) | TRICKY)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)

USER = {"userId": "6812345678901234567", "uniqueId": "ana.b", "nickname": "Ana 🌸", "followRole": 1,
        "isModerator": False, "isSubscriber": True, "gifterLevel": 12, "topGifterRank": None, "userBadges": []}
FLAT = [
    {"event": "chat", "data": {**USER, "comment": "hello 👋", "msgId": "1", "createTime": "1763665200123"}},
    {"event": "gift", "data": {**USER, "giftId": 5655, "giftName": "Rose", "diamondCount": 1, "giftType": 1,
                               "repeatCount": 3, "repeatEnd": False, "groupId": "g1", "msgId": "2",
                               "createTime": 1763665200}},
    {"event": "like", "data": {**USER, "likeCount": 15, "totalLikeCount": 3021, "msgId": "3"}},
    {"event": "member", "data": {**USER, "actionId": 1, "msgId": "4", "roomId": "7299"}},
    {"event": "social", "data": {**USER, "displayType": "pm_main_follow_message_viewer_2", "msgId": "5"}},
    {"event": "social", "data": {**USER, "displayType": "pm_mt_guidance_share", "msgId": "6"}},
    {"event": "roomUser", "data": {"viewerCount": 212, "topViewers": [{"user": USER, "coinCount": 5}]}},
    {"event": "subscribe", "data": {**USER, "subMonth": 3, "msgId": "7"}},
    {"event": "streamEnd", "data": {"action": 3}},
    {"event": "questionNew", "data": {**USER, "questionText": "hi?"}},
]
EULER_USER = {"userId": "6812345678901234567", "uniqueId": "ana.b", "nickname": "Ana 🌸",
              "followInfo": {"followStatus": 1}, "userIdentity": {"isSubscriberOfAnchor": True,
                                                                  "isModeratorOfAnchor": False}}


def _common(msg_id: str, **extra: Any) -> dict[str, Any]:
    return {"common": {"msgId": msg_id, "createTime": "1763665201000", "roomId": "7299", **extra}, "user": EULER_USER}


EULER_MESSAGES = [
    {"type": "WebcastChatMessage", "data": {**_common("1"), "content": "hi from Euler"}},
    {"type": "WebcastGiftMessage", "data": {**_common("2"), "giftId": 5655, "repeatCount": 4, "repeatEnd": 1,
                                            "groupId": "7", "giftDetails": {"giftName": "Rose", "diamondCount": 1,
                                                                            "giftType": 1}}},
    {"type": "WebcastGiftMessage", "data": {**_common("3"), "repeatCount": 1,
                                            "gift": {"id": 6267, "name": "Corgi", "diamondCount": 299, "type": 2}}},
    {"type": "WebcastLikeMessage", "data": {**_common("4"), "likeCount": 5, "totalLikeCount": 900}},
    {"type": "WebcastMemberMessage", "data": {**_common("5"), "action": 1}},
    {"type": "WebcastSocialMessage", "data": {**_common("6", displayText={"key": "pm_main_follow_message_viewer_2"})}},
    {"type": "WebcastSocialMessage", "data": {**_common("7"), "action": 3}},
    {"type": "WebcastRoomUserSeqMessage", "data": {"common": {"msgId": "8"}, "viewerCount": 321}},
    {"type": "WebcastSubNotifyMessage", "data": {**_common("9"), "subMonth": 2}},
    {"type": "WebcastControlMessage", "data": {"common": {"msgId": "10"}, "action": 3}},
    {"type": "WebcastLinkMicBattle", "data": {"common": {"msgId": "11"}}},
]
EULER = [{"timestamp": 1763665200000, "messages": EULER_MESSAGES[i:i + 3]} for i in range(0, len(EULER_MESSAGES), 3)]
NORMALIZED = [
    {"type": "chat", "ts": 1, "room_id": "r", "msg_id": "m1", "user": User("1", "ana", "Ana").to_dict(),
     "data": {"text": "hi"}, "recv": 5},
    {"type": "gift", "ts": 2, "msg_id": "m2", "user": User("1", "ana", "Ana").to_dict(),
     "data": {"gift_id": 1, "name": "Rose", "diamonds": 1, "count": 3, "gift_type": 1, "streak_end": False,
              "flushed": True, "group_id": "g"}, "raw": {"event": "gift"}},
    {"type": "top_gifter", "ts": 3, "data": {"rank": 1, "previous_rank": None, "diamonds": 5}},
    {"type": "disconnect", "ts": 4, "data": {"source": "websocket", "reason": "closed"}},
    {"type": "unknown", "ts": 5, "data": {"kind": "malformed", "error": "message 0: x"}},
]
TEMPLATES = FLAT + EULER + NORMALIZED


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value (the root excluded), as key/index paths."""
    out: list[tuple] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


@st.composite
def mutated(draw: Any, templates: list[dict] = TEMPLATES) -> Any:
    """A real payload with a few values replaced by wrong types, removed, or wrapped."""
    obj = copy.deepcopy(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(obj)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(JSON))  # drawn values may be shared constants
    return obj


def _encode(value: Any) -> bytes:
    return orjson.dumps(value)


# -- decode_line --------------------------------------------------------------------------------------

@fuzz(300)
@given(st.binary(max_size=400))
@example(b"\xff\xfe\x00")
@example(b'{"event": "chat", "data": {"comment": "\xc3\x28"}}')  # invalid UTF-8 inside a string
def test_random_bytes(data):
    check(decode_line, data)


@fuzz(300)
@given(JSON)
def test_random_json(value):
    check(decode_line, _encode(value))
    check(decode_obj, value)


@fuzz(500)
@given(mutated())
@example({"type": "chat", "ts": 1, "user": {"follow_role": 1e300}})
@example({"type": "chat", "ts": "99999999999999999999999"})
@example({"event": "chat", "data": {"userId": "1", "followRole": "99999999999999999999999"}})
@example({"event": "gift", "data": {"diamondCount": "99999999999999999999999"}})
@example({"type": [1], "ts": 1})
def test_real_shapes_with_wrong_values(obj):
    check(decode_line, _encode(obj))
    check(decode_obj, obj)


@fuzz(300)
@given(st.sampled_from(TEMPLATES), st.data())
def test_truncated_lines(obj, data):
    line = _encode(obj)
    cut = data.draw(st.integers(0, len(line)))
    check(decode_line, line[:cut])
    check(decode_line, line[cut:])


@fuzz(200)
@given(st.sampled_from(FLAT + NORMALIZED[:1]), st.sampled_from(NAMES) | st.text(min_size=1, max_size=50))
def test_unicode_names_and_text_are_kept_as_typed(obj, name):
    obj = copy.deepcopy(obj)
    if "event" in obj:
        obj["data"].update(nickname=name, comment=name)
    else:
        obj["user"]["nickname"], obj["data"]["text"] = name, name
    events = check(decode_line, _encode(obj))
    if events and events[0].user is not None:
        assert events[0].user.nickname == name
    if events and events[0].type == "chat":
        assert events[0].data["text"] == name


def test_a_huge_string_is_data_and_a_line_over_the_limit_is_refused():
    big = "🌸" * ((MAX_LINE - 200) // 4)
    [ev] = check(decode_line, _encode({"event": "chat", "data": {"userId": "1", "comment": big}}))
    assert ev.data["text"] == big
    with pytest.raises(DecodeError, match="line too long"):
        decode_line(b'{"event": "chat", "data": {"comment": "' + b"x" * MAX_LINE + b'"}}')
    with pytest.raises(DecodeError, match="line too long"):  # counted in bytes, also for text
        decode_line('{"event": "chat", "data": {"comment": "' + "🌸" * (MAX_LINE // 3) + '"}}')


@pytest.mark.parametrize("depth", [100, 249, 253, 260, 300, 1000, 1100, 100_000])
@pytest.mark.parametrize("shape", ["flat", "euler", "normalized", "bare"])
def test_deep_nesting_is_refused_or_round_trips(depth, shape):
    """orjson reads 1024 levels but writes only 254; a payload kept with its event must be writable."""
    nest = b"[" * depth + b"]" * depth
    line = {"flat": b'{"event": "chat", "data": {"userId": "1", "comment": "x", "extra": ' + nest + b"}}",
            "euler": b'{"messages": [{"type": "WebcastChatMessage", "data": {"content": ' + nest + b"}}]}",
            "normalized": b'{"type": "chat", "ts": 1, "raw": ' + nest + b"}",
            "bare": nest}[shape]
    events = check(decode_line, line)
    if depth <= 100 and shape != "bare":
        assert events is not None
    if 260 <= depth <= 1000 and shape == "euler":  # one bad message in a bundle: a malformed event, not kept
        [ev] = events
        assert ev.type == "unknown" and ev.data["kind"] == "malformed" and ev.raw is None
    elif depth >= 260:
        assert events is None
    if depth <= 1000:  # orjson parses up to 1024 levels: the parsed value through decode_obj too
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        check(decode_obj, value)


@fuzz(200)
@given(st.sampled_from(FLAT[:6]), st.lists(st.sampled_from(["userId", "uniqueId", "nickname", "followRole",
                                                            "isModerator", "gifterLevel"]), min_size=1, max_size=3),
       st.sampled_from([1, 1.0, True, "1", 0, 0.0, False, ""]), st.sampled_from([1, 1.0, True, "1", 0, 0.0, False, ""]))
def test_decoding_does_not_depend_on_earlier_lines(obj, keys, first, second):
    """The decoder remembers viewers; a viewer whose fields merely compare equal (1, 1.0, true)
    must not be taken for another."""
    a, b = copy.deepcopy(obj), copy.deepcopy(obj)
    for k in keys:
        a["data"][k], b["data"][k] = first, second

    def decode(value: Any) -> Any:
        try:
            return decode_obj(value)
        except DecodeError as exc:
            return str(exc)

    wire._user_cache.clear()
    fresh = decode(b)
    wire._user_cache.clear()
    decode(a)
    assert decode(b) == fresh


@fuzz(200)
@given(st.lists(mutated(EULER_MESSAGES) | JSON, max_size=6), st.one_of(st.none(), JSON))
def test_euler_bundles_keep_every_message(messages, timestamp):
    """One broken message in a bundle becomes an ``unknown``/``malformed`` event, never sinks the rest."""
    bundle = {"messages": messages} if timestamp is None else {"timestamp": timestamp, "messages": messages}
    events = check(decode_obj, bundle)
    if events is not None:
        assert len(events) == len(messages)


def test_numbers_json_readers_cannot_carry_are_refused():
    """Beyond 2**53 - 1, JavaScript readers of our output lose digits; beyond 64 bits orjson
    cannot write them at all (the recorder would fail)."""
    for value in ({"type": "chat", "ts": 2**70}, {"type": "chat", "ts": 1, "user": {"follow_role": 1e300}},
                  {"event": "gift", "data": {"diamondCount": "9" * 30}}, {"type": "like", "ts": 2**53}):
        with pytest.raises(DecodeError, match="out of range|not a whole number"):
            decode_obj(value)
    assert check(decode_obj, {"type": "like", "ts": 2**53 - 1, "data": {"count": -(2**53 - 1)}})


# -- the real fixtures (tests/fixtures/payloads), mutated ----------------------------------------------

PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "payloads"
CORPUS = [fx["payload"] for p in sorted(PAYLOADS.glob("*.json"))
          for fx in orjson.loads(p.read_bytes())["fixtures"]]
_FLAT_USER = ("userId", "uniqueId", "nickname", "followRole", "isModerator", "isSubscriber", "gifterLevel")
# what each kind needs: an event of the kind without it would be a zeroed event (item 3)
_NEEDS_USER = {"chat", "gift", "like", "join", "follow", "share", "subscribe", "emote", "cohost_join", "cohost_leave",
               "guest_join", "guest_leave", "superfan_join"}
_NEEDS_DATA = {"chat": ("text",), "question": ("text",), "emote": ("emote_id",), "goal_update": ("goal_id",),
               "tiktok_poll": ("poll_id",), "mod_delete": ("msg_ids",), "room_pin": ("text",), "gift": ("gift_id",)}


def _messages(obj: Any) -> list[dict]:
    """The webcast message dicts inside one fixture payload (one, a bundle's, or an array's)."""
    if isinstance(obj, list):
        return [m for item in obj for m in _messages(item)]
    if not isinstance(obj, dict):
        return []
    if isinstance(obj.get("messages"), list):
        return [m["data"] for m in obj["messages"] if isinstance(m, dict) and isinstance(m.get("data"), dict)]
    return [obj["data"]] if isinstance(obj.get("data"), dict) else []


def _int64_flip(value: Any) -> Any:
    """Whole numbers as text and numeric text as whole numbers, all through the value."""
    if isinstance(value, dict):
        return {k: _int64_flip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_int64_flip(v) for v in value]
    if type(value) is int:
        return str(value)
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return value


@st.composite
def mutated_fixture(draw: Any) -> Any:
    """A real fixture with one to three of: a field dropped, a field's type changed, int64s flipped between
    numbers and text, the user nested (flat fields moved into ``user``) or flattened (``user`` merged up)."""
    obj = copy.deepcopy(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "drop", "retype", "int64", "nest", "flatten"]))
        messages = _messages(obj)
        if op == "int64":
            obj = _int64_flip(obj)
        elif op in ("nest", "flatten") and messages:
            d = draw(st.sampled_from(messages))
            if op == "nest":
                d["user"] = {k: d.pop(k) for k in _FLAT_USER if k in d}
            elif isinstance(d.get("user"), dict):
                d.update(d.pop("user"))
        else:
            paths = _paths(obj)
            if not paths:
                continue
            path = draw(st.sampled_from(paths))
            parent = obj
            for k in path[:-1]:
                parent = parent[k]
            if op == "drop":
                del parent[path[-1]]
            else:
                old = parent[path[-1]]
                parent[path[-1]] = draw(st.sampled_from([None, 0, "", "0", "x", [], {}, True, 1.5, [old], {"v": old}]))
    return obj


def assert_not_zeroed(ev: Event) -> None:
    """An event of a known kind carries what its kind needs (or its line was refused)."""
    if ev.type in _NEEDS_USER:
        assert ev.user is not None and (ev.user.user_id or ev.user.unique_id), ev
    for key in _NEEDS_DATA.get(ev.type, ()):
        assert ev.data.get(key), (ev.type, key, ev.data)
    if ev.type == "viewers":
        assert "count" in ev.data


@fuzz(600)
@given(mutated_fixture())
def test_mutated_real_fixtures_never_crash_and_never_give_a_zeroed_event(obj):
    for decode, value in ((decode_line, _encode(obj)), (decode_obj, obj)):
        for ev in check(decode, value) or ():
            assert_not_zeroed(ev)


def test_every_unmutated_fixture_decodes_and_is_not_zeroed():
    for obj in CORPUS:
        events = check(decode_obj, obj)
        assert events, obj
        for ev in events:
            assert ev.type != "unknown" and assert_not_zeroed(ev) is None


# -- the replay source --------------------------------------------------------------------------------

LINES = (mutated().map(_encode) | st.sampled_from(TEMPLATES).map(_encode)
         | st.binary(max_size=200) | JSON.map(_encode)
         | st.tuples(st.sampled_from(TEMPLATES).map(_encode), st.integers(0, 200)).map(lambda t: t[0][:t[1]]))


@fuzz(100)
@given(st.lists(LINES.map(lambda b: b.replace(b"\n", b" ")), max_size=40), st.booleans())
def test_replay_counts_malformed_lines_and_never_crashes(tmp_path_factory, lines, gz):
    path = tmp_path_factory.mktemp("replay") / ("s.jsonl.gz" if gz else "s.jsonl")
    body = b"".join(line + b"\n" for line in lines)
    if gz:
        import gzip

        path.write_bytes(gzip.compress(body))
    else:
        path.write_bytes(body)
    expected_bad = expected_events = 0
    for line in body.split(b"\n")[:-1]:
        if len(line) < 7 and not line.strip():
            continue
        try:
            expected_events += len(decode_line(line))
        except DecodeError:
            expected_bad += 1
    src = ReplaySource(path)
    events = list(src.events())
    assert (len(events), src.malformed, src.lines) == (expected_events, expected_bad, len(lines))
    for ev in events:
        assert_valid(ev)


def test_a_flat_viewer_is_read_from_the_flat_fields_only():
    """The remembered viewer is keyed by the flat fields; nothing else may change it, or a line
    would decode differently after another viewer's line."""
    base = {"userId": "1", "uniqueId": "ana", "nickname": "Ana", "followRole": 0, "comment": "hi"}
    lines = [{"event": "chat", "data": {**base, "followInfo": {"followStatus": s}, "nickName": n}}
             for s, n in ((1, "Eve"), (0, "Bob"))]
    seen = []
    for order in (lines, lines[::-1]):
        wire._user_cache.clear()
        seen.append([decode_obj(line)[0].user for line in order])
    # TLC 1.x's followRole is its followInfo.followStatus: a default 0 at the top does not shadow it
    assert seen[0] == seen[1][::-1] and seen[0] == [User("1", "ana", "Ana", 1), User("1", "ana", "Ana", 0)]


# -- coverage-guided, with atheris (not part of the test run) -----------------------------------------
#   .venv/bin/pip install atheris
#   .venv/bin/python tests/test_fuzz_wire.py -max_total_time=300      (libFuzzer flags)

def _atheris_main() -> None:
    import sys

    import atheris

    atheris.instrument_all()

    def one_input(data: bytes) -> None:
        check(decode_line, data)
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        check(decode_obj, value)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    _atheris_main()
