"""The tiktok source: TikTokLive's own event objects mapped to ours (these tests need the
``tiktok`` extra), and the reconnect loop against a fake client (these do not). No network, no
real sleeps."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import structlog
import websockets

from bot.actions.dispatcher import Dispatcher
from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.events.model import Event
from bot.live import LiveRunner
from bot.sources import tiktok as tiktok_module
from bot.sources.backoff import Backoff
from bot.sources.queue import EventQueue
from bot.sources.tiktok import TikTokLiveMissing, TikTokSource, classify, to_event
from bot.testing import CaptureSink, run_events

RULES = load_rules_text("""
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"}]
  - id: echo
    on: chat
    do: [{say: "{{ user.nickname }}: {{ event.text }}"}]
  - id: status
    on: [connect, disconnect, live_end]
    do: [{kind: status, text: "{{ event.type }} {{ event.reason | default('') }}"}]
""")

T0 = 1_763_665_200_000


# == 1. mapping TikTokLive's own objects (needs the extra) =====================================

@pytest.fixture(scope="module")
def tl():
    """TikTokLive's event and proto classes; skips these tests only when the extra is missing."""
    with warnings.catch_warnings():  # TikTokLive imports websockets.legacy, which warns
        warnings.simplefilter("ignore", DeprecationWarning)
        events = pytest.importorskip("TikTokLive.events")
        proto = pytest.importorskip("TikTokLive.proto")
        errors = pytest.importorskip("TikTokLive.client.errors")
        common = pytest.importorskip("TikTokLiveProto.v3.webcast.model.message.common")
    return SimpleNamespace(**{n: getattr(events, n) for n in dir(events) if n.endswith("Event")},
                           **{n: getattr(proto, n) for n in ("CommonMessageData", "ExtendedUser", "Gift", "FollowInfo",
                                                             "UserIdentity", "ControlAction")},
                           Text=common.Text, errors=errors)


def common(tl, i: int, **kw):
    return tl.CommonMessageData(msg_id=1000 + i, create_time=T0 + i * 100, room_id=7_300_000, **kw)


def viewer(tl, nickname="Ana"):
    return tl.ExtendedUser(id=42, display_id="ana", nickname=nickname, follow_info=tl.FollowInfo(follow_status=2))


def gift(tl, i: int, count: int, end: bool, *, gift_type=1, name="Rose", diamonds=1, gift_id=5655):
    msg = tl.GiftEvent(common=common(tl, i), user=viewer(tl), gift_id=gift_id, repeat_count=count,
                       repeat_end=int(end), group_id=9001,
                       gift=tl.Gift(id=gift_id, name=name, diamond_count=diamonds, type=gift_type))
    return type(msg)().parse(bytes(msg))  # as TikTokLive parses it off the wire


def mapped(obj) -> Event:
    ev = to_event(obj, now=T0 - 1, room_id="cfg-room")
    assert ev is not None
    orjson.dumps(ev.to_dict())  # the recorder writes every event, raw included
    return ev


def test_comment_maps_to_chat_with_user_and_ids(tl):
    msg = tl.CommentEvent(common=common(tl, 1, method="WebcastChatMessage"), user=viewer(tl), content="hello",
                          user_identity=tl.UserIdentity(is_moderator_of_anchor=True, is_subscriber_of_anchor=True))
    ev = mapped(msg)
    assert (ev.type, ev.ts, ev.room_id, ev.msg_id, ev.data) == ("chat", T0 + 100, "7300000", "1001", {"text": "hello"})
    assert ev.user.to_dict() == {"user_id": "42", "unique_id": "ana", "nickname": "Ana", "follow_role": 2,
                                 "is_moderator": True, "is_subscriber": True, "gifter_level": 0}
    assert ev.raw == {"event": "CommentEvent", "method": "WebcastChatMessage"}


