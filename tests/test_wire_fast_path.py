"""The common lines stay on the flat fast path: a TikFinity / TLC 1.x line of a classic kind (chat, gift,
like, member, ...) is read by ``bot.events.wire._flat`` itself, never handed to the general webcast reader
(about twice the work per line). Real TikFinity lines always carry ``followInfo`` (TLC 1.x's
``getUserAttributes``) and most viewers do not follow (``followRole: 0``): those lines are the common case.
Checked by structure (the general reader is not called), not by timing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import bot.events.wire as wire

FIXTURES = json.loads((Path(__file__).resolve().parent / "fixtures" / "payloads" / "tikfinity.json").read_text(
    encoding="utf-8"))["fixtures"]
CLASSIC = ("m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08")


def _non_follower(message: str) -> dict:
    payload = copy.deepcopy(next(fx["payload"] for fx in FIXTURES if fx["id"] == message))
    payload["data"]["followRole"] = 0
    payload["data"]["followInfo"]["followStatus"] = 0
    return payload


@pytest.mark.parametrize("message", CLASSIC)
def test_a_non_followers_tikfinity_line_is_read_on_the_fast_path(monkeypatch, message):
    payload = _non_follower(message)
    want = wire.decode_obj(payload, fallback_ts=1)  # whichever way: the answer to compare with

    def general_reader(*args, **kwargs):
        raise AssertionError("a flat TikFinity line went to the general webcast reader")

    monkeypatch.setattr(wire, "decode_message", general_reader)
    got = wire.decode_obj(payload, fallback_ts=1)
    assert got == want and got[0].user is not None and got[0].user.follow_role == 0


@pytest.mark.parametrize("top", [None, 0, "0"])
def test_a_flat_line_reads_its_follow_role_from_follow_info_when_the_top_has_none(monkeypatch, top):
    payload = copy.deepcopy(next(fx["payload"] for fx in FIXTURES if fx["id"] == "m01"))
    if top is None:
        del payload["data"]["followRole"]
    else:
        payload["data"]["followRole"] = top
    monkeypatch.setattr(wire, "decode_message", None)  # the general reader is not used
    [ev] = wire.decode_obj(payload, fallback_ts=1)
    assert ev.user.follow_role == 1  # followInfo.followStatus
