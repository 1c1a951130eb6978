"""POST actions as JSON to one or more URLs: Streamer.bot, automation tools, a creator's own code.

Body (``Content-Type: application/json``): with ``max_batch=1`` (the default) one action per
request, the action record itself ``{"ts","kind","text","rule","user","event_id","data"}``;
with ``max_batch > 1`` up to that many per request as ``{"actions": [record, ...]}`` (always
this shape, even for one action).

Signing (when a ``secret`` is given), the scheme the webhook *source* checks
(``bot.sources.webhook``), so one livebot can feed another::

    X-Livebot-Timestamp: <unix seconds>
    X-Livebot-Signature: sha256=<hex of HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>

A receiver should compare in constant time and refuse timestamps far from its clock.

Failures are raised, for the live dispatcher to retry and finally dead-letter:

- 2xx is success. Redirects are not followed.
- 408, 425, 429, 5xx, timeouts and connection errors raise ``WebhookError`` (retried).
- Any other 3xx/4xx raises ``WebhookRejected`` (a ``PermanentSinkError``): the receiver refused
  the request (bad URL, auth, payload) and the same request would be refused again, so the
  dispatcher dead-letters it at once rather than retrying.

``Retry-After`` on a retried answer (429, 503, any of the statuses above) is honoured: the sink
remembers, per URL, the moment the receiver asked it to wait for, and its next request to that URL
(the dispatcher's retry of the batch, or a later batch) first sleeps whatever is left of it, so the
wait is the longer of the dispatcher's backoff and ``Retry-After``. Both forms are read:
delta-seconds (``120``) and an HTTP-date (``Wed, 21 Oct 2015 07:28:00 GMT``, against ``time_fn``);
the wait is capped at ``max_retry_after`` seconds (60 by default); a value that is neither form,
or a date in the past, means no extra wait. The raised ``WebhookError`` also carries it as
``retry_after`` (seconds, or None). On a permanent rejection ``Retry-After`` is ignored.

With several URLs every batch goes to each; when some answer and others fail, the retry of that
same batch (the dispatcher retries the same list) goes only to the URLs that failed. Give each URL
its own ``WebhookSink`` (distinct ``name``) to give each its own queue, retries and counters.

Secrets are never logged or put in errors: the secret, custom header values, and everything in a
URL after its host (a token in the path or query) stay out; errors name ``scheme://host:port``.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import aiohttp
import orjson

from bot import __version__
from bot.actions.delivery import PermanentSinkError
from bot.actions.model import Action
from bot.sources.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookError", "WebhookRejected", "WebhookSink",
           "parse_retry_after", "redact_url"]

RETRYABLE_4XX = frozenset({408, 425, 429})
MAX_RETRY_AFTER = 60.0  # seconds: the longest a Retry-After may hold the sink back, by default
_DELTA_SECONDS = re.compile(r"[0-9]+")


class WebhookError(Exception):
    """A POST that may succeed if tried again (5xx, 408/425/429, timeout, connection error).

    ``retry_after``: the wait the receiver asked for (seconds, already capped), or None."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WebhookRejected(WebhookError, PermanentSinkError):
    """The receiver refused the request (3xx, 4xx other than 408/425/429): retrying will not help."""


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` only: paths and queries often carry tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def parse_retry_after(value: str | None, now: float, cap: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (``now``: unix
    seconds, for the date form), at most ``cap``; a date in the past gives 0. None when absent or
    neither form."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return min(float(int(value)), cap)
    if not value or value[0].isdigit() or value[0] in "+-":  # "1.5", "-3": not delta-seconds, not a date
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP-dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    try:
        delay = when.timestamp() - now
    except (OverflowError, OSError, ValueError):
        return None
    return min(max(delay, 0.0), cap)


def _error_text(exc: BaseException) -> str:
    """An error's description without anything from the URL beyond what ``redact_url`` shows."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect ({reason})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__  # aiohttp messages may quote the full URL


class WebhookSink:
    """``urls``: one URL or several. ``secret``: signs each request (see the module doc).
    ``max_batch``: actions per request (1 = the bare action record). ``timeout``: seconds for a
    whole request. ``headers``: extra request headers (e.g. an auth token; values never logged).
    ``name``: the sink's name in counters, logs and the dead-letter file. ``time_fn``: unix seconds
    for the signature timestamp and for ``Retry-After`` dates. ``max_retry_after``: the longest wait
    a ``Retry-After`` may impose (0 ignores the header). ``clock`` (monotonic seconds) and ``sleep``
    time that wait. All three are injectable for tests."""

    def __init__(self, urls: str | Sequence[str], *, secret: str | bytes | None = None, name: str = "webhook",
                 max_batch: int = 1, timeout: float = 5.0, headers: Mapping[str, str] | None = None,
                 time_fn: Callable[[], float] = time.time, max_retry_after: float = MAX_RETRY_AFTER,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("the webhook sink needs at least one URL")
        for url in self.urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"webhook URL must be http:// or https:// with a host: {redact_url(url)}")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if not max_retry_after >= 0:
            raise ValueError("max_retry_after must be 0 or more")
        self.name = name
        self.max_batch = max_batch  # read by LiveDispatcher: it hands over at most this many per send
        self.timeout = timeout
        self._secret = secret or None
        self._headers = {"Content-Type": "application/json", "User-Agent": f"livebot/{__version__}",
                         **(headers or {})}
        self._time = time_fn
        self._clock = clock
        self._sleep = sleep
        self.max_retry_after = float(max_retry_after)
        self._not_before: dict[str, float] = {}  # URL -> clock() before which it asked not to be sent to
        self._session: aiohttp.ClientSession | None = None
        self._pending: list[Action] | None = None  # the batch of the last send that partly failed
        self._done: set[tuple[int, int]] = set()  # (url index, chunk index) already accepted for it
        self.posted = 0  # requests answered 2xx
        self.errors = 0  # requests that failed

    def __repr__(self) -> str:
        return (f"WebhookSink(name={self.name!r}, urls={[redact_url(u) for u in self.urls]!r}, "
                f"signed={self._secret is not None}, max_batch={self.max_batch})")

    def body(self, actions: Sequence[Action]) -> bytes:
        if self.max_batch == 1 and len(actions) == 1:
            return orjson.dumps(actions[0].to_dict(), default=str)
        return orjson.dumps({"actions": [a.to_dict() for a in actions]}, default=str)

    async def send(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        pending = self._pending
        if pending is None or len(pending) != len(actions) or any(a is not b for a, b in zip(pending, actions)):
            self._pending, self._done = list(actions), set()  # a new batch (not a retry of the last one)
        step = self.max_batch
        bodies = [self.body(actions[i:i + step]) for i in range(0, len(actions), step)]
        jobs = [(u, c) for u in range(len(self.urls)) for c in range(len(bodies)) if (u, c) not in self._done]
        results = await asyncio.gather(*(self._post(self.urls[u], bodies[c]) for u, c in jobs),
                                       return_exceptions=True)
        failures: list[BaseException] = []
        for job, result in zip(jobs, results):
            if result is None:
                self._done.add(job)
            elif isinstance(result, Exception):
                failures.append(result)
            else:  # CancelledError or worse: not ours to swallow
                raise result
        if not failures:
            self._pending, self._done = None, set()
            return
        summary = "; ".join(str(f) for f in failures[:3])
        if len(failures) > 3:
            summary += f"; and {len(failures) - 3} more"
        if len(jobs) > 1:
            summary = f"{len(failures)} of {len(jobs)} requests failed: {summary}"
        if all(isinstance(f, WebhookRejected) for f in failures):
            raise WebhookRejected(summary)
        waits = [f.retry_after for f in failures if isinstance(f, WebhookError) and f.retry_after is not None]
        raise WebhookError(summary, retry_after=max(waits) if waits else None)

    async def _post(self, url: str, body: bytes) -> None:
        assert self._session is not None
        wait = self._not_before.get(url, 0.0) - self._clock()
        if wait > 0:  # the receiver's Retry-After outlasted the dispatcher's backoff
            await self._sleep(wait)
        headers = dict(self._headers)  # signed after the wait: the timestamp is the sending time
        if self._secret is not None:
            headers.update(sign(self._secret, body, int(self._time())))
        where = redact_url(url)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors += 1
            raise WebhookError(f"{where}: {_error_text(exc)}") from None
        if 200 <= status < 300:
            self.posted += 1
            return
        self.errors += 1
        if status >= 500 or status in RETRYABLE_4XX or status < 300:
            delay = None
            if retry_after is not None and self.max_retry_after > 0:
                delay = parse_retry_after(retry_after, self._time(), self.max_retry_after)
            if delay is None:
                raise WebhookError(f"{where} answered HTTP {status}")
            self._not_before[url] = self._clock() + delay
            raise WebhookError(f"{where} answered HTTP {status} (Retry-After {round(delay, 1):g} s)",
                               retry_after=delay)
        raise WebhookRejected(f"{where} answered HTTP {status}")

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
