"""The webhook sink against real aiohttp servers on loopback, through the live dispatcher:
signed batches the server verifies, retries on 500, a permanent 4xx, a server that is down,
a timeout, Retry-After on 429/503 (waited out, on a fake clock), and secrets kept out of logs
and errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from email.utils import formatdate

import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bot.actions.delivery import RetryPolicy
from bot.actions.dispatcher import LiveDispatcher
from bot.actions.model import Action
from bot.sinks.webhook import WebhookError, WebhookRejected, WebhookSink, parse_retry_after, redact_url

SECRET = "s3cret-do-not-log"
NOW = 1_800_000_000


def act(i: int, **data) -> Action:
    return Action(ts=1000 + i, kind="alert", text=f"<b>ana</b> sent {i}", rule="thank-gift", user="ana",
                  event_id=f"e{i}", data=data)


class Receiver:
    """A loopback HTTP server; ``answers`` are the statuses of the first requests (then 200), each a
    status or ``(status, headers)``. ``clock``: when given, ``times`` records it at each request."""

    def __init__(self, answers=(), secret: str | None = SECRET, hang: bool = False, clock=None) -> None:
        self.answers = list(answers)
        self.secret = secret
        self.hang = hang
        self.clock = clock
        self.times: list[float] = []
        self.release = asyncio.Event()
        self.bodies: list[object] = []  # bodies of requests answered 2xx
        self.requests = 0
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.clock is not None:
            self.times.append(self.clock())
        body = await request.read()
        if self.secret is not None:
            ts = request.headers.get("X-Livebot-Timestamp", "")
            mac = hmac.new(self.secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(request.headers.get("X-Livebot-Signature", ""), f"sha256={mac}"):
                self.bad_signatures += 1
                return web.json_response({"error": "bad signature"}, status=401)
            assert ts == str(NOW)
        assert request.headers["Content-Type"] == "application/json"
        if self.hang:
            await self.release.wait()
        if self.answers:
            status, headers = self.answers.pop(0), {}
            if isinstance(status, tuple):
                status, headers = status
            if status != 200:
                return web.Response(status=status, text="nope", headers=headers)
        self.bodies.append(orjson.loads(body))
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook/{token}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook/tok-{SECRET}?key={SECRET}"  # a token in the URL too
        return self

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        assert self.runner is not None
        await self.runner.cleanup()


class FakeSleep:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


def dead_lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def dispatcher(sink: WebhookSink, tmp_path, **kwargs) -> tuple[LiveDispatcher, FakeSleep]:
    sleep = FakeSleep()
    kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base=0.01))
    return LiveDispatcher([sink], dead_letter=tmp_path / "dead.jsonl", sleep=sleep, **kwargs), sleep


async def test_posts_signed_batches(tmp_path):
    async with Receiver() as server:
        sink = WebhookSink(server.url, secret=SECRET, max_batch=3, time_fn=lambda: NOW)
        d, _ = dispatcher(sink, tmp_path)
        sent = [act(i, diamonds=i) for i in range(7)]
        await d.dispatch(sent)
        await d.close()
    assert server.bad_signatures == 0
    assert [len(b["actions"]) for b in server.bodies] == [3, 3, 1]
    assert [a for b in server.bodies for a in b["actions"]] == [a.to_dict() for a in sent]
    assert d.stats["webhook"].sent == 7 and sink.posted == 3
    assert not (tmp_path / "dead.jsonl").exists()


async def test_one_action_per_request_by_default(tmp_path):
    async with Receiver() as server:
        sink = WebhookSink([server.url], secret=SECRET, time_fn=lambda: NOW)
        d, _ = dispatcher(sink, tmp_path)
        await d.dispatch([act(1), act(2)])
        await d.close()
    assert server.bodies == [act(1).to_dict(), act(2).to_dict()]


async def test_wrong_secret_is_refused_and_dead_lettered_at_once(tmp_path):
    async with Receiver() as server:
        sink = WebhookSink(server.url, secret="not-the-secret", time_fn=lambda: NOW)
        d, sleep = dispatcher(sink, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    assert server.bad_signatures == 1 and sleep.sleeps == []  # 401 is permanent: no retries
    [line] = dead_lines(tmp_path / "dead.jsonl")
    assert line["reason"] == "permanent" and "HTTP 401" in line["error"] and line["action"] == act(1).to_dict()


async def test_retries_on_500_then_succeeds(tmp_path):
    async with Receiver(answers=[500, 503]) as server:
        sink = WebhookSink(server.url, secret=SECRET, time_fn=lambda: NOW)
        d, sleep = dispatcher(sink, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    assert server.requests == 3 and server.bodies == [act(1).to_dict()]
    s = d.stats["webhook"]
    assert (s.sent, s.failed, s.retried, s.dead_lettered) == (1, 2, 2, 0)
    assert len(sleep.sleeps) == 2
    assert not (tmp_path / "dead.jsonl").exists()


async def test_429_is_retried_and_400_is_not(tmp_path):
    async with Receiver(answers=[429], secret=None) as server:
        sink = WebhookSink(server.url)
        d, _ = dispatcher(sink, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    assert d.stats["webhook"].sent == 1
    async with Receiver(answers=[400], secret=None) as server:
        sink = WebhookSink(server.url)
        d, sleep = dispatcher(sink, tmp_path)
        await d.dispatch([act(2)])
        await d.close()
    assert server.requests == 1 and sleep.sleeps == [] and d.stats["webhook"].dead_lettered == 1


async def test_server_down_ends_in_the_dead_letter_file(tmp_path):
    with socket.socket() as closed:  # bound, not listening: connections are refused, and the port stays ours
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        sink = WebhookSink(f"http://127.0.0.1:{port}/hook?token={SECRET}", secret=SECRET, max_batch=2)
        d, sleep = dispatcher(sink, tmp_path)
        sent = [act(i) for i in range(3)]
        with capture_logs() as logs:
            await d.dispatch(sent)
            await d.close()
    s = d.stats["webhook"]
    assert s.sent == 0 and s.dead_lettered == 3 and s.sent + s.dead_lettered == s.dispatched
    assert s.failed == 3 * 3 and s.retried == 3 * 2 and len(sleep.sleeps) == 2 * 2
    lines = dead_lines(tmp_path / "dead.jsonl")
    assert [line["action"] for line in lines] == [a.to_dict() for a in sent]
    assert {line["attempts"] for line in lines} == {3} and {line["reason"] for line in lines} == {"failed"}
    assert all(f"http://127.0.0.1:{port}: cannot connect" in line["error"] for line in lines)
    text = repr(logs) + (tmp_path / "dead.jsonl").read_text() + repr(sink)
    assert SECRET not in text and "token" not in text


async def test_timeout_is_retried(tmp_path):
    async with Receiver(hang=True) as server:
        sink = WebhookSink(server.url, secret=SECRET, timeout=0.05, time_fn=lambda: NOW)
        d, _ = dispatcher(sink, tmp_path, retry=RetryPolicy(max_attempts=2, base=0.01))
        await d.dispatch([act(1)])
        await d.close()
    [line] = dead_lines(tmp_path / "dead.jsonl")
    assert line["error"].endswith("timed out") and line["attempts"] == 2
    assert SECRET not in line["error"]


async def test_several_urls_only_the_failed_one_is_retried(tmp_path):
    async with Receiver() as a, Receiver(answers=[500]) as b:
        sink = WebhookSink([a.url, b.url], secret=SECRET, time_fn=lambda: NOW)
        d, _ = dispatcher(sink, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    assert a.requests == 1 and b.requests == 2
    assert a.bodies == b.bodies == [act(1).to_dict()]
    assert d.stats["webhook"].sent == 1 and d.stats["webhook"].retried == 1


async def test_errors_and_repr_keep_secrets_out():
    sink = WebhookSink("https://hooks.example.com/services/T0/B0/XYZ?sig=abc", secret=SECRET,
                       headers={"Authorization": "Bearer hunter2"})
    assert "XYZ" not in repr(sink) and SECRET not in repr(sink) and "hunter2" not in repr(sink)
    assert redact_url("https://u:p@h.example:8443/p?q=1") == "https://h.example:8443"
    assert issubclass(WebhookRejected, WebhookError)
    with pytest.raises(ValueError, match="http"):
        WebhookSink("ftp://example.com/x")
    await sink.close()


# -- Retry-After -----------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that only moves when someone sleeps on it: the dispatcher's backoff and the
    sink's Retry-After wait share it, so a request's time is the sum of every wait before it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def timed(url, t: FakeTime, **kwargs) -> WebhookSink:
    kwargs.setdefault("time_fn", lambda: NOW + t.now)  # wall clock, for HTTP-dates
    return WebhookSink(url, clock=t.clock, sleep=t.sleep, **kwargs)


def timed_dispatcher(sink: WebhookSink, t: FakeTime, tmp_path, **kwargs) -> LiveDispatcher:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base=0.01, cap=0.01))
    return LiveDispatcher([sink], dead_letter=tmp_path / "dead.jsonl", clock=t.clock, sleep=t.sleep, **kwargs)


async def test_429_retry_after_seconds_holds_the_retry_back(tmp_path):
    t = FakeTime()
    async with Receiver(answers=[(429, {"Retry-After": "7"})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t)
        d = timed_dispatcher(sink, t, tmp_path)
        with capture_logs() as logs:
            await d.dispatch([act(1)])
            await d.close()
    assert server.requests == 2 and server.bodies == [act(1).to_dict()]
    first, second = server.times
    assert second - first >= 7  # not before the Retry-After has passed
    assert second == pytest.approx(7)  # and not much later: backoff and Retry-After overlap, not add up
    backoff, rest = t.sleeps  # the dispatcher's (jittered, at most 0.01 s), then the sink's
    assert backoff <= 0.01 and rest == pytest.approx(7 - backoff)
    [retry] = [entry for entry in logs if entry["event"] == "sink_retry"]
    assert "HTTP 429 (Retry-After 7 s)" in retry["error"]
    assert d.stats["webhook"].sent == 1 and not (tmp_path / "dead.jsonl").exists()


async def test_503_retry_after_http_date_holds_the_retry_back(tmp_path):
    t = FakeTime()
    date = formatdate(NOW + 12, usegmt=True)  # "Fri, 15 Jan 2027 08:00:12 GMT": 12 s after the sink's wall clock
    async with Receiver(answers=[(503, {"Retry-After": date})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t, time_fn=lambda: NOW + t.now)
        d = timed_dispatcher(sink, t, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    first, second = server.times
    assert second - first >= 12 and second == pytest.approx(12)
    assert d.stats["webhook"].sent == 1


async def test_retry_after_longer_than_the_backoff_and_shorter(tmp_path):
    """A Retry-After shorter than the dispatcher's backoff adds nothing: the backoff already covers it."""
    t = FakeTime()
    async with Receiver(answers=[(429, {"Retry-After": "1"})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t)
        d = timed_dispatcher(sink, t, tmp_path, retry=RetryPolicy(max_attempts=2, base=4.0, cap=4.0))
        await d.dispatch([act(1)])
        await d.close()
    first, second = server.times
    [backoff] = t.sleeps  # the dispatcher's, 2 to 4 s: no extra sink sleep
    assert 2.0 <= backoff <= 4.0 and second - first == pytest.approx(backoff)


@pytest.mark.parametrize(("value", "cap", "expected"), [("3600", None, 60.0), ("3600", 5.0, 5.0), ("30", 5.0, 5.0)])
async def test_retry_after_is_capped(tmp_path, value, cap, expected):
    t = FakeTime()
    async with Receiver(answers=[(429, {"Retry-After": value})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t, **({} if cap is None else {"max_retry_after": cap}))
        d = timed_dispatcher(sink, t, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    first, second = server.times
    assert second - first == pytest.approx(expected)


@pytest.mark.parametrize("value", ["soon", "-3", "1.5", "", "0x10", "Fri, 99 Foo 2027 08:00:00 GMT",
                                   formatdate(NOW - 3600, usegmt=True)])  # the last: a date in the past
async def test_invalid_or_past_retry_after_is_ignored(tmp_path, value):
    t = FakeTime()
    async with Receiver(answers=[(429, {"Retry-After": value})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t)
        d = timed_dispatcher(sink, t, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    first, second = server.times
    [backoff] = t.sleeps  # the dispatcher's alone
    assert second - first == pytest.approx(backoff) and backoff <= 0.01 and d.stats["webhook"].sent == 1


async def test_retry_after_is_carried_and_also_holds_back_a_new_batch():
    """The sink itself remembers the wait: the next send waits it out even when it is another batch
    (the previous one dead-lettered) or the caller does not sleep at all."""
    t = FakeTime()
    async with Receiver(answers=[(429, {"Retry-After": "10"})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t)
        with pytest.raises(WebhookError) as caught:
            await sink.send([act(1)])
        assert caught.value.retry_after == 10 and not isinstance(caught.value, WebhookRejected)
        t.now += 3  # three seconds pass by other means
        await sink.send([act(2)])
        await sink.close()
    assert server.times == [0, pytest.approx(10)] and t.sleeps == [pytest.approx(7)]
    assert server.bodies == [act(2).to_dict()]


async def test_retry_after_is_per_url(tmp_path):
    t = FakeTime()
    async with (Receiver(secret=None, clock=t.clock) as a,
                Receiver(answers=[(429, {"Retry-After": "5"})], secret=None, clock=t.clock) as b):
        sink = timed([a.url, b.url], t)
        d = timed_dispatcher(sink, t, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
        assert a.times == [0] and b.times == [0, pytest.approx(5)]
        sent_at = t.now
        await sink.send([act(2)])  # both URLs free again: nobody waits
        await sink.close()
    assert a.times[-1] == b.times[-1] == sent_at and len(t.sleeps) == 2
    assert a.bodies == b.bodies == [act(1).to_dict(), act(2).to_dict()]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
async def test_other_4xx_stay_permanent_and_their_retry_after_is_ignored(tmp_path, status):
    t = FakeTime()
    async with Receiver(answers=[(status, {"Retry-After": "30"})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t)
        d = timed_dispatcher(sink, t, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
        assert server.requests == 1 and t.sleeps == []  # dead-lettered at once, no retry
        [line] = dead_lines(tmp_path / "dead.jsonl")
        assert line["reason"] == "permanent" and f"HTTP {status}" in line["error"]
        await sink.send([act(2)])  # a later batch is not held back by the refused one's Retry-After
        await sink.close()
    assert server.times == [0, 0] and t.sleeps == [] and server.bodies == [act(2).to_dict()]


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_retryable_statuses_with_retry_after_are_retried(tmp_path, status):
    t = FakeTime()
    async with Receiver(answers=[(status, {"Retry-After": "2"})], secret=None, clock=t.clock) as server:
        sink = timed(server.url, t)
        d = timed_dispatcher(sink, t, tmp_path)
        await d.dispatch([act(1)])
        await d.close()
    assert server.times == [0, pytest.approx(2)] and d.stats["webhook"].sent == 1


def test_parse_retry_after():
    now = NOW
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("3600", now) == 60.0 and parse_retry_after("3600", now, cap=10) == 10.0
    assert parse_retry_after("9" * 40, now) == 60.0
    assert formatdate(now + 12, usegmt=True) == "Fri, 15 Jan 2027 08:00:12 GMT"
    for form in ("Fri, 15 Jan 2027 08:00:12 GMT",  # IMF-fixdate
                 "Friday, 15-Jan-27 08:00:12 GMT",  # RFC 850 (obsolete, still allowed)
                 "Fri Jan 15 08:00:12 2027"):  # asctime
        assert parse_retry_after(form, now) == pytest.approx(12), form
    assert parse_retry_after(formatdate(now - 12, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-1", "+5", "1.5", "0x10", "\u00b2", "Fri, 99 Jan 2027 08:00:00 GMT", "Fri,"):
        assert parse_retry_after(bad, now) is None, bad
    with pytest.raises(ValueError, match="max_retry_after"):
        WebhookSink("http://example.com/x", max_retry_after=-1)
