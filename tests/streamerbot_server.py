"""A local Streamer.bot WebSocket server for tests, after Streamer.bot's documented requests
(docs.streamer.bot/api/websocket: the guide's authentication steps and the requests reference).

- On connect: ``{"timestamp", "session", "request": "Hello", "info": {...}}``, with
  ``"authentication": {"salt", "challenge"}`` when a password is set.
- ``{"request": "Authenticate", "id", "authentication"}``: ``{"status": "ok", "id"}`` when it is
  base64(sha256(base64(sha256(password + salt)) + challenge)); otherwise
  ``{"status": "error", "error": ..., "id"}`` and the connection is closed (with ``silent_refusal``,
  closed without an answer: the guide does not say which a server does, so a client must take both).
- With a password, any other request before authenticating answers status ``error``.
- ``GetActions``: ``{"actions": [{"enabled", "group", "id", "name", "subaction_count"}], "count",
  "status": "ok", "id"}``. ``DoAction`` ``{"action": {"id"|"name"}, "args"}``: ``{"status": "ok", "id"}``,
  or status ``error`` for an action it does not have. Anything else: status ``error``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import uuid

import websockets


def auth_string(password: str, salt: str, challenge: str) -> str:
    """The guide's steps: sha256(password + salt) in base64, then sha256 of that + challenge, base64."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()
    return base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()


class StreamerbotServer:
    def __init__(self, password: str | None = None, actions: list[str] | None = None) -> None:
        self.password = password
        self.actions = {name: str(uuid.uuid4()) for name in (actions or ["Lion Roar", "Confetti Cannon"])}
        self.done: list[tuple[str, dict]] = []  # (action name, args) of each DoAction run
        self.refused = 0
        self.silent_refusal = False
        self.changed = asyncio.Event()

    async def __aenter__(self) -> StreamerbotServer:
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def handler(self, ws) -> None:
        hello = {"timestamp": "2026-12-04T19:00:00Z", "session": str(uuid.uuid4()), "request": "Hello",
                 "info": {"instanceId": "test", "name": "Streamer.bot", "version": "0.2.6", "os": "windows",
                          "osVersion": "10", "mode": "ui", "darkMode": True, "source": "websocketServer"}}
        salt = challenge = ""
        if self.password is not None:
            salt, challenge = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            hello["authentication"] = {"salt": salt, "challenge": challenge}
        authenticated = self.password is None
        await ws.send(json.dumps(hello))
        try:
            async for raw in ws:
                msg = json.loads(raw)
                ident, request = msg.get("id"), msg.get("request")
                if request == "Authenticate":
                    if self.password is not None and msg.get("authentication") == auth_string(self.password, salt, challenge):
                        authenticated = True
                        await ws.send(json.dumps({"status": "ok", "id": ident}))
                        continue
                    self.refused += 1
                    if not self.silent_refusal:
                        await ws.send(json.dumps({"status": "error", "error": "Authentication failed", "id": ident}))
                    await ws.close()
                    return
                if not authenticated:
                    await ws.send(json.dumps({"status": "error", "error": "Not authenticated", "id": ident}))
                elif request == "GetActions":
                    listed = [{"enabled": True, "group": "None", "id": i, "name": n, "subaction_count": 1}
                              for n, i in self.actions.items()]
                    await ws.send(json.dumps({"actions": listed, "count": len(listed), "status": "ok", "id": ident}))
                elif request == "DoAction":
                    which = msg.get("action") or {}
                    name = next((n for n, i in self.actions.items()
                                 if which.get("id") == i or (not which.get("id") and which.get("name") == n)), None)
                    if name is None:
                        await ws.send(json.dumps({"status": "error", "error": "Action not found", "id": ident}))
                        continue
                    self.done.append((name, msg.get("args") or {}))
                    self.changed.set()
                    # an event in between, as a subscribed client may get one
                    await ws.send(json.dumps({"event": {"source": "General", "type": "Custom"}, "data": {}}))
                    await ws.send(json.dumps({"status": "ok", "id": ident}))
                else:
                    await ws.send(json.dumps({"status": "error", "error": f"Unknown request {request}", "id": ident}))
        except websockets.ConnectionClosed:
            pass
