"""The ``tiktok`` source: a creator's live by ``@unique_id`` through the ``TikTokLive`` package.

TikTokLive (modified AGPL) is an optional extra, ``pip install 'livebot[tiktok]'``: it is only
imported, lazily, when the default client is built; nothing of it is copied here. The mapping
below reads its event objects by class name and attribute, so it also works on test doubles.

TikTokLive does not reconnect by itself: one client is one connection, and this source owns the
loop. How each ending of a connection attempt is handled:

================ ===================================== =========================================
ending           seen as                               then
================ ===================================== =========================================
live end         a ControlEvent (stream ended or       ``disconnect`` then ``live_end`` (reason
                 suspended) or LiveEndEvent            "stream ended"); stop if
                                                       ``stop_on_live_end``, else poll
user offline     ``UserOfflineError``                  wait ``offline_poll_s`` (not a failure)
rate limited     ``SignatureRateLimitError`` (or a     wait the error's ``retry_after`` (else
                 SignAPIError for RATE_LIMIT)          ``rate_limit_wait_s``), and at least the
                                                       next backoff delay
socket closed    the client returns without live end   reconnect with backoff
anything else    a dropped socket, a network or sign   logged, counted by kind, reconnect with
                 error, a block, an unexpected bug     backoff (exponential, full jitter)
stop requested   ``stop`` is set (or the task is       close the client and return at once; the
                 cancelled)                            runner writes the shutdown marker
================ ===================================== =========================================

A ``connect`` event is queued when a connection is up, and exactly one ``disconnect`` (with the
reason) when it ends; failed attempts (offline, rate limited, ...) are logged and counted, not
queued. A stream's ``live_end`` is held until its connection has closed, so it is the last event
of that stream (the recorder closes the stream's file on it). The backoff resets once a
connection delivers an event. The signer API key (``sign_api_key`` or ``SIGN_API_KEY``) is handed
to TikTokLive and never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
from collections import Counter
from typing import Any, Awaitable, Callable, Protocol

import structlog

from bot.clock import Clock
from bot.events.formats.webcast import decode_message
from bot.events.model import (CHAT, CONNECT, DISCONNECT, FOLLOW, GIFT, JOIN, LIKE, LIVE_END, LIVE_PAUSE, LIVE_RESUME,
                              SHARE, STREAKABLE_GIFT_TYPE, SUBSCRIBE, SUPERFAN_BOX, SUPERFAN_JOIN, UNKNOWN, VIEWERS,
                              Event, User)
from bot.sources.backoff import Backoff
from bot.sources.queue import EventQueue, stamp

log = structlog.get_logger("bot.tiktok")

SOURCE = "tiktok"
INSTALL_HINT = "the tiktok source needs the TikTokLive package: pip install 'livebot[tiktok]'"
MAX_LOGGED = 20  # malformed events and unexpected errors: log the first few, count them all


class TikTokLiveMissing(ImportError):
    """TikTokLive is not installed (the message says how to install it)."""


def require_tiktoklive() -> None:
    """Raise ``TikTokLiveMissing`` with one clear sentence unless TikTokLive can be imported."""
    if importlib.util.find_spec("TikTokLive") is None:
        raise TikTokLiveMissing(INSTALL_HINT)


# -- mapping TikTokLive events to ours ----------------------------------------------------------

# By class name, most specific first along the class's MRO (FollowEvent before SocialEvent).
_KINDS = {"CommentEvent": CHAT, "GiftEvent": GIFT, "LikeEvent": LIKE, "JoinEvent": JOIN, "FollowEvent": FOLLOW,
          "ShareEvent": SHARE, "SubNotifyEvent": SUBSCRIBE, "SubscribeEvent": SUBSCRIBE, "RoomUserSeqEvent": VIEWERS,
          "LiveEndEvent": LIVE_END, "ConnectEvent": CONNECT, "DisconnectEvent": DISCONNECT,
          "SocialEvent": "social", "ControlEvent": "control"}
_ENDED_ACTIONS = {"STREAM_ENDED", "STREAM_SUSPENDED", 3, 4}  # ControlAction, by name or value
_PAUSE_ACTIONS = {"STREAM_PAUSED": LIVE_PAUSE, 1: LIVE_PAUSE, "STREAM_UNPAUSED": LIVE_RESUME, 2: LIVE_RESUME}
# TikTokLive's messages of issue 13's kinds (battles, co-hosts, envelopes, ...): read as the same
# webcast message any wire format carries (``bot.events.formats.webcast``), from the object's own
# ``to_dict`` (TikTokLive's protobuf classes mirror tiktok-live-proto v3, in camelCase there too).
_WEBCAST = frozenset({"WebcastLinkMicBattle", "WebcastLinkMicArmies", "WebcastLinkMessage", "WebcastLinkLayerMessage",
                      "WebcastLinkMicMethod", "WebcastEnvelopeMessage", "WebcastQuestionNewMessage",
                      "WebcastEmoteChatMessage", "WebcastGoalUpdateMessage", "WebcastPollMessage",
                      "WebcastRankUpdateMessage", "WebcastImDeleteMessage", "WebcastRoomPinMessage",
                      "WebcastBarrageMessage"})
_FORCED = {"SuperFanJoinEvent": SUPERFAN_JOIN, "SuperFanBoxEvent": SUPERFAN_BOX}
_NO_USER = (VIEWERS, LIVE_END, CONNECT, DISCONNECT)


def _kind_of(obj: Any) -> str:
    for cls in type(obj).__mro__:
        kind = _KINDS.get(cls.__name__)
        if kind is not None:
            return kind
    return UNKNOWN


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if type(value) is str else str(value)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _nonzero(value: Any) -> str:
    """An id as text; protobuf's 0 means "not set"."""
    return "" if value in (None, 0, "", "0") else _text(value)