def test_gift_streak_frames_and_end_fold_into_one_thanks(tl):
    frames = [gift(tl, i, c, end=False) for i, c in enumerate((1, 2, 3))] + [gift(tl, 9, 5, end=True)]
    events = [mapped(f) for f in frames]
    assert events[0].data == {"gift_id": 5655, "name": "Rose", "diamonds": 1, "count": 1, "gift_type": 1,
                              "streak_end": False, "group_id": "9001"}
    assert [e.data["streak_end"] for e in events] == [False, False, False, True]
    assert events[-1].data["count"] == 5 and events[0].is_streak_frame and not events[-1].is_streak_frame
    actions = run_events(events, RULES)
    assert [a.text for a in actions] == ["thanks Ana for 5x Rose"]


def test_non_streakable_gift_arrives_once_without_streak_end(tl):
    ev = mapped(gift(tl, 1, 1, end=False, gift_type=2, name="Corgi", diamonds=299, gift_id=6267))
    assert ev.data == {"gift_id": 6267, "name": "Corgi", "diamonds": 299, "count": 1, "gift_type": 2,
                       "streak_end": False, "group_id": "9001"}
    assert [a.text for a in run_events([ev], RULES)] == ["thanks Ana for 1x Corgi"]


def test_like_join_subscribe_and_viewer_count(tl):
    like = mapped(tl.LikeEvent(common=common(tl, 1), user=viewer(tl), count=15, total=1200))
    join = mapped(tl.JoinEvent(common=common(tl, 2), user=viewer(tl)))
    sub = mapped(tl.SubNotifyEvent(common=common(tl, 3), user=viewer(tl), sub_month=3))
    seen = mapped(tl.RoomUserSeqEvent(common=common(tl, 4), total=321, total_user=5000))
    assert (like.type, like.data) == ("like", {"count": 15, "total": 1200})
    assert (join.type, join.data, join.user.unique_id) == ("join", {}, "ana")
    assert (sub.type, sub.data) == ("subscribe", {"months": 3})
    assert (seen.type, seen.data, seen.user) == ("viewers", {"count": 321}, None)


def test_follow_and_share_from_their_classes_or_the_social_message(tl):
    def social(cls, key):
        return cls(common=common(tl, 1, display_text=tl.Text(key=key)), user=viewer(tl))

    assert mapped(social(tl.FollowEvent, "pm_main_follow_message_viewer_2")).type == "follow"
    assert mapped(social(tl.ShareEvent, "pm_mt_guidance_share")).type == "share"
    assert mapped(social(tl.SocialEvent, "pm_main_follow_message_viewer_2")).type == "follow"
    assert mapped(social(tl.SocialEvent, "pm_mt_guidance_share")).type == "share"
    other = mapped(social(tl.SocialEvent, "something_else"))
    assert (other.type, other.data) == ("unknown", {"kind": "SocialEvent"})


def test_live_end_from_its_class_or_a_control_message_and_pause_and_resume(tl):
    ended = mapped(tl.LiveEndEvent(common=common(tl, 1), action=tl.ControlAction.STREAM_ENDED))
    assert (ended.type, ended.data, ended.msg_id) == ("live_end", {"source": "tiktok", "reason": "stream ended"}, "1001")
    suspended = mapped(tl.ControlEvent(common=common(tl, 2), action=tl.ControlAction.STREAM_SUSPENDED))
    assert suspended.type == "live_end"
    paused = mapped(tl.LivePauseEvent(common=common(tl, 3), action=tl.ControlAction.STREAM_PAUSED))
    assert (paused.type, paused.data) == ("live_pause", {})
    resumed = mapped(tl.LiveUnpauseEvent(common=common(tl, 4), action=tl.ControlAction.STREAM_UNPAUSED))
    assert resumed.type == "live_resume"


PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "payloads"


