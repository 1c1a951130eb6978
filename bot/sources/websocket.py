"""A client for JSON event feeds over WebSocket: TikFinity's local socket (flat v1 lines) and
Euler Stream's hosted socket (bundles). Reconnects by itself; the engine drops the backlog's
duplicates by ``msg_id``.

Euler's close codes, and what we do:

==== ======================== =============================================================
4404 the creator is not live  wait ``offline_poll_s``, then try again (not a failure)
4005 the stream ended         a ``live_end`` event; stop if ``stop_on_live_end``, else as 4404
4429 too many connections     wait at least ``too_many_wait_s`` (and back off further)
4006 no messages for a while  reconnect with backoff
4555 connection lifetime up   reconnect at once (a fresh connection is expected)
==== ======================== =============================================================

Any other close or a dropped socket reconnects with exponential backoff and jitter.

A stream end may also arrive in the feed itself, as a message that decodes to ``live_end``
(TikFinity's ``{"event": "streamEnd"}``, TikTok-Live-Connector's ``controlMessage`` with action 3,
Euler's ``WebcastControlMessage``). It is handled as 4005: we close the connection ourselves
(TikFinity keeps its socket open after a stream), queue the ``disconnect`` and then that
``live_end`` as the stream's last event, and stop if ``stop_on_live_end``, else wait
``offline_poll_s`` before looking for the next live. A 4005 close after such a message adds no
second ``live_end``.
"""

from __future__ import annotations

import asyncio

import structlog
import websockets

from bot.clock import Clock
from bot.events.model import CONNECT, DISCONNECT, LIVE_END, Event
from bot.events.wire import DecodeError, decode_line
from bot.sources.backoff import Backoff
from bot.sources.queue import EventQueue, stamp

log = structlog.get_logger("bot.websocket")

NOT_LIVE, STREAM_END, TOO_MANY, NO_MESSAGES, LIFETIME = 4404, 4005, 4429, 4006, 4555
CLOSE_REASONS = {NOT_LIVE: "not live", STREAM_END: "stream ended", TOO_MANY: "too many connections",
                 NO_MESSAGES: "no messages", LIFETIME: "connection lifetime reached"}


class WebSocketSource:
    name = "websocket"

    def __init__(self, url: str, *, room_id: str = "", stop_on_live_end: bool = True, offline_poll_s: float = 30.0,
                 too_many_wait_s: float = 60.0, backoff: Backoff | None = None, headers: dict | None = None,
                 max_message: int = 1 << 20, sleep=asyncio.sleep) -> None:
        self.url = url
        self.room_id = room_id
        self.stop_on_live_end = stop_on_live_end
        self.offline_poll_s = offline_poll_s
        self.too_many_wait_s = too_many_wait_s
        self.backoff = backoff or Backoff()
        self.headers = headers or {}
        self.max_message = max_message
        self.sleep = sleep
        self.connects = 0
        self.malformed = 0
        self._live_end: Event | None = None  # a stream end the feed sent, held until the connection is closed

    def _event(self, kind: str, clock: Clock, **data) -> Event:
        return Event(kind, clock.now(), self.room_id, data={"source": self.name, **data})

    async def run(self, queue: EventQueue, clock: Clock, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._live_end = None
            code, reason = await self._session(queue, clock)
            ended, self._live_end = self._live_end, None
            if ended is not None:  # the feed said the stream ended; we closed the connection
                label = CLOSE_REASONS[STREAM_END]
                stamp(queue, clock, self._event(DISCONNECT, clock, reason=label))
            else:
                label = CLOSE_REASONS.get(code, reason) if code is not None else reason
                stamp(queue, clock, self._event(DISCONNECT, clock, reason=f"{label} ({code})" if code else label))
            if ended is not None or code == STREAM_END:
                ended = ended or self._event(LIVE_END, clock, reason=label)
                ended.received = None  # (queued now: after the disconnect, the stream's last event)
                stamp(queue, clock, ended)
                if self.stop_on_live_end:
                    log.info("websocket_live_ended", then="stop")
                    return
                self.backoff.reset()  # not a failure
                delay = self.offline_poll_s
            elif code == NOT_LIVE:
                delay = self.offline_poll_s
            elif code == TOO_MANY:
                delay = max(self.too_many_wait_s, self.backoff.next_delay())
            elif code == LIFETIME:
                delay = 0.0
            else:
                delay = self.backoff.next_delay()
            log.info("websocket_closed", code=code, reason=label, retry_in_s=round(delay, 2))
            if delay:
                await self.sleep(delay)

    async def _session(self, queue: EventQueue, clock: Clock) -> tuple[int | None, str]:
        """One connection, until it closes: returns (close code or None, reason)."""
        try:
            async with websockets.connect(self.url, additional_headers=self.headers, max_size=self.max_message,
                                          open_timeout=10, ping_interval=20) as ws:
                self.connects += 1
                stamp(queue, clock, self._event(CONNECT, clock))
                log.info("websocket_connected", url=_safe(self.url))
                first = True
                async for message in ws:
                    self._put(message, queue, clock)
                    if first:
                        self.backoff.reset()  # a connection that delivers is a healthy one
                        first = False
                    if self._live_end is not None:  # the stream is over: so is this connection
                        await ws.close()
                        break
                return ws.close_code, ws.close_reason or "closed"
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            return code, (exc.rcvd.reason if exc.rcvd is not None else "") or "connection dropped"
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI, ValueError) as exc:
            # The error may quote the URL: never its query string (Euler's API key) or credentials.
            return None, f"cannot connect: {type(exc).__name__}: {_scrub(str(exc), self.url)}"

    def _put(self, message: str | bytes, queue: EventQueue, clock: Clock) -> None:
        try:
            events = decode_line(message, fallback_ts=clock.now(), room_id=self.room_id)
        except DecodeError as exc:
            self.malformed += 1
            if self.malformed <= 20:
                log.warning("malformed_message", error=str(exc)[:200], size=len(message))
            return
        now = clock.now()
        for ev in events:
            ev.received = now
            if ev.type == LIVE_END:
                if self._live_end is None:  # (held: queued after the connection's disconnect)
                    ev.data = {"source": self.name, "reason": CLOSE_REASONS[STREAM_END], **ev.data}
                    self._live_end = ev
                continue
            stamp(queue, clock, ev)


def _safe(url: str) -> str:
    """The URL without its query string (Euler's API key travels there) or user:password@."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = base.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        base = f"{scheme}://{host.rsplit('@', 1)[-1]}{slash}{path}"
    return base


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL, and any secret part of it, replaced by its safe form."""
    text = text.replace(url, _safe(url))
    query = url.split("?", 1)[1] if "?" in url else ""
    userinfo = url.partition("://")[2].split("/", 1)[0].rpartition("@")[0]
    for secret in (query, userinfo):
        if secret:
            text = text.replace(secret, "***")
    return text