def _ms(value: Any) -> int:
    ts = _int(value)
    return ts * 1000 if 0 < ts < 100_000_000_000 else ts  # seconds, not ms: scale


def _user(u: Any, identity: Any) -> User:
    """A User from a TikTokLive (Extended)User and the message's ``user_identity``; flags and the
    gifter level also from the user's badges (scene 1 moderator, 4 / 7 subscriber, 8 gifter level),
    as every wire format reads them (``bot.events.formats.webcast.read_user``)."""
    follow = getattr(u, "follow_info", None)
    moderator = getattr(identity, "is_moderator_of_anchor", None)
    if moderator is None:
        moderator = getattr(u, "is_moderator", False)
    badges = []
    for b in getattr(u, "badge_list", None) or ():
        extra = getattr(b, "privilege_log_extra", None)
        level = getattr(extra, "level", 0) or 0
        badges.append((_int(getattr(b, "scene_type", 0) or 0), _int(level) if str(level).isdigit() else 0))
    role = _int(getattr(follow, "follow_status", 0) or 0)
    if not role:
        role = 2 if getattr(identity, "is_mutual_following_with_anchor", False) else 1 if getattr(
            identity, "is_follower_of_anchor", False) else 0
    level = _int(getattr(u, "gifter_level", 0) or 0) or next((lv for sc, lv in badges if sc == 8 and lv), 0)
    return User(
        user_id=_nonzero(getattr(u, "id", None)),
        unique_id=_text(getattr(u, "display_id", None) or getattr(u, "unique_id", None)),
        nickname=_text(getattr(u, "nickname", None)),
        follow_role=role,
        is_moderator=bool(moderator) or any(sc == 1 for sc, _ in badges),
        is_subscriber=bool(getattr(identity, "is_subscriber_of_anchor", False)) or any(sc in (4, 7) for sc, _ in badges),
        gifter_level=level,
    )