def test_tiktoklive_objects_map_to_the_same_events_as_every_wire_format(tl):
    """TikTokLive's protobuf classes mirror tiktok-live-proto v3: each TLC 2.x fixture message, built
    as TikTokLive's own object (its ``from_dict``, then a wire round trip as TikTokLive parses it),
    maps through ``to_events`` to the event the wire formats decode it to (tests/test_payload_corpus.py
    shows those agree with each other). The tiktok source adds its name to a live end's data."""
    from bot.events.wire import decode_obj
    from bot.sources.tiktok import to_events

    by_proto = {c.__mro__[2].__name__: c for n in dir(tl) if n.endswith("Event")
                for c in [getattr(tl, n)] if isinstance(c, type) and len(c.__mro__) > 2
                and c.__mro__[1].__name__ == "BaseEvent"}
    doc = orjson.loads((PAYLOADS / "tlc2-bundles.json").read_bytes())
    checked = set()
    for fx in doc["fixtures"]:
        message = fx["payload"]["messages"][0]
        if fx["id"] in ("m27", "m29"):  # TikTokLive's LinkMessage leave content differs from v3's: not built
            continue
        cls = by_proto[message["type"]]
        obj = cls.from_dict(message["data"])
        obj = type(obj)().parse(bytes(obj))
        got = to_events(obj, now=1, room_id="")
        want = decode_obj(fx["payload"], fallback_ts=1)
        assert len(got) == len(want), fx["id"]
        for g, w in zip(got, want):
            assert (g.type, g.ts, g.msg_id, g.room_id, g.user) == (w.type, w.ts, w.msg_id, w.room_id, w.user), fx["id"]
            assert g.data == (w.data if g.type != "live_end" else {"source": "tiktok", "reason": "stream ended"})
            checked.add(g.type)
    assert {"battle_start", "battle_update", "battle_armies", "battle_end", "cohost_join", "guest_join", "envelope",
            "superfan_box", "question", "emote", "goal_update", "tiktok_poll", "rank_update", "mod_delete", "room_pin",
            "linkmic_layer", "live_pause", "live_resume", "chat", "gift", "like", "join", "follow"} <= checked


def test_custom_superfan_classes_fix_the_kind(tl):
    from bot.sources.tiktok import to_events

    box = tl.SuperFanBoxEvent.from_dict({"common": {"msgId": "5"}, "envelopeInfo": {"diamondCount": 10,
                                                                                    "peopleCount": 2}})
    assert [(e.type, e.data) for e in to_events(box, now=1)] == [("superfan_box", {"coins": 10, "people": 2})]


def test_connect_unknown_kinds_and_the_fallback_clock(tl):
    conn = mapped(tl.ConnectEvent(unique_id="ana", room_id=7_300_000))
    assert (conn.type, conn.room_id, conn.data) == ("connect", "7300000", {"source": "tiktok"})
    poll = mapped(tl.PollEvent())
    assert (poll.type, poll.data, poll.ts, poll.room_id, poll.msg_id) == ("unknown", {"kind": "PollEvent"}, T0 - 1,
                                                                          "cfg-room", "")
    assert mapped(tl.UnknownEvent()).data == {"kind": "UnknownEvent"}
    assert to_event(tl.WebsocketResponseEvent(), now=0) is None


def test_a_nickname_that_looks_like_code_stays_plain_data(tl):
    nasty = "{{7*7}}<b>"
    msg = tl.CommentEvent(common=common(tl, 1), user=viewer(tl, nickname=nasty), content="{% raw %}hi")
    ev = mapped(msg)
    assert ev.user.nickname == nasty and ev.data["text"] == "{% raw %}hi"
    assert [a.text for a in run_events([ev], RULES)] == ["{{7*7}}<b>: {% raw %}hi"]


def test_real_errors_are_classified(tl):
    import httpx

    limited = tl.errors.SignatureRateLimitError(
        "slow down", "Too many connections started, try again in %s seconds.",
        response=httpx.Response(429, headers={"RateLimit-Remaining": "42", "RateLimit-Reset": "0"}))
    assert classify(limited) == "rate_limited" and tiktok_module._retry_after(limited) == 42
    assert classify(tl.errors.UserOfflineError()) == "offline"
    assert classify(tl.errors.WebcastBlockedError("blocked")) == "blocked"
    assert classify(tl.errors.SignAPIError(tl.errors.SignAPIError.ErrorReason.SIGN_NOT_200, "500")) == "sign_error"
    assert classify(httpx.ConnectError("no route")) == "network"


