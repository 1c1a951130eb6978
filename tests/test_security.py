"""Security: templates cannot reach Python internals or exhaust the bot; viewer text is data, never
code; the HTTP endpoints bind to localhost and the webhook wants a signature unless told
otherwise; sizes are bounded everywhere; and a secret in a log line, a repr, /status or /metrics
is a test failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
import websockets
from structlog.testing import capture_logs

from bot.actions.dispatcher import Dispatcher
from bot.actions.model import Action
from bot.cli import main
from bot.clock import WallClock
from bot.config import Config, ConfigError, WebhookConfig, check_for_run, load_config
from bot.control.server import ControlServer
from bot.daemon import build_dispatcher, build_sinks, build_source, run_daemon
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.engine.templates import MAX_STRING, TemplateCompileError, Text
from bot.events.model import Event, User
from bot.events.wire import MAX_LINE, DecodeError, decode_line
from bot.live import LiveRunner
from bot.sources.queue import EventQueue
from bot.sources.webhook import WebhookSource, sign
from bot.sources.websocket import WebSocketSource
from bot.testing import CaptureSink
from waiting import until

ROOT = Path(__file__).resolve().parent.parent

# -- templates cannot reach Python internals, and cannot exhaust the bot ------------------------------

ATTACKS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ user.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ range.__self__ }}",
    "{{ range.__globals__ }}",
    "{{ dict.mro() }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ min.__self__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ '{0.__class__}'.format(user) }}",
    "{{ '{0.__class__.__mro__}'.format(event) }}",
    "{{ '{0[__class__]}'.format(event) }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ '%s' % user.__class__ }}",
    "{{ user|attr('__class__') }}",
    "{{ user|attr('__class__')|attr('__mro__') }}",
    "{{ (user|attr('__class__')).__name__ }}",
    "{{ event['__class__'] }}",
    "{{ event.get.__self__ }}",
    "{{ event.items.__self__.__class__ }}",
    "{{ user.nickname.__class__.__base__ }}",
    "{{ user.nickname.format.__globals__ }}",
    "{{ event.text.encode.__self__ }}",
    "{{ ().__class__.__bases__[0] }}",
    "{% set x = ''.__class__ %}{{ x }}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 10**10**10 }}",
    "{{ 9**9**9**9 }}",
    "{{ (10**12) ** 64 ** 64 }}",
    "{% for i in range(10**9) %}{% for j in range(10**9) %}x{% endfor %}{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% extends '/etc/passwd' %}",
    "{{ 'a'.zfill(10**9) }}",
    "{{ 'a'|center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ '\t'.expandtabs(10**9) }}",
    "{{ '{0:>1000000000}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=10**9) }}",
    "{{ '%1000000000s' % 1 }}",
    "{{ '%.1000000000d' % 1 }}",
    "{{ '%*s' % (10**9, 'a') }}",
    "{{ '%1000000000s'|format(1) }}",
    "{{ ('a' * 2000)|replace('a', 'a' * 2000)|replace('a', 'a' * 2000) }}",
    "{{ ('ab' * 1000)|replace('', 'x' * 2000) }}",
    "{{ range(100000)|join('x' * 2000) }}",
    "{{ range(1000)|map('center', 2000)|join }}",
    "{{ 'x'.join(['y' * 2000] * 1000) }}",
    "{{ [1]|batch(10**9, 'x')|list }}",
    "{{ [1]|slice(10**8)|list }}",
    "{{ ('a' * 2000)|wordwrap(1, wrapstring='x' * 2000) }}",
    "{{ 'a'|indent(10**9, true) }}",
    "{{ (dict.fromkeys(range(1000), 'x' * 2000)|string)|length }}",
    "{% set a = 'x' * 2000 %}" + "{% set a = a ~ a %}" * 40 + "{{ a|length }}",
    "{% set a = 'x' * 2000 %}" + "{% set a = a + a %}" * 40 + "{{ a|length }}",
    "{% set a = [1] * 2000 %}" + "{% set a = a + a %}" * 40 + "{{ a|length }}",
    "{% set a = 10**12 %}" + "{% set a = a * a %}" * 40 + "{{ a > 1 }}",
    "{% with a = 'x' * 2000 %}" + "{% with a = a ~ a %}" * 30 + "{{ a|length }}" + "{% endwith %}" * 31,
    "{{ [1, 2, 3]|random }}",
]
# What leaking internals looks like in a rendered text.
LEAKS = ("<class", "<function", "<built-in", "<module", "<bound", "__", "globals", "TemplateReference",
         "Context", "object at 0x", "subprocess", "popen", "root:")

# Each attack runs in a child process with a memory ceiling and a deadline, so an escape that
# exhausts memory or hangs fails this test instead of taking the test run down with it.
CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
    from bot import logs
    logs.configure(json=True)  # to stderr: stdout carries the results
    from bot.engine.core import Engine
    from bot.engine.loader import RuleLoadError, load_rules_text
    from bot.events.model import Event, User
    import yaml
    results = {}
    for attack in json.load(sys.stdin):
        started = time.perf_counter()
        out = {}
        for where in ("say", "when"):
            if where == "say":
                rule = {"id": "attack", "on": "chat", "do": [{"say": attack}, {"alert": {"text": "x", "data": {"v": attack}}}]}
            else:
                expression = attack.strip()
                if not (expression.startswith("{{") and expression.endswith("}}")) or "{%" in expression:
                    continue
                rule = {"id": "attack", "on": "chat", "when": expression[2:-2].strip(), "do": [{"say": "fired"}]}
            try:
                rules = load_rules_text(yaml.safe_dump({"rules": [rule]}), "attack.yaml")
            except RuleLoadError as exc:
                out[where] = {"outcome": "refused", "problems": exc.problems}
                continue
            engine = Engine(rules)
            ana = User("1", "ana", "Ana")
            try:
                actions = engine.feed(Event("chat", 1000, "r", "m1", ana, {"text": "hi"}), 1000)
            except MemoryError:
                out[where] = {"outcome": "memory"}
                continue
            except BaseException as exc:
                out[where] = {"outcome": "raised", "error": f"{type(exc).__name__}: {exc}"[:300]}
                continue
            # no action: the firing failed (counted), or a condition was false (Jinja's expressions
            # read an unsafe attribute as undefined, and undefined as None)
            out[where] = {"outcome": "rendered" if actions else "not_fired",
                          "texts": [a.text for a in actions] + [str(a.data) for a in actions],
                          "rule_errors": engine.counters["rule_errors"]}
        out["seconds"] = time.perf_counter() - started
        results[attack] = out
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def attack_results():
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(ATTACKS), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("attack", ATTACKS)
def test_sandbox_escapes_are_refused_at_load_or_harmless(attack, attack_results):
    """Each attack, as rule text and as a condition: refused at load with a position, or run with
    nothing leaked (the firing dropped and counted, or a harmless text), in bounded memory."""
    result = attack_results[attack]
    for where in ("say", "when"):
        if where not in result:
            continue
        r = result[where]
        assert r["outcome"] in ("refused", "rendered", "not_fired"), r
        if r["outcome"] == "refused":
            assert all(p.startswith("attack.yaml:") for p in r["problems"])
        elif r["outcome"] == "not_fired":
            assert r["rule_errors"] >= 1 or where == "when"
        else:
            for text in r["texts"]:
                assert not any(marker in text for marker in LEAKS), (attack, text[:200])
                assert len(text) <= MAX_STRING


def test_the_exhaustion_attacks_are_refused_not_just_capped(attack_results):
    """Huge widths, repeats, doublings and powers are refused before they are built: the firing is
    dropped (a rule error), it does not render a capped 2,000-character text after building a
    gigabyte."""
    building = [a for a in ATTACKS if any(k in a for k in ("10**9", "10**8", "zfill", "ljust", "expandtabs",
                                                           "1000000000", "replace(", "join(", "a ~ a", "a + a",
                                                           "a * a", "|string"))]
    assert len(building) >= 20
    for attack in building:
        outcomes = {r["outcome"] for k, r in attack_results[attack].items() if k != "seconds"}
        assert outcomes <= {"refused", "not_fired"}, (attack, attack_results[attack])
        if attack_results[attack].get("say", {}).get("outcome") == "not_fired":
            assert attack_results[attack]["say"]["rule_errors"] == 1


def test_everyday_template_features_still_work():
    context = {"user": {"nickname": "Ana"}, "event": {"text": "hi there", "count": 3},
               "leaderboard": [{"rank": 1, "nickname": "Bo", "diamonds": 1200}]}
    names = frozenset(context)
    for source, expected in [
        ("{{ user.nickname|upper }} x{{ event.count }}", "ANA x3"),
        ("{{ ['a', 'b']|join(', ') }}", "a, b"),
        ("{{ event.text|replace(' ', '-')|title }}", "Hi-There"),
        ("{{ '%5.1f' % 3.14159 }}|{{ '{:>6}'.format(12) }}", "  3.1|    12"),
        ("{{ 'x'|center(5) }}|{{ 'ab'.join(['x', 'y']) }}", "  x  |xaby"),
        ("{{ leaderboard|ranked }}", "1. Bo (1,200)"),
        ("{% set n = event.count * 2 %}{{ n }} {{ 'ha' * n }}", "6 hahahahahaha"),
        ("{{ [1, 2, 3, 4]|batch(2)|list }} {{ range(3)|sum }}", "[[1, 2], [3, 4]] 3"),
        ("{{ user.nickname ~ '!' * 3 }}", "Ana!!!"),
        ("{{ 2 ** 10 }} {{ 'hello world'|wordwrap(5) }}", "1024 hello\nworld"),
    ]:
        assert Text(source, names).render(context) == expected


# -- viewer text is data, never code ----------------------------------------------------------------------

HOSTILE_NAMES = ["{{ 7*7 }}", "{% for x in range(9) %}x{% endfor %}", "{{ user.__class__ }}", "{#", "{{",
                 "{{ ''.__class__.__mro__ }}", "<script>alert(1)</script>", "%s %d {0}"]


def test_viewer_text_is_printed_as_typed_through_the_full_replay_path(tmp_path, capsys):
    """Nicknames, comments and gift names holding template code go from a session file (all three
    wire formats) through the rules to the JSONL output exactly as typed."""
    lines = []
    for i, name in enumerate(HOSTILE_NAMES):
        user = {"userId": f"u{i}", "uniqueId": f"v{i}", "nickname": name}
        t = str(1_763_665_200_000 + i * 1000)
        lines.append({"event": "chat", "data": {**user, "comment": name, "msgId": f"c{i}", "createTime": t}})
        lines.append({"event": "gift", "data": {**user, "giftId": 1, "giftName": name, "diamondCount": 5,
                                                "giftType": 2, "repeatCount": 1, "repeatEnd": True,
                                                "msgId": f"g{i}", "createTime": t}})
        lines.append({"timestamp": int(t), "messages": [{"type": "WebcastChatMessage", "data": {
            "common": {"msgId": f"e{i}", "createTime": t}, "user": user, "content": name}}]})
        lines.append({"type": "chat", "ts": int(t) + 500, "msg_id": f"n{i}",
                      "user": {"user_id": f"u{i}", "unique_id": f"v{i}", "nickname": name}, "data": {"text": name}})
    session = tmp_path / "hostile.jsonl"
    session.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    rules = tmp_path / "echo.yaml"
    rules.write_text(textwrap.dedent("""
        rules:
          - id: echo
            on: chat
            do:
              - say: "{{ user.nickname }}|{{ event.text }}"
              - alert: {text: "{{ user.nickname }}", data: {who: "{{ user.nickname }}"}}
          - id: thanks
            on: gift
            do: [{say: "{{ user.nickname }}|{{ event.name }}|{{ leaderboard|ranked(20) }}"}]
        """), encoding="utf-8")
    out = tmp_path / "actions.jsonl"
    assert main(["replay", str(session), "--rules", str(rules), "--out", str(out), "--quiet"]) == 0
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    says = [r["text"] for r in records if r["rule"] == "echo" and r["kind"] == "say"]
    assert says == [f"{name}|{name}" for name in HOSTILE_NAMES for _ in range(3)]
    alerts = [r for r in records if r["kind"] == "alert"]
    assert [a["data"]["who"] for a in alerts] == [a["text"] for a in alerts] == [n for n in HOSTILE_NAMES
                                                                                 for _ in range(3)]
    thanks = [r["text"] for r in records if r["rule"] == "thanks"]
    assert [t.split("|")[:2] for t in thanks] == [[n, n] for n in HOSTILE_NAMES]
    assert all(HOSTILE_NAMES[0] in t for t in thanks)  # the leaderboard names too
    assert "49" not in " ".join(says)


async def test_the_status_page_escapes_viewer_names():
    rules = load_rules_text("rules:\n  - id: t\n    on: gift\n    do: [{say: thanks}]\n")
    runner = LiveRunner([], Engine(rules), Dispatcher([CaptureSink()]))
    user = User("1", "x", "<script>alert(1)</script>")
    runner.engine.feed(Event("gift", 1, "r", "g1", user, {"gift_id": 1, "name": "<b>Rose</b>", "diamonds": 5,
                                                          "count": 1, "gift_type": 2, "streak_end": True}), 1)
    server = ControlServer(runner, port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/status") as resp:
                page = await resp.text()
    finally:
        await server.stop()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- endpoints bind to localhost, the webhook wants a signature ---------------------------------------------

def test_http_endpoints_bind_to_localhost_by_default(tmp_path):
    cfg = Config()
    assert cfg.http_host == "127.0.0.1" and cfg.source.webhook.host == "127.0.0.1"
    assert WebhookConfig().allow_unsigned is False
    (tmp_path / "c.yaml").write_text("source: {type: webhook}\n")
    loaded = load_config(tmp_path / "c.yaml", env={})
    assert (loaded.http_host, loaded.source.webhook.host) == ("127.0.0.1", "127.0.0.1")
    example = load_config(ROOT / "config.example.yaml", env={})
    assert (example.http_host, example.source.webhook.host) == ("127.0.0.1", "127.0.0.1")


def test_every_server_in_the_code_defaults_to_loopback():
    """Every ``host`` parameter or config field with a default anywhere under bot/ (the control
    server, the webhook source, the overlay, whatever comes next) defaults to 127.0.0.1."""
    import dataclasses
    import importlib
    import inspect
    import pkgutil

    import bot

    found = {}
    for info in pkgutil.walk_packages(bot.__path__, "bot."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or not callable(obj):
                continue
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                continue
            host = params.get("host") or params.get("http_host")
            if host is not None and host.default is not inspect.Parameter.empty:
                found[f"{info.name}.{name}"] = host.default
            if dataclasses.is_dataclass(obj):
                for f in dataclasses.fields(obj):
                    if f.name.endswith("host") and isinstance(f.default, str):
                        found[f"{info.name}.{name}.{f.name}"] = f.default
    assert {"bot.control.server.ControlServer", "bot.sources.webhook.WebhookSource", "bot.config.model.Config.http_host",
            "bot.config.model.WebhookConfig.host"} <= set(found)
    assert {k: v for k, v in found.items() if v not in ("127.0.0.1", "localhost")} == {}


async def test_the_control_server_listens_on_loopback_only():
    runner = LiveRunner([], Engine(load_rules_text("rules: []\n")), Dispatcher([]))
    server = ControlServer(runner, port=0)
    await server.start()
    try:
        addresses = {s.getsockname()[0] for site in server._site_runner.sites for s in site._server.sockets}
        assert addresses == {"127.0.0.1"}
    finally:
        await server.stop()
    source = WebhookSource("k", port=0)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(EventQueue(), WallClock(), stop))
    await asyncio.wait_for(source.listening.wait(), 5)
    assert source.url.startswith("http://127.0.0.1:")
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_the_webhook_refuses_unsigned_requests_by_default(tmp_path):
    with pytest.raises(ValueError, match="needs a secret"):
        WebhookSource()
    (tmp_path / "c.yaml").write_text("source: {type: webhook}\n")
    cfg = load_config(tmp_path / "c.yaml", env={})
    assert check_for_run(cfg, "c.yaml:1:1") and "secret" in check_for_run(cfg, "c.yaml:1:1")[0]
    source = WebhookSource("k", port=0)
    queue, stop = EventQueue(), asyncio.Event()
    task = asyncio.create_task(source.run(queue, WallClock(), stop))
    await asyncio.wait_for(source.listening.wait(), 5)
    body = orjson.dumps({"type": "chat", "ts": 1, "data": {"text": "hi"}})
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Livebot-Signature": "sha256=" + "0" * 64, "X-Livebot-Timestamp": str(int(time.time()))},
                            sign("wrong key", body), sign("k", body, int(time.time()) - 3600),
                            {**sign("k", body), "X-Livebot-Signature": sign("k", body)["X-Livebot-Signature"][:-1]}):
                async with http.post(source.url, data=body,
                                     headers={**headers, "Content-Type": "application/json"}) as resp:
                    assert resp.status == 401
            async with http.post(source.url, data=body, headers={**sign("k", body), "Content-Type": "application/json"}) as resp:
                assert resp.status == 202
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert [e.type for e in queue.get_nowait(100) if e.type == "chat"] == ["chat"]


# -- size limits -------------------------------------------------------------------------------------------

def test_line_length_is_bounded_in_the_reader():
    with pytest.raises(DecodeError, match="line too long"):
        decode_line(b'{"event": "chat", "data": {"comment": "' + b"x" * MAX_LINE + b'"}}')


async def test_webhook_bodies_are_bounded_with_or_without_a_content_length():
    source = WebhookSource("k", port=0, max_body=10_000)
    queue, stop = EventQueue(), asyncio.Event()
    task = asyncio.create_task(source.run(queue, WallClock(), stop))
    await asyncio.wait_for(source.listening.wait(), 5)
    big = b'{"pad": "' + b"x" * 20_000 + b'"}'

    async def chunks():
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(source.url, data=big, headers={**sign("k", big), "Content-Type": "application/json"}) as resp:
                assert resp.status == 413
            async with http.post(source.url, data=chunks(), headers={**sign("k", big), "Content-Type": "application/json"}) as resp:  # chunked
                assert resp.status == 413
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert WebhookConfig().max_body == 1 << 20 and WebhookConfig().max_events == 10_000


async def test_websocket_messages_are_bounded():
    """A message over ``max_message`` (1 MiB by default) closes the connection (1009); the source
    reconnects and goes on."""
    assert WebSocketSource("ws://localhost:21213").max_message == 1 << 20
    connections = []

    async def handler(ws):
        connections.append(ws)
        if len(connections) == 1:
            await ws.send("x" * 5000)
        else:
            await ws.send(orjson.dumps({"type": "chat", "ts": 1, "msg_id": "ok", "data": {"text": "fine"}}).decode())
            await ws.close(code=4005)
        await ws.wait_closed()

    async def no_sleep(_):
        await asyncio.sleep(0)

    server = await websockets.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        source = WebSocketSource(f"ws://127.0.0.1:{port}/", max_message=4000, sleep=no_sleep)
        queue = EventQueue()
        await asyncio.wait_for(source.run(queue, WallClock(), asyncio.Event()), 10)
    finally:
        server.close()
        await server.wait_closed()
    events = queue.get_nowait(100)
    assert [e.type for e in events] == ["connect", "disconnect", "connect", "chat", "disconnect", "live_end"]
    assert events[3].msg_id == "ok" and source.malformed == 0 and len(connections) == 2


async def test_the_overlay_listens_on_loopback_and_bounds_what_browsers_send():
    from bot.sinks.overlay.server import OverlayServer

    overlay = OverlayServer(port=0)
    await overlay.start()
    try:
        assert overlay.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(overlay.url + "ws") as ws:
                await ws.receive()  # the state on connect
                await ws.send_str("x" * 100_000)
                while (msg := await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                                aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    pass
                assert ws.close_code == 1009  # message too big
    finally:
        await overlay.stop()


def test_yaml_and_template_sizes_are_bounded():
    with pytest.raises(RuleLoadError, match="more than 100,000 values"):
        load_rules_text("a: &a [" + ", ".join(["x"] * 50) + "]\nb: &b [" + ", ".join(["*a"] * 50) + "]\nrules: ["
                        + ", ".join(["*b"] * 50) + "]")
    with pytest.raises(TemplateCompileError):
        Text("{% for x in range(3) %}x{% endfor %}", frozenset())
    assert len(Text("{{ x }}", frozenset({"x"})).render({"x": "y" * 10 * MAX_STRING})) == MAX_STRING


# -- a secret in a log line is a test failure -----------------------------------------------------------------

SECRETS = ("SECRET1-euler-api-key", "SECRET2-sign-api-key", "SECRET3-webhook-secret", "SECRET4-sink-secret",
           "SECRET5-chat-session", "SECRET6-sink-url-token", "SECRET7-redis-password")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path: Path, ws_port: int, sink_port: int) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        rules: rules.yaml
        room_id: secret-test
        source:
          type: websocket
          websocket: {{url: "ws://127.0.0.1:{ws_port}/?uniqueId=creator&apiKey={SECRETS[0]}"}}
          tiktok: {{unique_id: "@creator", sign_api_key: {SECRETS[1]}}}
          webhook: {{host: 127.0.0.1, port: 0, secret: {SECRETS[2]}}}
        sinks:
          console: true
          webhooks:
            - {{url: "http://127.0.0.1:{sink_port}/hook?token={SECRETS[5]}", secret: {SECRETS[3]}, name: hook,
                timeout: 1s}}
          chat: {{enabled: true, session_id: {SECRETS[4]}}}
          attempts: 1
          drain_timeout: 1s
        state: {{redis: "redis://:{SECRETS[6]}@127.0.0.1:1/0"}}
        record: {{folder: sessions}}
        http: {{port: 0}}
        """), encoding="utf-8")
    (tmp_path / "rules.yaml").write_text('rules:\n  - id: echo\n    on: [chat, gift]\n    do: [{say: "hi {{ user.nickname }}"}]\n')
    return path


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