def _gift(obj: Any) -> dict[str, Any]:
    """Our gift fields. A streakable gift (type 1) sends frames with ``repeat_end`` 0 and a last one
    with 1 and the final count; any other gift arrives once, with ``streak_end`` false."""
    details = getattr(obj, "gift", None)
    gift_type = _int(getattr(details, "type", 0))
    data = {
        "gift_id": _int(getattr(obj, "gift_id", 0) or getattr(details, "id", 0)),
        "name": _text(getattr(details, "name", "")),
        "diamonds": _int(getattr(details, "diamond_count", 0)),
        "count": max(1, _int(getattr(obj, "repeat_count", 1))),
        "gift_type": gift_type,
        "streak_end": gift_type == STREAKABLE_GIFT_TYPE and bool(getattr(obj, "repeat_end", 0)),
    }
    group = _nonzero(getattr(obj, "group_id", None))
    if group:
        data["group_id"] = group
    return data


def to_event(obj: Any, *, now: int, room_id: str = "") -> Event | None:
    """Map one TikTokLive event object to our ``Event``; ``now`` stands in for a missing create time.

    Kinds we do not model become ``unknown`` (``data.kind`` is the class name). Returns None only
    for TikTokLive's bookkeeping (``WebsocketResponseEvent``). Raises AttributeError, TypeError or
    ValueError on an object of an unexpected shape.
    """
    name = type(obj).__name__
    if name == "WebsocketResponseEvent":
        return None
    kind = _kind_of(obj)
    common = getattr(obj, "common", None)
    if kind == "social":  # a follow or share TikTokLive did not give a class of its own
        key = _text(getattr(getattr(common, "display_text", None), "key", ""))
        kind = FOLLOW if "follow" in key else SHARE if "share" in key else UNKNOWN
    elif kind == "control":
        action = getattr(obj, "action", None)
        ended = getattr(action, "name", action) in _ENDED_ACTIONS
        kind = LIVE_END if ended else _PAUSE_ACTIONS.get(getattr(action, "name", action), UNKNOWN)
    data: dict[str, Any]
    if kind == CHAT:
        data = {"text": _text(getattr(obj, "content", None) or getattr(obj, "comment", ""))}
    elif kind == GIFT:
        data = _gift(obj)
    elif kind == LIKE:
        data = {"count": _int(getattr(obj, "count", 0)), "total": _int(getattr(obj, "total", 0))}
    elif kind == VIEWERS:
        data = {"count": _int(getattr(obj, "total", 0))}
    elif kind == SUBSCRIBE:
        data = {"months": _int(getattr(obj, "sub_month", 0))}
    elif kind in (CONNECT, LIVE_END, DISCONNECT):
        data = {"source": SOURCE}
        if kind != CONNECT:
            data["reason"] = "stream ended" if kind == LIVE_END else "closed"
    elif kind == UNKNOWN:
        data = {"kind": name}
    else:  # follow, share, join
        data = {}
    created = getattr(common, "create_time", None)
    user = getattr(obj, "user", None)
    method = _text(getattr(common, "method", ""))
    return Event(
        type=kind,
        ts=_ms(created) if created else now,
        room_id=_nonzero(getattr(common, "room_id", None) or getattr(obj, "room_id", None)) or room_id,
        msg_id=_nonzero(getattr(common, "msg_id", None)),
        user=_user(user, getattr(obj, "user_identity", None)) if user is not None and kind not in _NO_USER else None,
        data=data,
        raw={"event": name, "method": method} if method else {"event": name},  # small: the recorder keeps it
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _plain(value: Any, depth: int) -> Any:
    """A protobuf object as the JSON its wire formats carry: camelCase keys, every field with its
    default, enums as numbers, bytes left out. (TikTokLive's own ``to_dict`` fails on some of its
    messages, so this walks the dataclass fields itself.)"""
    if depth > 40:
        return None
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)  # an enum member is its number
    if isinstance(value, float):
        return value
    if isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k, depth + 1)): _plain(v, depth + 1) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return {_camel(f.name): _plain(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value)}
    return str(value)


