"""A local obs-websocket v5 server for tests, written from obs-websocket's protocol document
(docs/generated/protocol.md): what OBS Studio 28+ speaks on port 4455.

- Subprotocols ``obswebsocket.json`` (text frames) and ``obswebsocket.msgpack`` (binary frames).
- Hello (op 0) ``{obsWebSocketVersion, rpcVersion: 1, authentication?: {challenge, salt}}``; the
  client answers Identify (op 1) ``{rpcVersion, authentication?, eventSubscriptions?}``, whose
  ``authentication`` must be base64(sha256(base64(sha256(password + salt)) + challenge)); a wrong
  one closes the connection with 4009 (AuthenticationFailed); anything but Identify first closes
  it with 4007 (NotIdentified). Then Identified (op 2) ``{negotiatedRpcVersion}``.
- Request (op 6) ``{requestType, requestId, requestData?}`` → RequestResponse (op 7)
  ``{requestType, requestId, requestStatus: {result, code, comment?}, responseData?}``; codes used:
  100 Success, 204 UnknownRequestType, 300 MissingRequestField, 400 InvalidRequestField,
  600 ResourceNotFound.
- Requests served: GetVersion, GetSceneList, GetCurrentProgramScene, SetCurrentProgramScene,
  GetInputList, GetSceneItemList, GetSceneItemId, SetSceneItemEnabled, SetInputSettings,
  TriggerMediaInputAction. Any other type answers 204.

``requests`` keeps every request received (for assertions); ``hang`` makes it stop answering.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets

import msgpack
import websockets

SUCCESS, UNKNOWN_REQUEST_TYPE, MISSING_REQUEST_FIELD, INVALID_REQUEST_FIELD, RESOURCE_NOT_FOUND = 100, 204, 300, 400, 600
NOT_IDENTIFIED, AUTHENTICATION_FAILED = 4007, 4009
MEDIA_ACTIONS = {f"OBS_WEBSOCKET_MEDIA_INPUT_ACTION_{a}" for a in ("NONE", "PLAY", "PAUSE", "STOP", "RESTART",
                                                                    "NEXT", "PREVIOUS")}


def auth_string(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


class Failed(Exception):
    def __init__(self, code: int, comment: str) -> None:
        self.code, self.comment = code, comment


class ObsServer:
    def __init__(self, password: str | None = None, scenes: dict[str, list[str]] | None = None,
                 inputs: dict[str, str] | None = None) -> None:
        self.password = password
        scenes = scenes or {"Main": ["Camera", "Confetti", "Last Gift"], "Gift Cam": ["Camera", "Airhorn"]}
        self.items = {scene: [{"sourceName": s, "sceneItemId": i + 1, "sceneItemEnabled": False}
                              for i, s in enumerate(sources)] for scene, sources in scenes.items()}
        self.inputs: dict[str, dict] = {name: {"kind": kind, "settings": {}} for name, kind in (inputs or {
            "Camera": "v4l2_input", "Confetti": "ffmpeg_source", "Airhorn": "ffmpeg_source",
            "Last Gift": "text_ft2_source_v2"}).items()}
        self.program = next(iter(self.items))
        self.requests: list[tuple[str, dict]] = []
        self.media: list[tuple[str, str]] = []
        self.identified = 0
        self.refused = 0
        self.hang = False
        self.changed = asyncio.Event()
        self.connections: set = set()

    async def __aenter__(self) -> ObsServer:
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0,
                                             subprotocols=["obswebsocket.json", "obswebsocket.msgpack"])
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def drop_all(self) -> None:
        """Close every connection (OBS restarting, as a client sees it)."""
        for ws in list(self.connections):
            await ws.close(1001, "Going away")

    async def handler(self, ws) -> None:
        self.connections.add(ws)
        packed = ws.subprotocol == "obswebsocket.msgpack"

        async def send(op: int, d: dict) -> None:
            msg = {"op": op, "d": d}
            await ws.send(msgpack.packb(msg) if packed else json.dumps(msg))

        def decode(raw):
            return msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)

        hello: dict = {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1}
        salt = challenge = ""
        if self.password is not None:
            salt, challenge = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            hello["authentication"] = {"challenge": challenge, "salt": salt}
        await send(0, hello)
        try:
            first = decode(await ws.recv())
            if first.get("op") != 1:
                await ws.close(NOT_IDENTIFIED, "Not identified.")
                return
            if self.password is not None and first["d"].get("authentication") != auth_string(self.password, salt, challenge):
                self.refused += 1
                await ws.close(AUTHENTICATION_FAILED, "Authentication failed.")
                return
            self.identified += 1
            await send(2, {"negotiatedRpcVersion": 1})
            async for raw in ws:
                msg = decode(raw)
                if msg.get("op") != 6:
                    continue
                d = msg["d"]
                self.requests.append((d["requestType"], d.get("requestData") or {}))
                if self.hang:
                    continue
                status, data = {"result": True, "code": SUCCESS}, None
                try:
                    data = self.serve(d["requestType"], d.get("requestData") or {})
                except Failed as exc:
                    status = {"result": False, "code": exc.code, "comment": exc.comment}
                reply = {"requestType": d["requestType"], "requestId": d["requestId"], "requestStatus": status}
                if data is not None:
                    reply["responseData"] = data
                await send(7, reply)
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.connections.discard(ws)

    # -- requests --------------------------------------------------------------------------------

    def _field(self, data: dict, key: str, kind: type = str):
        if key not in data:
            raise Failed(MISSING_REQUEST_FIELD, f"Your request is missing the `{key}` field.")
        if not isinstance(data[key], kind):
            raise Failed(INVALID_REQUEST_FIELD, f"The field `{key}` has the wrong type.")
        return data[key]

    def _scene(self, data: dict) -> list[dict]:
        name = self._field(data, "sceneName")
        if name not in self.items:
            raise Failed(RESOURCE_NOT_FOUND, f"No source was found by the name of `{name}`.")
        return self.items[name]

    def _input(self, data: dict) -> dict:
        name = self._field(data, "inputName")
        if name not in self.inputs:
            raise Failed(RESOURCE_NOT_FOUND, f"No source was found by the name of `{name}`.")
        return self.inputs[name]

    def serve(self, kind: str, data: dict) -> dict | None:
        if kind == "GetVersion":
            return {"obsVersion": "30.2.0", "obsWebSocketVersion": "5.5.0", "rpcVersion": 1,
                    "availableRequests": [], "supportedImageFormats": [], "platform": "test"}
        if kind == "GetSceneList":  # OBS lists them bottom to top
            return {"currentProgramSceneName": self.program, "currentPreviewSceneName": None,
                    "scenes": [{"sceneName": n, "sceneIndex": i} for i, n in reversed(list(enumerate(self.items)))]}
        if kind == "GetCurrentProgramScene":
            return {"currentProgramSceneName": self.program, "sceneName": self.program}
        if kind == "SetCurrentProgramScene":
            self._scene(data)
            self.program = data["sceneName"]
            return None
        if kind == "GetInputList":
            return {"inputs": [{"inputName": n, "inputKind": v["kind"]} for n, v in self.inputs.items()]}
        if kind == "GetSceneItemList":
            return {"sceneItems": [dict(i) for i in self._scene(data)]}
        if kind == "GetSceneItemId":
            items = self._scene(data)
            source = self._field(data, "sourceName")
            for item in items:
                if item["sourceName"] == source:
                    return {"sceneItemId": item["sceneItemId"]}
            raise Failed(RESOURCE_NOT_FOUND, "No scene items were found in the specified scene by that name.")
        if kind == "SetSceneItemEnabled":
            items = self._scene(data)
            item_id = self._field(data, "sceneItemId", int)
            enabled = self._field(data, "sceneItemEnabled", bool)
            for item in items:
                if item["sceneItemId"] == item_id:
                    item["sceneItemEnabled"] = enabled
                    return None
            raise Failed(RESOURCE_NOT_FOUND, "No scene item was found by that id.")
        if kind == "SetInputSettings":
            entry = self._input(data)
            settings = self._field(data, "inputSettings", dict)
            entry["settings"] = {**entry["settings"], **settings} if data.get("overlay", True) else dict(settings)
            return None
        if kind == "TriggerMediaInputAction":
            self._input(data)
            action = self._field(data, "mediaAction")
            if action not in MEDIA_ACTIONS:
                raise Failed(INVALID_REQUEST_FIELD, "You have specified an invalid media input action.")
            self.media.append((data["inputName"], action))
            return None
        raise Failed(UNKNOWN_REQUEST_TYPE, f"Your request type is not valid: {kind}")

    def enabled(self, scene: str, source: str) -> bool:
        return next(i["sceneItemEnabled"] for i in self.items[scene] if i["sourceName"] == source)