async def test_no_secret_in_logs_reprs_status_or_metrics(tmp_path, caplog, capsys):
    pytest.importorskip("TikTokLive")
    caplog.set_level(logging.INFO)  # what a deployment runs at: the libraries' records too
    seen: list[str] = []  # every text that must not hold a secret

    async def ws_handler(ws):  # an Euler-like feed: one chat line, then "stream ended"
        await ws.send(orjson.dumps({"event": "chat", "data": {"userId": "1", "nickname": "Ana", "comment": "hi",
                                                              "msgId": "m1"}}).decode())
        await ws.close(code=4005)

    ws_server = await websockets.serve(ws_handler, "127.0.0.1", 0)
    ws_port = ws_server.sockets[0].getsockname()[1]
    config = _config(tmp_path, ws_port, _free_port())  # nothing listens on the sink's port
    try:
        with capture_logs() as logs:
            cfg = load_config(config, env={})
            ruleset = load_rules_text((tmp_path / "rules.yaml").read_text())
            seen += [repr(cfg), repr(cfg.source), repr(cfg.webhooks), json.dumps(cfg.redacted(), default=str)]
            sources = {}
            for kind in ("websocket", "tiktok", "webhook"):
                cfg.source.type = kind
                sources[kind] = build_source(cfg)
                seen.append(repr(sources[kind]))
            sinks = build_sinks(cfg)
            seen += [repr(s) for s in sinks]

            # the websocket source, through the live runner, with the control server scraped
            dispatcher = build_dispatcher(cfg, [s for s in sinks if s.name == "hook"])
            runner = LiveRunner([sources["websocket"]], Engine(ruleset), dispatcher, queue=EventQueue())
            server = ControlServer(runner, port=0, config=cfg.redacted())
            await server.start()
            await asyncio.wait_for(runner.run(), 20)
            async with aiohttp.ClientSession() as http:
                for page in ("/status", "/metrics", "/healthz"):
                    async with http.get(f"http://127.0.0.1:{server.port}{page}") as resp:
                        seen.append(await resp.text())
            await server.stop()
            await dispatcher.close()

            # a sink that cannot deliver: its errors name the host only
            hook = next(s for s in sinks if s.name == "hook")
            with pytest.raises(Exception) as failed:
                await hook.send([Action(1, "say", "hi", "echo")])
            seen.append(str(failed.value))
            await hook.close()

            # the tiktok source, whose client fails with the key in its message (a signer echoing it)
            class Leaky:
                def __init__(self, unique_id, key):
                    self.key = key

                async def run(self, emit):
                    raise RuntimeError(f"sign server said no to apiKey={self.key}")

                async def close(self):
                    pass

            tiktok = sources["tiktok"]
            tiktok.client_factory = Leaky
            stop = asyncio.Event()

            async def stop_after(_):
                stop.set()

            tiktok.sleep = stop_after
            queue = EventQueue()
            await asyncio.wait_for(tiktok.run(queue, WallClock(), stop), 10)
            seen += [repr(e) for e in queue.get_nowait(100)]

            # the daemon itself, with the webhook source, until SIGTERM
            cfg.source.type = "webhook"
            cfg.state_redis = None  # no Redis here
            daemon = asyncio.create_task(run_daemon(cfg, ruleset, sinks=[]))
            # (SIGTERM only once the daemon handles it: before, it would end this test's process)
            await until(lambda: any(e["event"] == "started" for e in logs) or daemon.done(), "the daemon to start")
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(daemon, 20)

            # a config with a broken URL is refused without quoting it
            bad = config.read_text().replace(f"ws://127.0.0.1:{ws_port}/", "ws:///")
            config.write_text(bad)
            with pytest.raises(ConfigError) as refused:
                load_config(config, env={})
            seen.append(str(refused.value))
    finally:
        ws_server.close()
        await ws_server.wait_closed()
    captured = capsys.readouterr()
    assert any(e.get("event") == "websocket_connected" for e in logs)  # the pieces did log
    seen += [repr(logs), caplog.text, captured.out, captured.err]
    for recording in (tmp_path / "sessions").glob("*.jsonl"):
        seen.append(recording.read_text())
    leaked = {s for text in seen for s in _leaks(text)}
    assert not leaked, [text[:300] for text in seen if _leaks(text)]


