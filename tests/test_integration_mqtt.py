"""MQTT: actions published to a REAL Mosquitto broker the test starts (tests/mqtt_server.py), read
back by a subscriber; a login the broker refuses; a broker that is down."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from bot.actions.model import Action
from bot.integrations.base import AuthFailed, IntegrationDown, IntegrationRefused
from bot.integrations.mqtt import MqttSink
from mqtt_server import _free_port, mosquitto


def act(text: str = "", **data) -> Action:
    return Action(ts=0, kind="mqtt", text=text, rule="follow-lights", user="u1", data=data)


async def test_actions_are_published_to_the_broker_under_the_prefix(tmp_path):
    with mosquitto(tmp_path, users={"bot": "pw"}) as port:
        async with aiomqtt.Client("127.0.0.1", port, username="bot", password="pw") as sub:
            await sub.subscribe("livebot/#", qos=1)
            sink = MqttSink("127.0.0.1", port, username="bot", password="pw", timeout_s=10)
            await sink.send([act(topic="lights/flash", payload={"effect": "blink", "color": "purple"})])
            await sink.send([act("ana followed", topic="lights/text")])
            got = []
            async with asyncio.timeout(30):
                async for message in sub.messages:
                    got.append((str(message.topic), message.payload))
                    if len(got) == 2:
                        break
            assert got[0] == ("livebot/lights/flash", json.dumps({"effect": "blink", "color": "purple"}).encode())
            assert got[1] == ("livebot/lights/text", b"ana followed")
            assert sink.counters["connects"] == 1
            await sink.close()


async def test_a_login_the_broker_refuses_is_permanent(tmp_path):
    with mosquitto(tmp_path, users={"bot": "pw"}) as port:
        with pytest.raises(AuthFailed, match="refused the login"):
            await MqttSink("127.0.0.1", port, username="bot", password="nope", timeout_s=10).send(
                [act(topic="lights/flash")])
        probe = await MqttSink("127.0.0.1", port, username="bot", password="nope", timeout_s=10).probe()
        assert probe.reachable and not probe.authenticated


async def test_bad_topics_are_refused_and_a_down_broker_is_retried():
    sink = MqttSink("127.0.0.1", _free_port(), timeout_s=5)
    with pytest.raises(IntegrationRefused, match="no \\+ or #"):
        await sink.send([act(topic="lights/#")])
    with pytest.raises(IntegrationRefused, match="needs data.topic"):
        await sink.send([act()])
    with pytest.raises(IntegrationDown, match="cannot connect"):
        await sink.send([act(topic="lights/flash")])


async def test_a_broker_restarted_mid_stream_is_connected_to_again_at_once(tmp_path):
    port = _free_port()
    sink = MqttSink("127.0.0.1", port, timeout_s=10)
    with mosquitto(tmp_path, port=port):
        await sink.send([act(topic="lights/flash")])
    async with asyncio.timeout(30):  # the broker went away: the sink sees its connection closed
        while sink._alive():
            await asyncio.sleep(0.005)
    with mosquitto(tmp_path, port=port):  # back: the next action opens a new connection, no failed try first
        await sink.send([act(topic="lights/flash")])
        assert sink.counters["sent"] == 2 and sink.counters["connects"] == 2
    await sink.close()