def to_events(obj: Any, *, now: int, room_id: str = "") -> list[Event]:
    """Every event one TikTokLive object maps to: ``to_event``'s, and issue 13's kinds (battles,
    co-hosts, guests, envelopes, super fans, questions, emotes, goals, polls, ranks, moderator
    deletes, pins) through the webcast reader every wire format shares. Raises as ``to_event`` does
    (ValueError for a message lacking what its kind needs)."""
    webcast = next((c.__name__ for c in type(obj).__mro__ if c.__name__ in _WEBCAST), None)
    if webcast is None or not dataclasses.is_dataclass(obj):
        ev = to_event(obj, now=now, room_id=room_id)
        return [] if ev is None else [ev]
    d = _plain(obj, 0)
    name = type(obj).__name__
    return decode_message(webcast, d, now, room_id, {"event": name}, _FORCED.get(name))


# -- the client ---------------------------------------------------------------------------------

class LiveClient(Protocol):
    """One connection attempt. ``run`` connects, hands every TikTokLive event object to ``emit``
    until the connection ends, and raises what TikTokLive raises; ``close`` ends it early."""

    async def run(self, emit: Callable[[Any], None]) -> None: ...

    async def close(self) -> None: ...


ClientFactory = Callable[[str, "str | None"], LiveClient]  # (unique_id, sign_api_key) -> client


class TikTokLiveClientAdapter:
    """The default client: a fresh ``TikTokLive.TikTokLiveClient`` per attempt."""

    def __init__(self, unique_id: str, sign_api_key: str | None = None) -> None:
        try:
            from TikTokLive import TikTokLiveClient
        except ImportError as exc:
            raise TikTokLiveMissing(INSTALL_HINT) from exc
        web_kwargs = {"signer_kwargs": {"sign_api_key": sign_api_key}} if sign_api_key else {}
        self._client = TikTokLiveClient(unique_id, web_kwargs=web_kwargs)

    async def run(self, emit: Callable[[Any], None]) -> None:
        from TikTokLive.events import EVENT_MAPPINGS, ConnectEvent, UnknownEvent

        # The proto events only: TikTokLive's FollowEvent, ShareEvent and LiveEndEvent repeat a
        # SocialEvent or ControlEvent that we map ourselves (one event per message).
        for cls in {ConnectEvent, UnknownEvent, *EVENT_MAPPINGS.values()}:
            self._client.add_listener(cls, emit)
        task = await self._client.start()
        await task

    async def close(self) -> None:
        try:
            await self._client.disconnect()
        finally:
            await self._client.web.close()


# -- the source ---------------------------------------------------------------------------------

_OFFLINE = {"UserOfflineError"}
_RATE_LIMITED = {"SignatureRateLimitError"}
_NOT_FOUND = {"UserNotFoundError"}
_BLOCKED = {"WebcastBlockedError", "InitialCursorMissingError", "WebsocketURLMissingError", "FailedParseRoomIdError",
            "AgeRestrictedError"}
_NETWORK = {"OSError", "TimeoutError", "WebSocketException", "HTTPError", "StreamError"}


def classify(exc: BaseException) -> str:
    """The kind of a connection failure, by the exception's class names (works without TikTokLive)."""
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _OFFLINE:
        return "offline"
    if names & _RATE_LIMITED or ("SignAPIError" in names and getattr(exc.reason, "name", "") == "RATE_LIMIT"):
        return "rate_limited"
    if names & _NOT_FOUND:
        return "not_found"
    if names & _BLOCKED:
        return "blocked"
    if "SignAPIError" in names:
        return "sign_error"
    if names & _NETWORK:
        return "network"
    return "unexpected"


def _retry_after(exc: BaseException) -> float | None:
    """The wait a rate-limit error asks for, in seconds, when it says."""
    try:
        value = float(exc.retry_after)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a missing header makes TikTokLive's property raise
        return None
    return value if value > 0 else None


