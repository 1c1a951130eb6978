"""The integrations as sinks of the live dispatcher: a hung or dying integration never holds up
the other sinks; what it cannot take is retried, then dead-lettered; what it delivered is
journaled; one that is down at start is a warning with its name, not a crash."""

from __future__ import annotations

import asyncio
import socket

import orjson
from structlog.testing import capture_logs

from bot.actions.dispatcher import LiveDispatcher, RetryPolicy
from bot.actions.journal import DeliveryJournal
from bot.actions.model import Action
from bot.config import load_config
from bot.daemon import build_sinks
from bot.integrations import start_integrations
from bot.integrations.obs import ObsSink
from bot.integrations.rcon import RconSink
from bot.testing import CaptureSink
from obs_server import ObsServer
from rcon_server import RconServer

FAST = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)


def act(i: int, kind: str, text: str = "", **data) -> Action:
    return Action(ts=i, kind=kind, text=text or f"t{i}", rule="r", event_id=f"e{i}", data=data)


async def until(check, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def dead_lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_a_hung_obs_never_holds_up_the_other_sinks(tmp_path):
    async with ObsServer() as obs:
        sink = ObsSink(obs.url, timeout_s=600)  # a request OBS never answers stays in flight the whole test
        await sink.connect()
        obs.hang = True  # OBS stops answering mid-stream
        capture = CaptureSink()
        dead = tmp_path / "dead.jsonl"
        d = LiveDispatcher([sink, capture], dead_letter=dead, retry=FAST)
        actions = [act(i, "obs_scene", scene="Gift Cam") if i % 2 else act(i, "say") for i in range(20)]
        await d.dispatch(actions)
        await until(lambda: len(capture.actions) == 20 and len(obs.requests) == 1)
        # every other action went out while OBS still holds the first request: nothing waited on it
        assert d.stats["obs"].sent == 0 and d.stats["obs"].dead_lettered == 0 and len(obs.requests) == 1
        await d.close(timeout=0.2)  # the hung one and the rest: dead-lettered, not lost
        kept = [line for line in dead_lines(dead) if line["sink"] == "obs"]
        assert len(kept) == 10 and {line["action"]["kind"] for line in kept} == {"obs_scene"}
        assert not any(line["sink"] == capture.name for line in dead_lines(dead))


async def test_commands_are_journaled_and_refused_ones_dead_lettered_at_once(tmp_path):
    async with RconServer(password="pw") as mc:
        sink = RconSink("127.0.0.1", mc.port, "pw", allow=["summon"], timeout_s=5)
        dead = tmp_path / "dead.jsonl"
        journal = DeliveryJournal(tmp_path / "journal")
        d = LiveDispatcher([sink], dead_letter=dead, retry=FAST, journal=journal)
        await d.dispatch([act(1, "rcon", "summon minecraft:creeper ~ ~ ~"), act(2, "rcon", "op ana"),
                          act(3, "say")])
        await until(lambda: d.stats["rcon"].sent + d.stats["rcon"].dead_lettered == 2)
        await d.close()
        assert mc.commands == ["summon minecraft:creeper ~ ~ ~"]
        [line] = dead_lines(dead)
        assert line["reason"] == "permanent" and line["attempts"] == 1 and "'op' is not in" in line["error"]
        again = DeliveryJournal(tmp_path / "journal")
        assert again.already_delivered("rcon", act(1, "rcon", "summon minecraft:creeper ~ ~ ~"))
        assert again.already_delivered("rcon", act(2, "rcon", "op ana"))  # settled: in the dead letters


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_integrations_down_at_start_are_warnings_with_their_names(tmp_path):
    cfg_file = tmp_path / "config.yaml"
    port = _closed_port()
    cfg_file.write_text(f"""sinks: {{console: false}}
integrations:
  obs: {{enabled: true, url: "ws://127.0.0.1:{port}"}}
  streamerbot: {{enabled: true, url: "ws://127.0.0.1:{port}/"}}
  rcon: {{enabled: true, port: {port}, password: x, allow: [say]}}
  mqtt: {{enabled: true, port: {port}}}
""")
    sinks = build_sinks(load_config(cfg_file, env={}))
    assert [s.name for s in sinks] == ["obs", "streamerbot", "rcon", "mqtt"]
    with capture_logs() as logs:
        await start_integrations(sinks)
    warned = {entry["sink"] for entry in logs if entry["event"] == "integration_not_ready"}
    assert warned == {"obs", "streamerbot", "rcon", "mqtt"}
    capture = CaptureSink()
    d = LiveDispatcher([*sinks, capture], retry=FAST)
    await d.dispatch([act(1, "say"), act(2, "obs_scene", scene="Main"), act(3, "mqtt", topic="x")])
    await until(lambda: len(capture.actions) == 3)
    await d.close(timeout=1)
    for s in sinks:
        await s.close()


async def test_resend_sends_an_integrations_dead_letters_once_it_is_back(tmp_path, capsys):
    from bot.actions.resend import Resend

    dead = tmp_path / "dead.jsonl"
    record = {"at": 0, "sink": "rcon", "reason": "failed", "error": "IntegrationDown: cannot connect", "attempts": 5,
              "action": act(1, "rcon", "summon minecraft:creeper ~ ~ ~").to_dict()}
    dead.write_bytes(orjson.dumps(record) + b"\n")
    async with RconServer(password="pw") as mc:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"sinks: {{console: false}}\nintegrations:\n  rcon: {{enabled: true, port: {mc.port}, "
                       "password: pw, allow: [summon]}\n")

        async def no_wait(seconds: float) -> None:
            return None

        code = await Resend(dead, load_config(cfg, env={}), config_name=str(cfg), sleep=no_wait).run()
        assert code == 0, capsys.readouterr()
        assert mc.commands == ["summon minecraft:creeper ~ ~ ~"]
    assert dead.read_bytes() == b""


async def test_metrics_show_each_integrations_cap_and_connection(tmp_path):
    from bot.clock import VirtualClock
    from bot.control.metrics import registry_for, render
    from bot.engine.core import Engine
    from bot.live import LiveRunner
    from bot.testing import ruleset

    class Quiet:
        name = "quiet"

        async def run(self, queue, clock, stop):
            return None

    async with RconServer(password="pw") as mc:
        sink = RconSink("127.0.0.1", mc.port, "pw", allow=["say"], timeout_s=5, max_per_minute=1)
        d = LiveDispatcher([sink], retry=FAST)
        runner = LiveRunner([Quiet()], Engine(ruleset("rules: []\n")), d, clock=VirtualClock(1_000))
        await d.dispatch([act(1, "rcon", "say a"), act(2, "rcon", "say b"), act(3, "rcon", "op me")])
        await until(lambda: d.stats["rcon"].sent + d.stats["rcon"].dead_lettered == 3)
        text = render(registry_for(runner)).decode()
        assert 'livebot_integration_over_cap_total{sink="rcon"} 1.0' in text
        assert 'livebot_integration_refused_total{sink="rcon"} 1.0' in text
        assert 'livebot_integration_connected{sink="rcon"} 1.0' in text
        await d.close()
    assert mc.commands == ["say a"]