async def test_the_default_client_subscribes_once_per_message(tl):
    """TikTokLive emits FollowEvent *and* its SocialEvent for one message: we must get one follow."""
    adapter = tiktok_module.TikTokLiveClientAdapter("@ana", sign_api_key="k")
    client = adapter._client
    follow_common = common(tl, 1, display_text=tl.Text(key="pm_main_follow_message_viewer_2"))

    async def fake_start(**_):
        client.emit("ConnectEvent", tl.ConnectEvent(unique_id="ana", room_id=1))
        client.emit("FollowEvent", tl.FollowEvent(common=follow_common, user=viewer(tl)))
        client.emit("SocialEvent", tl.SocialEvent(common=follow_common, user=viewer(tl)))
        client.emit("WebsocketResponseEvent", tl.WebsocketResponseEvent())
        return asyncio.ensure_future(asyncio.sleep(0))

    client.start = fake_start
    got = []
    await adapter.run(got.append)
    await adapter.close()
    assert [type(o).__name__ for o in got] == ["ConnectEvent", "SocialEvent"]
    assert [mapped(o).type for o in got] == ["connect", "follow"]


# == 2. the reconnect loop, against a fake client (no TikTokLive needed) =======================

# Stand-ins named like TikTokLive's classes: the source reads classes by name and attribute.
class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class ConnectEvent(Obj):
    pass


class CommentEvent(Obj):
    pass


class GiftEvent(Obj):
    pass


class LiveEndEvent(Obj):
    pass


class UserOfflineError(Exception):
    pass


class SignatureRateLimitError(Exception):
    def __init__(self, retry_after=None):
        super().__init__("Too many connections started")
        if retry_after is not None:
            self.retry_after = retry_after


def comment(i: int, text: str, nickname="V"):
    return CommentEvent(common=Obj(msg_id=i, create_time=T0 + i, room_id=1), user=Obj(id=7, display_id="v",
                                                                                     nickname=nickname), content=text)


def end(i: int = 99):
    return LiveEndEvent(common=Obj(msg_id=i, create_time=T0 + i, room_id=1), action=Obj(name="STREAM_ENDED"))


def dropped():
    return websockets.ConnectionClosedError(None, None)


HANG = "hang"


class FakeClient:
    """Plays one script: event objects to emit, an exception to raise, or HANG (until closed)."""

    def __init__(self, script):
        self.script = script
        self.closed = asyncio.Event()

    async def run(self, emit):
        for step in self.script:
            if isinstance(step, BaseException):
                raise step
            if step == HANG:
                await self.closed.wait()
                return
            emit(step)
            await asyncio.sleep(0)

    async def close(self):
        self.closed.set()


class Factory:
    """``scripts[n]`` is what the n-th connection attempt plays (the last one repeats)."""

    def __init__(self, *scripts):
        self.scripts = scripts
        self.clients: list[FakeClient] = []
        self.keys: list[str | None] = []

    def __call__(self, unique_id, sign_api_key):
        self.keys.append(sign_api_key)
        client = FakeClient(self.scripts[min(len(self.clients), len(self.scripts) - 1)])
        self.clients.append(client)
        return client


class Top:
    """A Backoff rng that always picks the ceiling, so growth is exact."""

    def uniform(self, low, high):
        return high


def fake_sleep(delays, stop=None, stop_after=None):
    async def sleep(seconds):
        delays.append(seconds)
        if stop is not None and len(delays) >= stop_after:
            stop.set()
        await asyncio.sleep(0)
    return sleep


def source(factory, delays, **kw):
    kw.setdefault("sleep", fake_sleep(delays))
    kw.setdefault("backoff", Backoff(base=1, cap=60, rng=Top()))
    return TikTokSource("@ana", client_factory=factory, **kw)


async def drive(src, stop=None):
    """Run the source alone; return the queued events."""
    queue, stop = EventQueue(), stop or asyncio.Event()
    await asyncio.wait_for(src.run(queue, VirtualClock(T0), stop), timeout=5)
    return queue.get_nowait(10_000)


def kinds(events):
    return [e.type if e.type not in ("disconnect", "live_end") else f"{e.type}:{e.data['reason']}" for e in events]