def test_secrets_from_the_environment_never_show(tmp_path):
    (tmp_path / "c.yaml").write_text("source: {type: tiktok, tiktok: {unique_id: '@c'}}\nsinks: {chat: {enabled: true}}\n")
    env = {"LIVEBOT_SIGN_API_KEY": SECRETS[1], "LIVEBOT_WEBHOOK_SECRET": SECRETS[2], "LIVEBOT_SESSION_ID": SECRETS[4]}
    cfg = load_config(tmp_path / "c.yaml", env=env)
    assert cfg.source.tiktok.sign_api_key == SECRETS[1] and cfg.chat_session_id == SECRETS[4]
    assert not _leaks(repr(cfg) + json.dumps(cfg.redacted(), default=str) + repr(cfg.source.webhook))


async def test_the_websocket_source_never_logs_its_url_query_or_credentials():
    queue = EventQueue()
    with capture_logs() as logs:
        for url in (f"ws:///?apiKey={SECRETS[0]}", f"ws://user:{SECRETS[0]}@127.0.0.1:{_free_port()}/"):
            stop = asyncio.Event()

            async def once(_, stop=stop):
                stop.set()

            source = WebSocketSource(url, sleep=once)
            await asyncio.wait_for(source.run(queue, WallClock(), stop), 10)
    seen = repr(logs) + repr(queue.get_nowait(100))
    assert not _leaks(seen), seen[:500]