class _Session:
    def __init__(self) -> None:
        self.connected = False
        self.delivered = False
        self.live_end: Event | None = None
        self.ended = asyncio.Event()


class TikTokSource:
    name = SOURCE

    def __init__(self, unique_id: str, *, sign_api_key: str | None = None, room_id: str = "",
                 stop_on_live_end: bool = True, offline_poll_s: float = 60.0, rate_limit_wait_s: float = 60.0,
                 backoff: Backoff | None = None, client_factory: ClientFactory | None = None,
                 close_timeout_s: float = 5.0, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.unique_id = unique_id.strip().removeprefix("@")
        if not self.unique_id:
            raise ValueError("the tiktok source needs the creator's @unique_id")
        if client_factory is None:
            require_tiktoklive()
            client_factory = TikTokLiveClientAdapter
        self.client_factory = client_factory
        self._sign_api_key = sign_api_key or os.environ.get("SIGN_API_KEY") or None
        self.room_id = room_id
        self.stop_on_live_end = stop_on_live_end
        self.offline_poll_s = offline_poll_s
        self.rate_limit_wait_s = rate_limit_wait_s
        self.backoff = backoff or Backoff()
        self.close_timeout_s = close_timeout_s
        self.sleep = sleep
        self.connects = 0
        self.errors: Counter[str] = Counter()  # failed attempts and drops, by kind (see ``classify``)
        self.malformed = 0  # event objects we could not map
        self._offline_logged = False

    def __repr__(self) -> str:  # never shows the key
        return f"TikTokSource(@{self.unique_id})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._sign_api_key, "***") if self._sign_api_key else text

    def _event(self, kind: str, clock: Clock, **data: Any) -> Event:
        return Event(kind, clock.now(), self.room_id, data={"source": SOURCE, **data})

    async def run(self, queue: EventQueue, clock: Clock, stop: asyncio.Event) -> None:
        while not stop.is_set():
            session = _Session()
            kind, reason, exc = await self._session(session, queue, clock, stop)
            if kind == "stopped" or stop.is_set():
                return
            if session.connected:
                stamp(queue, clock, self._event(DISCONNECT, clock, reason=reason))
            if session.live_end is not None:
                stamp(queue, clock, session.live_end)
            if kind == "live_end" and self.stop_on_live_end:
                log.info("tiktok_live_ended", unique_id=self.unique_id, then="stop")
                return
            delay = self._delay(kind, exc)
            self._log(kind, reason, delay, exc)
            await _first(self.sleep(delay), stop.wait())

    def _delay(self, kind: str, exc: BaseException | None) -> float:
        if kind in ("live_end", "offline"):
            self.backoff.reset()  # not a failure
            return self.offline_poll_s
        if kind == "rate_limited":
            asked = _retry_after(exc) if exc is not None else None
            return max(asked or self.rate_limit_wait_s, self.backoff.next_delay())
        return self.backoff.next_delay()

    def _log(self, kind: str, reason: str, delay: float, exc: BaseException | None) -> None:
        fields = {"unique_id": self.unique_id, "kind": kind, "reason": reason, "retry_in_s": round(delay, 2)}
        if kind == "offline":
            (log.debug if self._offline_logged else log.info)("tiktok_offline", **fields)
            self._offline_logged = True
            return
        self._offline_logged = False
        if kind == "unexpected" and self.errors[kind] <= MAX_LOGGED and exc is not None:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
            log.error("tiktok_client_failed", where=where, **fields)
        elif kind in ("live_end", "closed"):
            log.info("tiktok_closed", **fields)
        else:
            log.warning("tiktok_retry", **fields)

    async def _session(self, session: _Session, queue: EventQueue, clock: Clock,
                       stop: asyncio.Event) -> tuple[str, str, BaseException | None]:
        """One connection attempt, until it ends: (kind, reason, the exception if any)."""
        try:
            client = self.client_factory(self.unique_id, self._sign_api_key)
        except TikTokLiveMissing:
            raise
        except Exception as exc:  # noqa: BLE001 - counted and retried like any failed attempt
            return self._failed(exc, session)

        def emit(obj: Any) -> None:
            self._on_event(obj, session, queue, clock)

        task = asyncio.ensure_future(client.run(emit))
        try:
            await _first(task, stop.wait(), session.ended.wait(), keep=task)
        finally:  # also when cancelled: close the client (its HTTP session too), then end its task
            await self._close(client)
            if not task.done():
                await _reap(task)
        if stop.is_set():
            return "stopped", "stopped", None
        if session.live_end is not None:
            return "live_end", "stream ended", None
        exc = task.exception() if not task.cancelled() else None
        if exc is None:
            return "closed", "connection closed", None
        return self._failed(exc, session)

    def _failed(self, exc: BaseException, session: _Session) -> tuple[str, str, BaseException]:
        kind = classify(exc)
        if kind == "network" and session.connected:
            kind = "dropped"
        self.errors[kind] += 1
        return kind, self._scrub(f"{kind.replace('_', ' ')}: {type(exc).__name__}: {exc}")[:300], exc

    async def _close(self, client: LiveClient) -> None:
        try:
            await asyncio.wait_for(client.close(), self.close_timeout_s)
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.warning("tiktok_close_failed", error=self._scrub(f"{type(exc).__name__}: {exc}")[:200])

    def _on_event(self, obj: Any, session: _Session, queue: EventQueue, clock: Clock) -> None:
        """TikTokLive's handler: map and queue; never raises (TikTokLive would end the connection)."""
        try:
            for ev in to_events(obj, now=clock.now(), room_id=self.room_id):  # armies: an update and a top
                self._one(ev, session, queue, clock)
        except Exception as exc:  # noqa: BLE001 - one bad event never ends the connection
            self.malformed += 1
            if self.malformed <= MAX_LOGGED:
                log.warning("tiktok_event_unmapped", tiktoklive_event=type(obj).__name__,
                            error=f"{type(exc).__name__}: {exc}"[:200], malformed=self.malformed)

    def _one(self, ev: Event, session: _Session, queue: EventQueue, clock: Clock) -> None:
        """One mapped event: connect bookkeeping, the held live end, or queued."""
        if ev.type == DISCONNECT:  # the loop reports the disconnect, with its reason
            return
        if not session.connected:
            self._connected(session, ev if ev.type == CONNECT else None, queue, clock)
        if ev.type == CONNECT:
            return
        if not session.delivered:
            session.delivered = True
            self.backoff.reset()  # a connection that delivers is a healthy one
        if ev.type == LIVE_END:
            if session.live_end is None:
                session.live_end = ev  # queued after the disconnect, as the stream's last event
            session.ended.set()
            return
        stamp(queue, clock, ev)

    def _connected(self, session: _Session, ev: Event | None, queue: EventQueue, clock: Clock) -> None:
        session.connected = True
        self.connects += 1
        self._offline_logged = False
        if ev is None:
            ev = self._event(CONNECT, clock)
        stamp(queue, clock, ev)
        log.info("tiktok_connected", unique_id=self.unique_id, room_id=ev.room_id, connects=self.connects)


async def _first(*aws: Awaitable[Any], keep: asyncio.Future | None = None) -> None:
    """Wait until one of ``aws`` is done; cancel and reap the others (except ``keep``)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            if t is not keep and not t.done():
                await _reap(t)


async def _reap(task: asyncio.Future) -> None:
    """Cancel ``task`` and wait for it; a cancellation of the caller itself still propagates."""
    task.cancel()
    me = asyncio.current_task()
    before = me.cancelling() if me is not None else 0
    try:
        await task
    except asyncio.CancelledError:
        if me is not None and me.cancelling() > before:
            raise
    except Exception:  # noqa: BLE001 - its outcome no longer matters
        pass
