"""MQTT, for smart lights and other devices: publish to topics on a broker (Mosquitto, Home
Assistant's, Zigbee2MQTT's...).

Client library: ``aiomqtt``, the asyncio wrapper of Eclipse ``paho-mqtt``: paho is the reference
MQTT client (3.1.1 and 5, kept by the Eclipse Foundation) but callback-and-thread driven; aiomqtt
gives it ``async with`` / ``await publish`` on our event loop, with paho's protocol code
underneath, so choosing it also means paho. One connection is kept and opened again with backoff.

Rule kind ``mqtt``: ``data: {topic, payload?, retain?}``. The topic is appended to
``integrations.mqtt.topic_prefix`` (``livebot/`` by default; set ``""`` to publish anywhere) and
may not hold the wildcards ``+`` or ``#``. The payload: ``data.payload`` (a mapping or list is
sent as JSON, anything else as text), else the action's text. Published with the configured QoS
(1 by default: the broker acknowledges each message).
"""

from __future__ import annotations

import json
from typing import Any

from bot.actions.model import Action
from bot.integrations.base import AuthFailed, IntegrationDown, IntegrationRefused, IntegrationSink, Probe

MQTT_KINDS = frozenset({"mqtt"})
NOT_AUTHORIZED = frozenset({4, 5, 134, 135})  # CONNACK: bad user name or password, not authorized (3.1.1 and 5)


class MqttSink(IntegrationSink):
    name = "mqtt"
    kinds = MQTT_KINDS

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, username: str | None = None,
                 password: str | None = None, topic_prefix: str = "livebot/", qos: int = 1, **options: Any) -> None:
        super().__init__(**options)
        self.host, self.port = host, port
        self.username = username
        self._password = password
        self.topic_prefix = topic_prefix
        self.qos = qos
        self._client: Any = None

    @property
    def where(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def topic(self, action: Action) -> str:
        topic = self.topic_prefix + str(action.data.get("topic") or "").strip()
        if not topic or topic == self.topic_prefix:
            raise IntegrationRefused("mqtt needs data.topic")
        if any(c in topic for c in "+#\x00") or len(topic.encode("utf-8")) > 65535:
            raise IntegrationRefused(f"mqtt: {topic!r} is not a topic one can publish to (no + or #)")
        return topic

    @staticmethod
    def payload(action: Action) -> bytes:
        value = action.data.get("payload", action.text)
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False).encode("utf-8")
        return ("" if value is None else str(value)).encode("utf-8")

    def check_action(self, action: Action) -> None:
        self.topic(action)

    async def _connect(self) -> None:
        import aiomqtt

        client = aiomqtt.Client(self.host, self.port, username=self.username, password=self._password,
                                timeout=self.timeout)
        self._client = client
        try:
            await client.__aenter__()
        except aiomqtt.MqttCodeError as exc:
            self._client = None
            try:
                code = int(exc.rc.value if hasattr(exc.rc, "value") else exc.rc)  # type: ignore[union-attr]
            except (TypeError, ValueError):
                code = -1
            if code in NOT_AUTHORIZED:
                raise AuthFailed(f"the MQTT broker refused the login (code {code})") from None
            raise IntegrationDown(f"the MQTT broker refused the connection (code {code})") from None
        except aiomqtt.MqttError as exc:
            self._client = None
            raise IntegrationDown(f"cannot connect to the MQTT broker ({exc})") from None

    def _alive(self) -> bool:
        """False once aiomqtt has seen the connection end (its ``_disconnected`` future is done)."""
        if self._client is None:
            return False
        ended = getattr(self._client, "_disconnected", None)
        return not (ended is not None and ended.done())

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    async def _perform(self, action: Action) -> None:
        if self._client is None:
            raise IntegrationDown("not connected")
        await self._client.publish(self.topic(action), self.payload(action), qos=self.qos,
                                   retain=action.data.get("retain") is True, timeout=self.timeout)

    async def _look(self, probe: Probe) -> None:
        probe.notes.append(f"topics under {self.topic_prefix!r}" if self.topic_prefix else "any topic")