async def test_events_reach_rules_through_the_live_runner():
    factory = Factory([UserOfflineError("offline")],
                      [ConnectEvent(unique_id="ana", room_id=1), comment(1, "hi", "{{7*7}}<b>"),
                       GiftEvent(common=Obj(msg_id=2), user=Obj(id=7, nickname="V"), gift_id=5655, repeat_count=3,
                                 repeat_end=1, gift=Obj(name="Rose", diamond_count=1, type=1)),
                       end()])
    delays: list[float] = []
    sink = CaptureSink()
    runner = LiveRunner([source(factory, delays, offline_poll_s=30)], Engine(RULES), Dispatcher([sink]))
    await asyncio.wait_for(runner.run(), timeout=5)
    assert [a.text for a in sink.actions if a.kind == "say"] == ["{{7*7}}<b>: hi", "thanks V for 3x Rose"]
    assert [a.text for a in sink.actions if a.kind == "status"] == [  # (no shutdown line: the stream had ended)
        "connect ", "disconnect stream ended", "live_end stream ended"]
    assert delays == [30] and len(factory.clients) == 2


async def test_offline_is_polled_and_is_not_a_disconnect():
    delays: list[float] = []
    factory = Factory([UserOfflineError()], [UserOfflineError()], [ConnectEvent(room_id=5), comment(1, "x"), end()])
    src = source(factory, delays, offline_poll_s=45)
    events = await drive(src)
    assert delays == [45, 45] and src.errors["offline"] == 2 and src.connects == 1
    assert kinds(events) == ["connect", "chat", "disconnect:stream ended", "live_end:stream ended"]
    assert events[0].room_id == "5" and all(e.data.get("source", "tiktok") == "tiktok" for e in events)


async def test_rate_limit_waits_at_least_what_the_error_says():
    delays: list[float] = []
    factory = Factory([SignatureRateLimitError(retry_after=90)], [SignatureRateLimitError()], [end()])
    src = source(factory, delays, rate_limit_wait_s=20, backoff=Backoff(base=1, cap=4, rng=Top()))
    await drive(src)
    assert delays[0] >= 90 and delays[1] >= 20 and src.errors["rate_limited"] == 2


async def test_a_dropped_connection_reconnects_with_growing_backoff():
    delays: list[float] = []
    flaky = [ConnectEvent(room_id=1), dropped()]  # connects, then drops before delivering anything
    factory = Factory(flaky, flaky, flaky, [ConnectEvent(room_id=1), comment(1, "ok"), dropped()],
                      [ConnectEvent(room_id=1), end()])
    src = source(factory, delays)
    events = await drive(src)
    assert delays == [1, 2, 4, 1]  # exponential while nothing gets through; reset once a connection delivers
    reasons = [e.data["reason"] for e in events if e.type == "disconnect"]
    assert len(reasons) == 5 and all(r.startswith("dropped: ConnectionClosedError") for r in reasons[:4])
    assert src.connects == 5 and src.errors["dropped"] == 4
    assert kinds(events).count("connect") == 5  # every connect is paired with one disconnect


async def test_live_end_keeps_polling_when_told_to():
    delays: list[float] = []
    stop = asyncio.Event()
    factory = Factory([ConnectEvent(room_id=1), comment(1, "a"), end(2)], [ConnectEvent(room_id=1), end(3)])
    src = source(factory, delays, stop_on_live_end=False, offline_poll_s=10,
                 sleep=fake_sleep(delays, stop=stop, stop_after=2))
    events = await drive(src, stop)
    assert delays == [10, 10] and len(factory.clients) == 2
    assert kinds(events) == ["connect", "chat", "disconnect:stream ended", "live_end:stream ended",
                             "connect", "disconnect:stream ended", "live_end:stream ended"]


async def test_live_end_closes_a_client_that_stays_open():
    delays: list[float] = []
    factory = Factory([ConnectEvent(room_id=1), end(), comment(5, "after"), HANG])
    events = await drive(source(factory, delays))
    assert factory.clients[0].closed.is_set() and delays == []
    assert kinds(events)[-2:] == ["disconnect:stream ended", "live_end:stream ended"]


