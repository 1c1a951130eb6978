"""`livebot resend`: dead-lettered actions sent again to a real loopback webhook receiver (signed
requests, checked) that is down (503) first and then up. Each action arrives exactly once across
runs; what is left stays in the file, in order; malformed lines are reported and kept; exit codes;
--dry-run; --sink/--reason; a bot appending to the file meanwhile; an interrupted run.

The dead letters are made the way `livebot run` makes them (the daemon's sinks, a LiveDispatcher,
its DeadLetter file) against the receiver while it is down. Most runs are in-process (with no
backoff waits); the command itself runs as a subprocess in the two-run test."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import sys
import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from bot.actions import resend as resend_module
from bot.actions.delivery import DeadLetter, RetryPolicy
from bot.actions.dispatcher import LiveDispatcher
from bot.actions.model import Action
from bot.actions.resend import Resend
from bot.cli import main
from bot.config import load_config
from bot.daemon import build_sinks

SECRET = "resend-s3cret"


def act(i: int) -> Action:
    return Action(ts=1000 + i, kind="alert", text=f"ana sent gift {i}", rule="thank-gift", user="ana",
                  event_id=f"e{i}", data={"diamonds": i})


class Receiver:
    """A loopback webhook receiver checking the HMAC signature. ``up`` False: every request gets 503.
    ``answers``: statuses for the next requests (then 200 while up). ``hang_at``: the request number
    that waits until the receiver stops (then 503). ``on_request``: called at each request."""

    def __init__(self) -> None:
        self.up = False
        self.answers: list[int] = []
        self.hang_at: int | None = None
        self.on_request = None
        self.requests = 0
        self.bad_signatures = 0
        self.received: list[dict] = []  # actions of requests answered 200, in order
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        number = self.requests
        body = await request.read()
        ts = request.headers.get("X-Livebot-Timestamp", "")
        mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        if (not hmac.compare_digest(request.headers.get("X-Livebot-Signature", ""), f"sha256={mac}")
                or abs(int(ts) - time.time()) > 300):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.on_request is not None:
            self.on_request()
        if number == self.hang_at:  # the client gives up on it first: never accepted
            await self.release.wait()
            return web.Response(status=503, text="too late")
        status = self.answers.pop(0) if self.answers else (200 if self.up else 503)
        if status != 200:
            return web.Response(status=status, text="down")
        payload = orjson.loads(body)
        self.received += payload["actions"] if "actions" in payload else [payload]
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        assert self.runner is not None
        await self.runner.cleanup()


def write_config(tmp: Path, url: str, attempts: int = 2, extra: str = "") -> Path:
    cfg = tmp / "config.yaml"
    cfg.write_text(f"sinks:\n  console: false\n  attempts: {attempts}\n  webhooks:\n"
                   f"    - url: {url}\n      name: streamerbot\n      secret: {SECRET}\n      max_batch: 2\n{extra}")
    return cfg


async def make_dead_letters(cfg: Path, dead: Path, actions: list[Action]) -> None:
    """What `livebot run` leaves when the receiver is down: the daemon's sinks, a LiveDispatcher
    that gives up at once, and its dead-letter file."""
    sinks = build_sinks(load_config(cfg))
    d = LiveDispatcher(sinks, dead_letter=dead, retry=RetryPolicy(max_attempts=1))
    await d.dispatch(actions)
    await d.close()


def dead_line(sink: str, i: int, reason: str = "failed") -> bytes:
    return orjson.dumps({"at": 1, "sink": sink, "reason": reason, "error": "HTTP 503", "attempts": 5,
                         "action": act(i).to_dict()}) + b"\n"


def records(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def rows(out: str) -> list[list[str]]:
    """The summary's table rows, split on whitespace."""
    return [line.split() for line in out.splitlines() if line.startswith("  ")]


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


async def resend(dead: Path, cfg: Path, **kwargs) -> int:
    """The command in-process (the backoff waits skipped)."""
    return await Resend(dead, load_config(cfg), config_name=str(cfg), sleep=no_wait, **kwargs).run()


