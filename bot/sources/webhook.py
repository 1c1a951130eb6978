"""An HTTP endpoint for tools that push events: ``POST /events`` with one event, a batch, or JSONL.

Bodies, in any format ``bot.events.wire`` reads (normalized, TikFinity ``{"event", "data"}``,
Euler bundles): a JSON object, a JSON array of objects, or one object per line
(``application/x-ndjson``; JSON bodies that are not one value are read as lines too). Accepted
content types: none, ``application/json``, ``text/plain``, ``application/octet-stream`` and the
JSONL ones (``application/x-ndjson``, ``application/jsonl``, ...).

Signing: with ``t`` the unix time in whole seconds and ``body`` the exact bytes sent, send ::

    X-Livebot-Timestamp: <t>
    X-Livebot-Signature: sha256=<hex of HMAC-SHA256(secret, f"{t}.".encode() + body)>

In Python (or use ``sign(secret, body)``, which returns these two headers)::

    t = str(int(time.time()))
    sig = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"X-Livebot-Timestamp": t, "X-Livebot-Signature": f"sha256={sig}",
               "Content-Type": "application/json"}

A timestamp more than ``tolerance_s`` (300) from our clock is refused, so an old request cannot
be replayed; within the window, a replayed event is dropped by the engine's ``msg_id`` dedup.

Answers, each a one-line JSON body: 202 ``{"accepted": n, "rejected": [{"index": i, "error": ...}]}``
(``accepted`` counts events queued; good items of a batch are kept even when others are bad; JSONL
items also give their ``line``), 400 nothing valid, 401 missing/bad signature or timestamp,
405 not POST, 413 body over ``max_body`` or more than ``max_events`` events, 415 content type.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any, Callable

import orjson
import structlog
from aiohttp import web

from bot.clock import Clock
from bot.events.model import CONNECT, DISCONNECT, Event
from bot.events.wire import DecodeError, decode_obj
from bot.sources.queue import EventQueue, stamp

log = structlog.get_logger("bot.webhook")

SIGNATURE_HEADER = "X-Livebot-Signature"
TIMESTAMP_HEADER = "X-Livebot-Timestamp"
JSON_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})
LINE_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                        "application/x-jsonlines", "application/jsonlines"})


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signature(secret: str | bytes, body: bytes, timestamp: int | str) -> str:
    """``sha256=<hex>`` over ``f"{timestamp}.".encode() + body``."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that authenticate ``body`` (``timestamp`` defaults to now, unix seconds)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, body, ts)}


class _Refused(Exception):
    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.body = status, {"error": error, **extra}


def _reply(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body) + b"\n", content_type="application/json",
                        headers=headers)


