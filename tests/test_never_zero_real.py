"""Never zero silently, on the real shapes: the corpus's own fixtures (tests/fixtures/payloads/), in every
format, stripped of what their kind needs, are refused (a ``DecodeError`` for a line, a ``malformed``
unknown event for a bundle's message), never decoded into an event with blanks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from bot.events.wire import DecodeError, decode_obj

HERE = Path(__file__).resolve().parent / "fixtures" / "payloads"
FORMATS = ("tlc2-events", "tlc2-bundles", "euler-v1", "euler-v2", "tikfinity")
FILES = {n: json.loads((HERE / f"{n}.json").read_text(encoding="utf-8")) for n in FORMATS}
# every field a format may name the viewer by: the nested user, the message's identity, TLC 1.x's flat copy
USER_KEYS = ("user", "userId", "uniqueId", "nickname", "secUid", "followRole", "userBadges", "isModerator",
             "isSubscriber", "gifterLevel", "followInfo", "profilePictureUrl", "userDetails", "isNewGifter",
             "topGifterRank", "teamMemberLevel", "userIdentity")


def _message(payload: dict) -> dict:
    return payload["data"] if "data" in payload else payload["messages"][0]["data"]


def _drop(*keys: str) -> Callable[[dict], None]:
    def strip(d: dict) -> None:
        for k in keys:
            d.pop(k, None)
    return strip


def _ids_unset(d: dict) -> None:
    """The viewer named only by protobuf defaults: id "0", no @handle."""
    u = d.get("user")
    if isinstance(u, dict):
        for k in ("id", "idStr", "userId"):
            if k in u:
                u[k] = "0"
        for k in ("displayId", "uniqueId"):
            if k in u:
                u[k] = ""
    else:
        d["userId"], d["uniqueId"] = "0", ""


def _gift_id_unset(d: dict) -> None:
    d["giftId"] = "0" if isinstance(d.get("giftId"), str) else 0
    for k in ("gift", "giftDetails"):
        if isinstance(d.get(k), dict):
            d[k].pop("id", None)
            d[k].pop("gift_id", None)


def _text_empty(d: dict) -> None:
    for k in ("content", "comment"):
        if k in d:
            d[k] = ""


CASES: list[tuple[str, str, Callable[[dict], Any]]] = [
    ("gift without a sender", "m02", _drop(*USER_KEYS)),
    ("gift sent by ids that are protobuf defaults", "m02", _ids_unset),
    ("gift without a gift", "m02", _drop("giftId", "gift", "giftDetails", "giftName", "diamondCount", "giftType",
                                         "originalName")),
    ("gift with gift id 0", "m02", _gift_id_unset),
    ("chat without text", "m01", _drop("content", "comment")),
    ("chat with empty text", "m01", _text_empty),
    ("chat without a sender", "m01", _drop(*USER_KEYS)),
    ("chat by ids that are protobuf defaults", "m01", _ids_unset),
    ("like without a sender", "m05", _drop(*USER_KEYS)),
    ("follow without a sender", "m07", _drop(*USER_KEYS)),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what, message, mutate", CASES, ids=[c[0] for c in CASES])
def test_a_real_message_lacking_what_its_kind_needs_is_refused(fmt, what, message, mutate):
    payload = copy.deepcopy(next(fx["payload"] for fx in FILES[fmt]["fixtures"] if fx["id"] == message))
    mutate(_message(payload))
    try:
        events = decode_obj(payload, fallback_ts=1)
    except DecodeError:
        return  # a line: refused whole (the caller logs and counts it)
    assert [(e.type, e.data.get("kind")) for e in events] == [("unknown", "malformed")], (fmt, what, events)