async def test_the_websocket_source_survives_a_url_it_cannot_parse():
    stop = asyncio.Event()

    async def once(_):
        stop.set()

    source = WebSocketSource("ws://127.0.0.1:notaport/", sleep=once)
    await asyncio.wait_for(source.run(EventQueue(), WallClock(), stop), 10)


def test_worker_and_ingest_usage_errors_never_print_a_redis_password(tmp_path):
    """`livebot run --source` / `livebot ingest --redis` refuse a bad or mismatched URL with a
    one-line message naming it — without its password."""
    import subprocess
    import sys

    (tmp_path / "rules.yaml").write_text("rules: []\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rules: rules.yaml\nstate:\n  redis: redis://:hunter2state@127.0.0.1:1/0\n"
                   "ingest:\n  rooms:\n    - {room: alice, type: websocket, url: ws://127.0.0.1:1/}\n")
    runs = [["run", "-c", str(cfg), "--source", "redis://:hunter2src@127.0.0.1:2/0"],
            ["run", "-c", str(cfg), "--source", "http://:hunter2bad@x/"],
            ["ingest", "-c", str(cfg), "--redis", "http://:hunter2bad@x/"]]
    for args in runs:
        out = subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=tmp_path,
                             timeout=60)
        assert out.returncode in (1, 2), out
        assert "hunter2" not in out.stdout + out.stderr and "***" in out.stderr, out.stderr
