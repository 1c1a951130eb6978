"""OBS Studio through obs-websocket v5 (built into OBS 28+), with its v5 authentication.

Client library: ``simpleobsws`` (IRLToolkit). Chosen over ``obsws-python`` because it is asyncio
native (``obsws-python`` is synchronous, on ``websocket-client`` with a reader thread, so every call
would need a worker thread beside our event loop), it is small (two dependencies: ``websockets``,
which livebot already uses, and ``msgpack``) and it speaks the v5 protocol as documented: Hello /
Identify (the base64(sha256(base64(sha256(password + salt)) + challenge)) answer) / Identified,
then Request / RequestResponse with ``requestStatus``. Both are maintained; ``simpleobsws`` is the
one that fits an asyncio bot.

Rule kinds (``- kind: obs_scene`` ...; names in ``data``, templates allowed):

- ``obs_scene``  ``data: {scene}`` (or the text): switch the program scene (``SetCurrentProgramScene``).
- ``obs_source`` ``data: {source, scene?, visible?}``: show (default) or hide a source in a scene
  (the current program scene when none is given): ``GetSceneItemId`` + ``SetSceneItemEnabled``.
- ``obs_text``   ``data: {source}``, the action's text: set a text source's text (``SetInputSettings``),
  filtered as the stream shows it (``bot.integrations.text``: control and bidi characters removed,
  cut at ``MAX_TEXT`` characters).
- ``obs_media``  ``data: {source, media_action?}``: play a media source from the start (``restart``,
  the default), or ``play``/``pause``/``stop`` (``TriggerMediaInputAction``).

A request OBS refuses (an unknown scene or source: status 600) is dead-lettered at once; a wrong
password (OBS closes with 4009) too, and the sink tries to connect again later with backoff.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from bot.actions.model import Action
from bot.integrations.base import AuthFailed, IntegrationDown, IntegrationError, IntegrationRefused, IntegrationSink, Probe
from bot.integrations.text import shown_text

OBS_KINDS = frozenset({"obs_scene", "obs_source", "obs_text", "obs_media"})
MEDIA_ACTIONS = {"play": "OBS_WEBSOCKET_MEDIA_INPUT_ACTION_PLAY", "pause": "OBS_WEBSOCKET_MEDIA_INPUT_ACTION_PAUSE",
                 "stop": "OBS_WEBSOCKET_MEDIA_INPUT_ACTION_STOP",
                 "restart": "OBS_WEBSOCKET_MEDIA_INPUT_ACTION_RESTART"}
AUTHENTICATION_FAILED = 4009  # obs-websocket's WebSocketCloseCode
NOT_READY = 207  # RequestStatus: OBS is starting or shutting down; worth retrying


def _name(action: Action, key: str, *, text_too: bool = False) -> str:
    value = action.data.get(key)
    if value is None and text_too:
        value = action.text
    value = "" if value is None else str(value).strip()
    if not value:
        raise IntegrationRefused(f"{action.kind} needs data.{key}" + (" (or a text)" if text_too else ""))
    return value


def _visible(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "show", "on"):
        return True
    if text in ("false", "no", "0", "hide", "off"):
        return False
    raise IntegrationRefused(f"obs_source: data.visible must be true or false, not {value!r}")


class ObsSink(IntegrationSink):
    name = "obs"
    kinds = OBS_KINDS

    def __init__(self, url: str = "ws://127.0.0.1:4455", password: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self._password = password or ""
        self._client: Any = None

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 4455}"

    def check_action(self, action: Action) -> None:
        if action.kind == "obs_scene":
            _name(action, "scene", text_too=True)
        elif action.kind in ("obs_source", "obs_text", "obs_media"):
            _name(action, "source")
            if action.kind == "obs_source":
                _visible(action.data.get("visible"))
            if action.kind == "obs_media" and str(action.data.get("media_action", "restart")) not in MEDIA_ACTIONS:
                raise IntegrationRefused(f"obs_media: data.media_action must be one of {', '.join(MEDIA_ACTIONS)}")

    async def _connect(self) -> None:
        import simpleobsws

        client = simpleobsws.WebSocketClient(
            url=self.url, password=self._password,
            identification_parameters=simpleobsws.IdentificationParameters(eventSubscriptions=0))  # no events
        self._client = client
        await client.connect()
        identified = asyncio.ensure_future(client.wait_until_identified(timeout=self.timeout))
        try:
            await asyncio.wait({identified, client.recv_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not identified.done():
                identified.cancel()
        if identified.done() and not identified.cancelled() and identified.result():
            return
        code = getattr(client.ws, "close_code", None)
        if code == AUTHENTICATION_FAILED:
            needs = (client.hello_message or {}).get("authentication") is not None
            raise AuthFailed("OBS refused the password (close code 4009)" if self._password or not needs else
                             "OBS needs a password: set integrations.obs.password or LIVEBOT_OBS_PASSWORD")
        raise IntegrationDown(f"OBS did not identify the session (close code {code})")

    def _alive(self) -> bool:
        return self._client is not None and bool(self._client.ws_open)

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.recv_task is not None:
            await client.disconnect()

    async def call(self, request_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request; its ``responseData``. OBS's refusal raises ``IntegrationRefused``."""
        import simpleobsws

        client = self._client
        if client is None or not client.ws_open:
            raise IntegrationDown("not connected")
        response = await client.call(simpleobsws.Request(request_type, data), timeout=self.timeout)
        if not response.ok():
            status = response.requestStatus
            what = f"OBS refused {request_type} (status {status.code}" + (f": {status.comment})" if status.comment else ")")
            if status.code == NOT_READY:
                raise IntegrationError(what)
            raise IntegrationRefused(what)
        return response.responseData or {}

    async def _perform(self, action: Action) -> None:
        kind = action.kind
        if kind == "obs_scene":
            await self.call("SetCurrentProgramScene", {"sceneName": _name(action, "scene", text_too=True)})
        elif kind == "obs_source":
            source = _name(action, "source")
            scene = str(action.data.get("scene") or "").strip()
            if not scene:
                scene = (await self.call("GetCurrentProgramScene")).get("currentProgramSceneName", "")
            item = await self.call("GetSceneItemId", {"sceneName": scene, "sourceName": source})
            await self.call("SetSceneItemEnabled", {"sceneName": scene, "sceneItemId": item.get("sceneItemId"),
                                                    "sceneItemEnabled": _visible(action.data.get("visible"))})
        elif kind == "obs_text":
            await self.call("SetInputSettings", {"inputName": _name(action, "source"),
                                                 "inputSettings": {"text": shown_text(action.text)}, "overlay": True})
        elif kind == "obs_media":
            media = MEDIA_ACTIONS[str(action.data.get("media_action", "restart"))]
            await self.call("TriggerMediaInputAction", {"inputName": _name(action, "source"), "mediaAction": media})

    async def _look(self, probe: Probe) -> None:
        version = await self.call("GetVersion")
        probe.notes.append(f"OBS {version.get('obsVersion', '?')}, obs-websocket {version.get('obsWebSocketVersion', '?')}")
        scenes = [s.get("sceneName", "") for s in (await self.call("GetSceneList")).get("scenes", [])]
        probe.saw["scenes"] = scenes
        probe.saw["inputs"] = [i.get("inputName", "") for i in (await self.call("GetInputList")).get("inputs", [])]
        items: dict[str, list[str]] = {}
        for scene in scenes:
            listed = await self.call("GetSceneItemList", {"sceneName": scene})
            items[scene] = [i.get("sourceName", "") for i in listed.get("sceneItems", [])]
        probe.detail["scene_items"] = items
