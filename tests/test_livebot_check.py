"""``livebot check -c config.yaml``: every sink and integration connected to once, with what each
saw, and the rules checked against it (a scene, source, action or command that does not exist is
reported as file:line:col before the stream). Run as the real command against local servers."""

from __future__ import annotations

import asyncio
import os
import sys

from mqtt_server import mosquitto
from obs_server import ObsServer
from rcon_server import RconServer
from streamerbot_server import StreamerbotServer

RULES = """rules:
  - id: gift-scene
    on: gift
    do:
      - kind: obs_scene
        data: { scene: "Gift Cam" }
      - kind: obs_scene
        data: { scene: "Gift Cmа" }
      - kind: obs_source
        data: { scene: Main, source: Airhorn }
      - kind: obs_text
        text: "{{ user.nickname }}"
        data: { source: "Last Gift" }
  - id: lion
    on: gift
    do:
      - kind: streamerbot
        data: { action: "Lion Roar" }
      - kind: streamerbot
        data: { action: "Lion Rawr" }
  - id: creeper
    on: gift
    do:
      - kind: rcon
        text: "summon minecraft:creeper ~ ~ ~"
      - kind: rcon
        text: "execute at @r run kill {{ user.nickname | rcon_quote }}"
  - id: lights
    on: follow
    do:
      - kind: mqtt
        data: { topic: lights/flash }
"""


async def livebot(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *args, env={**os.environ, **env},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_check_reports_each_integration_and_each_rule_naming_what_is_not_there(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "tools.yaml").write_text(RULES)
    with mosquitto(tmp_path) as mqtt_port:
        async with ObsServer(password="obs-pw") as obs, StreamerbotServer(password="sb-pw") as sb, \
                RconServer(password="mc-pw") as mc:
            cfg = tmp_path / "config.yaml"
            cfg.write_text(f"""rules: rules
sinks:
  console: false
  jsonl: out/actions.jsonl
integrations:
  obs: {{enabled: true, url: "{obs.url}"}}
  streamerbot: {{enabled: true, url: "{sb.url}"}}
  rcon: {{enabled: true, port: {mc.port}, allow: [summon, execute]}}
  mqtt: {{enabled: true, port: {mqtt_port}}}
""")
            env = {"LIVEBOT_OBS_PASSWORD": "obs-pw", "LIVEBOT_STREAMERBOT_PASSWORD": "sb-pw",
                   "LIVEBOT_RCON_PASSWORD": "mc-pw"}
            code, out, err = await livebot("check", "-c", str(cfg), env=env)
    assert code == 1, (out, err)
    lines = out.splitlines()
    assert "jsonl (" in out and "NOT writable: its folder" in out  # out/ does not exist
    assert any(line.startswith("obs (ws://127.0.0.1:") and line.endswith("reachable, authenticated") for line in lines)
    assert "  scenes: 'Gift Cam', 'Main'" in lines
    assert "  actions: 'Lion Roar', 'Confetti Cannon'" in lines
    assert any(line.startswith("streamerbot (") and "authenticated" in line for line in lines)
    assert any(line.startswith("rcon (rcon://127.0.0.1:") and line.endswith("reachable, authenticated") for line in lines)
    assert any(line.startswith("mqtt (mqtt://127.0.0.1:") and line.endswith("reachable, authenticated") for line in lines)
    rules = str(tmp_path / "rules" / "tools.yaml")
    problems = [line for line in lines if line.startswith(rules)]
    assert problems == [
        f"{rules}:7:9: rule gift-scene: OBS has no scene 'Gift Cmа' (scenes: 'Gift Cam', 'Main')",
        f"{rules}:9:9: rule gift-scene: OBS has no source 'Airhorn' in scene 'Main' "
        "(sources: 'Camera', 'Confetti', 'Last Gift')",
        f"{rules}:19:9: rule lion: Streamer.bot has no action 'Lion Rawr' (actions: 'Lion Roar', 'Confetti Cannon')",
        f"{rules}:26:9: rule creeper: rcon command 'kill' is not in integrations.rcon.allow",
    ]
    assert "obs-pw" not in out + err and "sb-pw" not in out + err and "mc-pw" not in out + err
    assert lines[-1] == "4 rule(s) checked; 5 problem(s)"


async def test_check_says_which_integration_is_down_or_refuses_the_password(tmp_path):
    async with ObsServer(password="right") as obs:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"""sinks: {{console: false}}
integrations:
  obs: {{enabled: true, url: "{obs.url}", password: wrong}}
  streamerbot: {{enabled: true, url: "ws://127.0.0.1:9/"}}
""")
        (tmp_path / "rules.yaml").write_text("rules:\n  - id: a\n    on: gift\n    do:\n      - kind: mqtt\n"
                                             "        data: {topic: x}\n")
        code, out, err = await livebot("check", "-c", str(cfg), "--rules", str(tmp_path / "rules.yaml"), env={})
    assert code == 1, (out, err)
    assert "obs (ws://127.0.0.1:" in out and "NOT authenticated: OBS refused the password (close code 4009)" in out
    assert "streamerbot (ws://127.0.0.1:9): NOT reachable: cannot connect" in out
    assert "rule a: 'mqtt' actions go to integrations.mqtt, which is not enabled" in out
    assert "wrong" not in out + err


async def test_an_integration_that_connects_but_cannot_be_looked_at_is_said_plainly(tmp_path):
    from bot.config import load_config
    from bot.integrations.check import check_sinks
    from obs_server import Failed

    class NoScenes(ObsServer):
        def serve(self, kind, data):
            if kind == "GetSceneList":
                raise Failed(500, "OBS is busy")
            return super().serve(kind, data)

    async with NoScenes() as obs:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"sinks: {{console: false}}\nintegrations:\n  obs: {{enabled: true, url: '{obs.url}'}}\n")
        lines, probes, problems = await check_sinks(load_config(cfg, env={}))
    assert problems == 1 and not probes["obs"].ok
    [line] = [x for x in lines if x.startswith("obs ")]
    assert line.endswith("reachable, authenticated, but could not list what it has: "
                         "OBS refused GetSceneList (status 500: OBS is busy)"), line


def test_check_names_an_rcon_command_holding_a_separator(tmp_path):
    from bot.config import load_config
    from bot.engine.loader import load_rules_text
    from bot.integrations.check import check_rules

    cfg = tmp_path / "config.yaml"
    cfg.write_text("integrations:\n  rcon: {enabled: true, password: x, allow: [say]}\n")
    rules = load_rules_text("""rules:
  - id: hi
    on: follow
    do:
      - kind: rcon
        text: "say hi; stop"
      - kind: rcon
        text: "say {{ user.nickname | rcon_quote }}"
""", "r.yaml")
    assert check_rules(load_config(cfg, env={}), rules, {}) == [
        "r.yaml:5:9: rule hi: rcon command holds ';': it is refused when it runs (it separates commands in Source games)"]


def test_check_refuses_a_missing_rules_folder_as_run_does(tmp_path, capsys):
    import argparse

    from bot.integrations.check import run_check

    cfg = tmp_path / "config.yaml"
    cfg.write_text("rules: no-such-folder\nsinks: {console: false}\n")
    code = run_check(argparse.Namespace(config=cfg, rules=None))
    out, err = capsys.readouterr()
    assert code == 2 and "no-such-folder" in err and "everything answered" not in out