class WebhookSource:
    """The ``webhook`` live source: serves itself (``run``) or mounts on an app (``add_routes``)."""

    name = "webhook"

    def __init__(self, secret: str | bytes | None = None, *, host: str = "127.0.0.1", port: int = 8790,
                 path: str = "/events", allow_unsigned: bool = False, tolerance_s: float = 300.0,
                 max_body: int = 1 << 20, max_events: int = 10_000, room_id: str = "",
                 time_fn: Callable[[], float] = time.time) -> None:
        if not secret and not allow_unsigned:
            raise ValueError("the webhook source needs a secret (or allow_unsigned=True)")
        self.secret = _key(secret) if secret else None
        self.host, self.port, self.path = host, port, path
        self.tolerance_s = tolerance_s
        self.max_body = max_body
        self.max_events = max_events
        self.room_id = room_id
        self.time_fn = time_fn
        self.bound_port: int | None = None  # the real port once ``run`` listens (useful with port 0)
        self.listening = asyncio.Event()
        self.received = 0  # events queued
        self.malformed = 0  # items refused (bad JSON or not an event)
        self.refused = 0  # whole requests refused (4xx)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.bound_port or self.port}{self.path}"

    def _event(self, kind: str, clock: Clock, **data: Any) -> Event:
        return Event(kind, clock.now(), self.room_id, data={"source": self.name, **data})

    # -- serving ---------------------------------------------------------------------------------

    def add_routes(self, app: web.Application, queue: EventQueue, clock: Clock, *, announce: bool = True) -> None:
        """Mount the endpoint on ``app``; with ``announce``, the app's startup and shutdown queue
        the ``connect`` and ``disconnect`` events."""
        async def handler(request: web.Request) -> web.Response:
            return await self.handle(request, queue, clock)

        app.router.add_route("*", self.path, handler)
        if announce:
            async def up(_: web.Application) -> None:
                stamp(queue, clock, self._event(CONNECT, clock))

            async def down(_: web.Application) -> None:
                stamp(queue, clock, self._event(DISCONNECT, clock, reason="shutdown"))

            app.on_startup.append(up)
            app.on_shutdown.append(down)

    async def run(self, queue: EventQueue, clock: Clock, stop: asyncio.Event) -> None:
        """Serve on ``host:port`` until ``stop`` is set."""
        app = web.Application()
        self.add_routes(app, queue, clock, announce=False)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        started = False
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.bound_port = runner.addresses[0][1]
            started = True
            stamp(queue, clock, self._event(CONNECT, clock))
            if self.secret is None:
                log.warning("webhook_unsigned", url=self.url, hint="anyone who can reach it can inject events")
            log.info("webhook_listening", url=self.url)
            self.listening.set()
            await stop.wait()
        finally:
            self.listening.clear()
            cleanup = asyncio.ensure_future(runner.cleanup())
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:
                await cleanup  # close the socket, then let the cancellation through
                raise
            finally:
                if started:
                    stamp(queue, clock, self._event(DISCONNECT, clock, reason="shutdown"))

    # -- one request -----------------------------------------------------------------------------

    async def handle(self, request: web.Request, queue: EventQueue, clock: Clock) -> web.Response:
        """Answer one request; good events go to ``queue`` (never waits on it)."""
        try:
            if request.method != "POST":
                raise _Refused(405, f"method {request.method} not allowed; POST events here")
            ts = self._check_timestamp(request)
            ctype = request.content_type.lower() if request.headers.get("Content-Type") else ""
            if ctype not in JSON_TYPES and ctype not in LINE_TYPES:
                raise _Refused(415, f"content type {ctype!r} not accepted; send application/json or "
                                    "application/x-ndjson")
            body = await self._read(request)
            self._check_signature(request, ts, body)
            items = self._items(body, ctype in LINE_TYPES)
        except _Refused as exc:
            self.refused += 1
            headers = {"Allow": "POST"} if exc.status == 405 else {}
            return _reply(exc.status, exc.body, **headers)
        return self._accept(items, queue, clock)

    def _check_timestamp(self, request: web.Request) -> str | None:
        if self.secret is None:
            return None
        given = request.headers.get(SIGNATURE_HEADER)
        ts = request.headers.get(TIMESTAMP_HEADER)
        if not given:
            raise _Refused(401, f"missing signature: send {SIGNATURE_HEADER}: sha256=<hex>")
        if not ts:
            raise _Refused(401, f"missing timestamp: send {TIMESTAMP_HEADER}: <unix seconds>")
        try:
            skew = abs(self.time_fn() - int(ts))
        except ValueError:
            raise _Refused(401, f"bad timestamp: {TIMESTAMP_HEADER} must be whole unix seconds") from None
        if skew > self.tolerance_s:
            raise _Refused(401, f"stale timestamp: more than {self.tolerance_s:g} s from our clock")
        return ts

    def _check_signature(self, request: web.Request, ts: str | None, body: bytes) -> None:
        if self.secret is None or ts is None:
            return
        expected = signature(self.secret, body, ts).encode()
        given = request.headers.get(SIGNATURE_HEADER, "").strip().encode("utf-8", "replace")
        if not hmac.compare_digest(expected, given.lower()):
            raise _Refused(401, "bad signature")

    async def _read(self, request: web.Request) -> bytes:
        too_big = _Refused(413, f"body too large: the limit is {self.max_body} bytes")
        if request.content_length is not None and request.content_length > self.max_body:
            raise too_big
        chunks, size = [], 0
        while chunk := await request.content.read(1 << 16):
            size += len(chunk)
            if size > self.max_body:
                raise too_big
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip():
            raise _Refused(400, "empty body")
        return body

    def _items(self, body: bytes, lines: bool) -> list[tuple[dict[str, Any], Any]]:
        """(where, parsed value or a DecodeError) per item, before any event is queued."""
        items: list[tuple[dict[str, Any], Any]] = []
        if not lines:
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if b"\n" not in body.strip():
                    self.malformed += 1
                    raise _Refused(400, f"not JSON: {exc}") from None
                lines = True  # JSONL sent as application/json
            else:
                if isinstance(value, list):
                    items = [({"index": i}, v) for i, v in enumerate(value)]
                elif isinstance(value, dict):
                    items = [({}, value)]
                else:
                    self.malformed += 1
                    raise _Refused(400, f"expected a JSON object or array, got {type(value).__name__}")
        if lines:
            for i, line in enumerate(body.split(b"\n")):
                if line.strip():
                    try:
                        value = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        value = DecodeError(f"not JSON: {exc}")
                    items.append(({"index": i, "line": i + 1}, value))
        n = sum(_size(v) for _, v in items)
        if n > self.max_events:
            raise _Refused(413, f"too many events: {n} (the limit is {self.max_events} per request)")
        return items

    def _accept(self, items: list[tuple[dict[str, Any], Any]], queue: EventQueue, clock: Clock) -> web.Response:
        now = clock.now()
        accepted, rejected = 0, []
        for where, value in items:
            try:
                if isinstance(value, DecodeError):
                    raise value
                events = decode_obj(value, fallback_ts=now, room_id=self.room_id)
            except DecodeError as exc:
                rejected.append({**where, "error": str(exc)[:200]})
                continue
            for ev in events:
                ev.received = now  # a pushed event's engine time is when it reached us
                stamp(queue, clock, ev)
            accepted += len(events)
        self.received += accepted
        if rejected:
            self.malformed += len(rejected)
            if self.malformed - len(rejected) < 20:
                log.warning("malformed_webhook_items", rejected=len(rejected), first=rejected[0])
        if not accepted and rejected:
            first = rejected[0]
            where = f"line {first['line']}" if "line" in first else f"index {first['index']}" if "index" in first \
                else "event"
            self.refused += 1
            return _reply(400, {"error": f"{where}: {first['error']}", "accepted": 0, "rejected": rejected})
        return _reply(202, {"accepted": accepted, "rejected": rejected})


def _size(value: Any) -> int:
    """How many events one item may hold: a bundle's messages, an array line's items (counted inside)."""
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return len(value["messages"])
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    return 1
