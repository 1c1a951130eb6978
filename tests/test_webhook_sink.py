"""The webhook sink against real aiohttp servers on loopback, through the live dispatcher:
signed batches the server verifies, retries on 500, a permanent 4xx, a server that is down,
a timeout, and secrets kept out of logs and errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket

import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bot.actions.delivery import RetryPolicy
from bot.actions.dispatcher import LiveDispatcher
from bot.actions.model import Action
from bot.sinks.webhook import WebhookError, WebhookRejected, WebhookSink, redact_url

SECRET = "s3cret-do-not-log"
NOW = 1_800_000_000


def act(i: int, **data) -> Action:
    return Action(ts=1000 + i, kind="alert", text=f"<b>ana</b> sent {i}", rule="thank-gift", user="ana",
                  event_id=f"e{i}", data=data)


class Receiver:
    """A loopback HTTP server; ``answers`` are the statuses of the first requests (then 200)."""

    def __init__(self, answers=(), secret: str | None = SECRET, hang: bool = False) -> None:
        self.answers = list(answers)
        self.secret = secret
        self.hang = hang
        self.release = asyncio.Event()
        self.bodies: list[object] = []  # bodies of requests answered 2xx
        self.requests = 0
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
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
            status = self.answers.pop(0)
            if status != 200:
                return web.Response(status=status, text="nope")
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
