"""The integrations' config: passwords from the environment and never shown, problems as
file:line:col, what `livebot run` refuses; and the shared sink's cap and pacing."""

from __future__ import annotations

import json

import pytest

from bot.actions.model import Action
from bot.config import ConfigError, check_for_run, load_config
from bot.integrations import build_integrations
from bot.integrations.base import IntegrationSink


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_passwords_come_from_the_environment_and_are_never_shown(tmp_path):
    path = write(tmp_path, """integrations:
  obs: {enabled: true, password: in-the-file}
  rcon: {enabled: true, allow: [say, "/Summon"]}
  mqtt: {enabled: true, username: lights}
""")
    cfg = load_config(path, env={"LIVEBOT_OBS_PASSWORD": "env-obs", "LIVEBOT_RCON_PASSWORD": "env-rcon",
                                 "LIVEBOT_MQTT_PASSWORD": "env-mqtt"})
    ic = cfg.integrations
    assert (ic.obs.password, ic.rcon.password, ic.mqtt.password) == ("in-the-file", "env-rcon", "env-mqtt")
    assert ic.rcon.allow == ["say", "summon"]
    shown = json.dumps(cfg.redacted())
    assert "in-the-file" not in shown and "env-rcon" not in shown and "env-mqtt" not in shown
    sinks = build_integrations(cfg)
    assert [s.name for s in sinks] == ["obs", "rcon", "mqtt"]
    assert not any(secret in repr(s) for s in sinks for secret in ("in-the-file", "env-rcon", "env-mqtt"))


def test_bad_values_are_reported_with_their_place(tmp_path):
    path = write(tmp_path, """integrations:
  obs: {enabled: true, url: "http://127.0.0.1:4455"}
  rcon:
    allow: "summon"
    port: 99999
  mqtt: {qos: 3, max_per_minute: 0}
  kodi: {}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.problems
    assert any(p.startswith(f"{path}:2:") and "ws://" in p for p in problems)
    assert any(p.startswith(f"{path}:4:12:") and "list of command names" in p for p in problems)
    assert any(p.startswith(f"{path}:5:11:") and "port" in p for p in problems)
    assert any("'qos' must be 0, 1 or 2" in p for p in problems)
    assert any("'max_per_minute' must be a whole number of at least 1" in p for p in problems)
    assert any(p.startswith(f"{path}:7:3:") and "unknown key 'integrations.kodi'" in p for p in problems)


def test_a_prefix_no_topic_can_take_and_a_zero_timeout_are_reported_with_their_place(tmp_path):
    path = write(tmp_path, """integrations:
  mqtt: {topic_prefix: "lights/#"}
  obs: {timeout: 0s}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [
        f"{path}:2:24: 'topic_prefix' must be the start of a topic: no +, # or NUL",
        f"{path}:3:18: 'timeout' must be a duration longer than 0, such as 5s"]


def test_run_refuses_an_empty_allow_list_and_a_webhook_named_like_an_integration(tmp_path):
    cfg = load_config(write(tmp_path, "source: {type: websocket}\nsinks: {overlay: {enabled: false}}\n"
                                      "integrations: {rcon: {enabled: true}}\n"))
    assert "integrations.rcon.allow' is empty" in check_for_run(cfg, "c.yaml:1:1")[0]
    cfg = load_config(write(tmp_path, "source: {type: websocket}\nsinks:\n  overlay: {enabled: false}\n"
                                      "  webhooks: [{url: 'http://x/', name: obs}]\n"
                                      "integrations: {obs: {enabled: true}}\n"))
    assert "webhook named 'obs'" in check_for_run(cfg, "c.yaml:1:1")[0]


class Counting(IntegrationSink):
    name = "counting"
    kinds = frozenset({"thing"})

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.done: list[str] = []

    @property
    def where(self) -> str:
        return "here"

    async def _connect(self) -> None:
        pass

    async def _disconnect(self) -> None:
        pass

    async def _perform(self, action: Action) -> None:
        self.done.append(action.text)


async def test_actions_over_the_cap_are_refused_and_counted_until_the_minute_is_over():
    from bot.integrations.base import OverCap

    now = [0.0]
    sink = Counting(max_per_minute=2, clock=lambda: now[0], min_gap_s=1.5)
    assert sink.pacing is not None and sink.pacing.min_gap == 1.5 and sink.max_batch == 1
    for i in range(4):
        if i < 2:
            await sink.send([Action(ts=i, kind="thing", text=f"t{i}", rule="r")])
        else:
            with pytest.raises(OverCap, match="max_per_minute 2"):
                await sink.send([Action(ts=i, kind="thing", text=f"t{i}", rule="r")])
    assert sink.done == ["t0", "t1"] and sink.counters["over_cap"] == 2 and sink.counters["refused"] == 0
    now[0] = 61
    await sink.send([Action(ts=9, kind="thing", text="t9", rule="r")])
    assert sink.done == ["t0", "t1", "t9"]
    assert Counting().pacing is None  # min_gap 0: not paced


async def test_an_action_over_the_cap_is_dead_lettered_not_journaled_as_delivered(tmp_path):
    import orjson

    from bot.actions.dispatcher import LiveDispatcher
    from bot.actions.journal import DeliveryJournal

    sink = Counting(max_per_minute=1)
    dead = tmp_path / "dead.jsonl"
    d = LiveDispatcher([sink], dead_letter=dead, journal=DeliveryJournal(tmp_path / "journal"))
    one, two = (Action(ts=i, kind="thing", text=f"t{i}", rule="r", event_id=f"e{i}") for i in (1, 2))
    await d.dispatch([one, two])
    await d.close()
    assert sink.done == ["t1"] and d.stats["counting"].sent == 1
    [line] = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert line["action"]["text"] == "t2" and line["reason"] == "permanent" and "max_per_minute" in line["error"]


async def test_rcon_without_its_optional_package_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util
    import sys

    from bot.actions.delivery import PermanentSinkError
    from bot.integrations.rcon import RconSink

    monkeypatch.setitem(sys.modules, "rcon.source.proto", None)  # as if `livebot[rcon]` were not installed
    sink = RconSink("127.0.0.1", 9, "pw", allow=["say"], timeout_s=1)
    with pytest.raises(PermanentSinkError, match=r"pip install 'livebot\[rcon\]'"):
        await sink.send([Action(ts=0, kind="rcon", text="say hi", rule="r")])
    probe = await RconSink("127.0.0.1", 9, "pw", allow=["say"], timeout_s=1).probe()
    assert not probe.ok and "livebot[rcon]" in (probe.error or "")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rcon" else real(name, *a))
    cfg = load_config(write(tmp_path, "source: {type: websocket}\nsinks: {overlay: {enabled: false}}\n"
                                      "integrations: {rcon: {enabled: true, allow: [say]}}\n"))
    assert "livebot[rcon]" in check_for_run(cfg, "c.yaml:1:1")[0]


def test_the_minute_cap_is_a_sliding_window():
    from bot.sinks.cap import MinuteCap

    now = [0.0]
    cap = MinuteCap(2, clock=lambda: now[0])
    assert cap.allowed()
    cap.took()
    now[0] = 30
    cap.took()
    assert not cap.allowed()
    now[0] = 60  # the first is a minute old: room for one
    assert cap.allowed()
    cap.took()
    assert not cap.allowed()