async def test_stop_ends_a_connection_and_a_wait_promptly():
    queue, stop = EventQueue(), asyncio.Event()
    factory = Factory([ConnectEvent(room_id=1), HANG])
    task = asyncio.create_task(source(factory, []).run(queue, VirtualClock(T0), stop))
    while not len(queue):
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    assert factory.clients[0].closed.is_set()
    assert kinds(queue.get_nowait()) == ["connect"]  # the runner writes the shutdown marker, not us

    # ... and a long offline wait, with the real asyncio.sleep:
    stop = asyncio.Event()
    src = TikTokSource("ana", client_factory=Factory([UserOfflineError()]), offline_poll_s=3600)
    task = asyncio.create_task(src.run(EventQueue(), VirtualClock(T0), stop))
    while not src.errors["offline"]:
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, timeout=1)


async def test_cancelling_the_source_closes_the_client():
    factory = Factory([ConnectEvent(room_id=1), HANG])
    task = asyncio.create_task(source(factory, []).run(EventQueue(), VirtualClock(T0), asyncio.Event()))
    while not factory.clients:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert factory.clients[0].closed.is_set()


async def test_an_unexpected_exception_is_logged_and_retried():
    delays: list[float] = []
    factory = Factory([RuntimeError("boom")], [ConnectEvent(room_id=1), end()])
    src = source(factory, delays)
    with structlog.testing.capture_logs() as logs:
        events = await drive(src)
    assert src.errors["unexpected"] == 1 and delays == [1]
    failed = [e for e in logs if e["event"] == "tiktok_client_failed"]
    assert len(failed) == 1 and "RuntimeError: boom" in failed[0]["reason"] and failed[0]["where"]
    assert kinds(events) == ["connect", "disconnect:stream ended", "live_end:stream ended"]


async def test_a_client_that_cannot_be_built_is_retried():
    delays: list[float] = []
    calls = []
    good = Factory([ConnectEvent(room_id=1), end()])

    def factory(unique_id, key):
        calls.append(unique_id)
        if len(calls) == 1:
            raise ValueError("bad proxy")
        return good(unique_id, key)

    src = source(factory, delays)
    await drive(src)
    assert calls == ["ana", "ana"] and src.errors["unexpected"] == 1 and delays == [1]


async def test_an_event_that_cannot_be_mapped_is_counted_and_the_connection_goes_on():
    bad = GiftEvent(common=Obj(msg_id=3), user=Obj(id=7, nickname="V"), gift_id=1, repeat_count="lots",
                    repeat_end=0, gift=Obj(name="Rose", diamond_count=1, type=1))
    factory = Factory([ConnectEvent(room_id=1), bad, comment(4, "still here"), end()])
    src = source(factory, [])
    with structlog.testing.capture_logs() as logs:
        events = await drive(src)
    assert src.malformed == 1 and [e["event"] for e in logs].count("tiktok_event_unmapped") == 1
    assert kinds(events) == ["connect", "chat", "disconnect:stream ended", "live_end:stream ended"]


async def test_the_sign_key_comes_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("SIGN_API_KEY", "sekret-123")
    factory = Factory([RuntimeError("rejected key sekret-123")], [end()])
    src = source(factory, [])
    with structlog.testing.capture_logs() as logs:
        await drive(src)
    assert factory.keys == ["sekret-123", "sekret-123"]
    assert "sekret-123" not in repr(src) and "sekret-123" not in repr(logs) and "***" in repr(logs)
    assert TikTokSource("ana", sign_api_key="given", client_factory=factory)._sign_api_key == "given"


def test_without_tiktoklive_the_source_says_how_to_install_it(monkeypatch):
    real = tiktok_module.importlib.util.find_spec
    monkeypatch.setattr(tiktok_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "TikTokLive" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'livebot\[tiktok\]'") as info:
        TikTokSource("ana")
    assert isinstance(info.value, TikTokLiveMissing) and "\n" not in str(info.value)
    TikTokSource("ana", client_factory=Factory([end()]))  # an injected client needs no TikTokLive
    with pytest.raises(ValueError, match="unique_id"):
        TikTokSource(" @ ", client_factory=Factory([end()]))