async def resend_command(dead: Path, cfg: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--log-json", "resend", str(dead), "-c", str(cfg), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_two_runs_of_the_command_deliver_each_action_exactly_once(tmp_path):
    dead = tmp_path / "dead.jsonl"
    sent = [act(i) for i in range(7)]
    async with Receiver() as server:
        cfg = write_config(tmp_path, server.url, attempts=2)
        await make_dead_letters(cfg, dead, sent)
        assert [r["action"] for r in records(dead)] == [a.to_dict() for a in sent]
        before = dead.read_bytes().splitlines()
        server.requests = 0

        # Still down: the first batch is tried `attempts` times, then the sink gets nothing more.
        code, out, err = await resend_command(dead, cfg)
        assert code == 1, err
        assert server.requests == 2 and server.received == []
        left = records(dead)
        assert [r["action"] for r in left] == [a.to_dict() for a in sent]  # all kept, in order
        assert [(r["reason"], r["attempts"]) for r in left[:2]] == [("failed", 2)] * 2  # the batch tried: fresh
        assert left[0]["error"].endswith("answered HTTP 503")
        assert dead.read_bytes().splitlines()[2:] == before[2:]  # the lines not tried: byte for byte
        assert "kept: failed again" in out and "kept: not tried" in out and "sent 0 action(s); 7 line(s) left" in out
        assert "sink 'streamerbot' failed again after 2 attempt(s)" in err
        assert not (tmp_path / "dead.jsonl.resend").exists()

        server.up = True
        code, out, err = await resend_command(dead, cfg)
        assert code == 0, err
        assert server.received == [a.to_dict() for a in sent]  # each once, in order
        assert server.bad_signatures == 0
        assert dead.read_bytes() == b""
        assert "sent 7 action(s); 0 line(s) left" in out

        requests = server.requests
        code, out, _ = await resend_command(dead, cfg)  # nothing left: nothing sent again
        assert code == 0 and server.requests == requests and "sent 0 action(s)" in out
    assert len(server.received) == 7


async def test_a_receiver_back_during_the_retries_gets_everything_once(tmp_path):
    dead = tmp_path / "dead.jsonl"
    async with Receiver() as server:
        cfg = write_config(tmp_path, server.url, attempts=3)
        await make_dead_letters(cfg, dead, [act(i) for i in range(5)])
        server.up, server.answers = True, [503, 503]  # back on the third try of the first batch
        assert await resend(dead, cfg) == 0
    assert server.received == [act(i).to_dict() for i in range(5)]
    assert dead.read_bytes() == b""


async def test_malformed_lines_are_reported_and_kept(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(resend_module, "CHUNK_LINES", 2)  # order across chunk boundaries too
    monkeypatch.setattr(resend_module, "MAX_LINE", 400)
    dead = tmp_path / "dead.jsonl"
    bad = [b"this is not json\n", b'{"sink": "streamerbot"}\n',
           b'{"sink": "streamerbot", "reason": "failed", "action": {"kind": "say"}}\n', b"[1, 2]\n",
           b"x" * 1000 + b"\n"]
    dead.write_bytes(dead_line("streamerbot", 0) + bad[0] + bad[1] + dead_line("streamerbot", 1) + b"\n" + bad[2]
                     + bad[3] + bad[4] + dead_line("streamerbot", 2))
    async with Receiver() as server:
        server.up = True
        cfg = write_config(tmp_path, server.url)
        # the second run reads what the first left: only the bad lines; it sends nothing again
        for lines in ([2, 3, 6, 7, 8], [1, 2, 3, 4, 5]):
            assert await resend(dead, cfg) == 1
            err = capsys.readouterr().err
            assert f"{dead}:{lines[0]}: not JSON (" in err
            assert f"{dead}:{lines[1]}: not a dead-letter record (a JSON object with 'sink' and 'action')" in err
            assert f"{dead}:{lines[2]}: 'action' has no 'ts'" in err
            assert f"{dead}:{lines[3]}: not a dead-letter record" in err
            assert f"{dead}:{lines[4]}: longer than 400 bytes" in err
            assert dead.read_bytes() == b"".join(bad)  # kept byte for byte, in order; the blank line dropped
            assert server.received == [act(i).to_dict() for i in range(3)]


async def test_lines_of_sinks_it_does_not_send_to_are_reported_and_kept(tmp_path, capsys):
    dead = tmp_path / "dead.jsonl"
    kept = [dead_line("overlay", 1, "shutdown"), dead_line("console", 2), dead_line("chat", 3),
            dead_line("old-hook", 4)]
    dead.write_bytes(dead_line("streamerbot", 0) + b"".join(kept) + dead_line("streamerbot", 5))
    async with Receiver() as server:
        server.up = True
        cfg = write_config(tmp_path, server.url)
        assert await resend(dead, cfg) == 1
    out = capsys.readouterr().out
    assert server.received == [act(0).to_dict(), act(5).to_dict()]
    assert dead.read_bytes() == b"".join(kept)
    assert "kept: not a resend target (the overlay shows actions live)" in out
    assert ["old-hook", "failed", "1", "kept:", "no", "such", "sink", "in", str(cfg)] in rows(out)
    assert "sent 2 action(s); 4 line(s) left" in out


async def test_dry_run_prints_per_sink_and_reason_and_sends_nothing(tmp_path, capsys):
    dead = tmp_path / "dead.jsonl"
    dead.write_bytes(dead_line("streamerbot", 0) + dead_line("streamerbot", 1, "overflow")
                     + dead_line("streamerbot", 2) + dead_line("overlay", 3, "shutdown"))
    before = dead.read_bytes()
    async with Receiver() as server:
        server.up = True
        cfg = write_config(tmp_path, server.url)
        assert await resend(dead, cfg, dry_run=True) == 1  # the overlay line would stay
        out = capsys.readouterr().out
        assert server.requests == 0 and dead.read_bytes() == before
        assert not (tmp_path / "dead.jsonl.resend").exists()
        assert "dry run: nothing is sent, the file is not changed" in out
        assert rows(out)[1:] == [
            ["streamerbot", "failed", "2", "would", "send"], ["streamerbot", "overflow", "1", "would", "send"],
            ["overlay", "shutdown", "1", "kept:", "not", "a", "resend", "target", "(the", "overlay", "shows",
             "actions", "live)"]]
        assert "would send 3 action(s); 1 line(s) would stay" in out
        assert await resend(dead, cfg, dry_run=True, sinks=["streamerbot"]) == 0  # all it selects would go
        code, out, _ = await resend_command(dead, cfg, "--dry-run", "--reason", "overflow")
        assert code == 0 and ["streamerbot", "overflow", "1", "would", "send"] in rows(out)
        assert server.requests == 0 and dead.read_bytes() == before


async def test_sink_and_reason_choose_the_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(resend_module, "CHUNK_LINES", 3)
    dead = tmp_path / "dead.jsonl"
    other = "    - url: http://127.0.0.1:9/never\n      name: other\n"
    dead.write_bytes(dead_line("streamerbot", 0) + dead_line("streamerbot", 1, "overflow") + dead_line("other", 2)
                     + dead_line("streamerbot", 3, "shutdown") + dead_line("streamerbot", 4, "overflow"))
    async with Receiver() as server:
        server.up = True
        cfg = write_config(tmp_path, server.url, extra=other)
        assert await resend(dead, cfg, sinks=["streamerbot"], reasons=["overflow", "shutdown"]) == 0
        assert server.received == [act(1).to_dict(), act(3).to_dict(), act(4).to_dict()]
        assert "sent 3 action(s); 2 line(s) left in" in capsys.readouterr().out
        assert [r["action"]["ts"] for r in records(dead)] == [1000, 1002]  # the rest, in order
        assert await resend(dead, cfg, sinks=["streamerbot"]) == 0
    assert [a["ts"] for a in server.received] == [1001, 1003, 1004, 1000]
    assert dead.read_bytes() == dead_line("other", 2)


def test_usage_and_config_errors_exit_2(tmp_path, capsys):
    dead = tmp_path / "dead.jsonl"
    dead.write_bytes(dead_line("streamerbot", 0))
    cfg = write_config(tmp_path, "http://127.0.0.1:9/hook")
    assert main(["resend", str(tmp_path / "nope.jsonl"), "-c", str(cfg)]) == 2
    assert "no such dead-letter file" in capsys.readouterr().err
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("sinks:\n  attemps: 3\n")
    assert main(["resend", str(dead), "-c", str(bad_cfg)]) == 2
    assert f"{bad_cfg}:2:3: unknown key 'sinks.attemps' (did you mean 'attempts'?)" in capsys.readouterr().err
    assert main(["resend", str(dead), "-c", str(cfg), "--sink", "nope"]) == 2
    assert f"--sink nope: no such sink in {cfg}" in capsys.readouterr().err
    assert main(["resend", str(dead), "-c", str(cfg), "--sink", "overlay"]) == 2
    assert "--sink overlay: not a sink resend sends to" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["resend", str(dead), "-c", str(cfg), "--reason", "lost"])
    assert exc.value.code == 2
    lock = tmp_path / "dead.jsonl.resend"
    lock.write_bytes(b"")  # another resend at work (or one killed)
    assert main(["resend", str(dead), "-c", str(cfg)]) == 2
    assert "dead.jsonl.resend exists: another resend" in capsys.readouterr().err
    assert lock.exists() and dead.read_bytes() == dead_line("streamerbot", 0)


async def test_a_bot_appending_to_the_file_meanwhile_loses_nothing(tmp_path, capsys):
    dead = tmp_path / "dead.jsonl"
    bot = DeadLetter(dead)  # the running bot's dead-letter file, held open as the daemon holds it
    bot.write("streamerbot", [act(0), act(1), act(2)], reason="failed", error="HTTP 503", attempts=5)
    async with Receiver() as server:
        server.up = True
        cfg = write_config(tmp_path, server.url)
        writes = iter([3, 4])  # the bot dead-letters two more while the resend sends

        def bot_writes() -> None:
            if (i := next(writes, None)) is not None:
                bot.write("streamerbot", [act(i)], reason="overflow", error="queue full", attempts=0)

        server.on_request = bot_writes
        assert await resend(dead, cfg) == 1  # what the bot added is left for the next run
        assert [a["ts"] for a in server.received] == [1000, 1001, 1002]
        assert [(r["action"]["ts"], r["reason"]) for r in records(dead)] == [(1003, "overflow"), (1004, "overflow")]
        assert "2 line(s) were added to" in capsys.readouterr().out
        server.on_request = None
        bot.write("streamerbot", [act(5)], reason="failed", error="HTTP 503", attempts=5)  # after the rewrite
        assert records(dead)[-1]["action"]["ts"] == 1005  # the bot writes to the new file, not a lost one
        assert await resend(dead, cfg) == 0
        bot.close()
    assert sorted(a["ts"] for a in server.received) == [1000 + i for i in range(6)]  # exactly once each
    assert dead.read_bytes() == b""


async def test_an_interrupted_run_keeps_what_was_not_delivered(tmp_path, capsys):
    dead = tmp_path / "dead.jsonl"
    async with Receiver() as server:
        cfg = write_config(tmp_path, server.url)
        await make_dead_letters(cfg, dead, [act(i) for i in range(6)])
        server.up, server.requests, server.hang_at = True, 0, 2  # the second batch hangs
        task = asyncio.create_task(resend(dead, cfg))
        for _ in range(500):
            if server.requests == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()  # as Ctrl-C or SIGTERM does
        assert await task == 130
        assert server.received == [act(0).to_dict(), act(1).to_dict()]
        assert [r["action"]["ts"] for r in records(dead)] == [1002, 1003, 1004, 1005]
        assert not (tmp_path / "dead.jsonl.resend").exists()
        assert "interrupted; what was not sent is still in" in capsys.readouterr().err
        server.hang_at = None
        assert await resend(dead, cfg) == 0
    assert server.received == [act(i).to_dict() for i in range(6)]
