"""Streamer.bot: run one of the creator's Streamer.bot actions, by name or id, with arguments,
through its WebSocket server (docs.streamer.bot/api/websocket), so the actions they already have
keep working with livebot's rules.

No client library: the protocol is a few JSON messages and ``websockets`` is already here. On
connect the server sends ``Hello``; with authentication on it carries ``{salt, challenge}``, and
the client answers ``{"request": "Authenticate", "id", "authentication"}`` with
base64(sha256(base64(sha256(password + salt)) + challenge)). Requests are
``{"request": <name>, "id": <id>, ...}``; answers carry the same ``id`` and ``status`` ``ok`` or
``error``. Used here: ``DoAction`` ``{"action": {"id"|"name"}, "args": {...}}`` and, for
``livebot check``, ``GetActions``.

Rule kind ``streamerbot``: ``data: {action: <name>}`` or ``data: {action_id: <guid>}``, optional
``args`` (a mapping; templates allowed). The args also get ``user`` (the viewer's id), ``rule`` and,
when the action has a text, ``text``: in Streamer.bot they are ``%user%``, ``%rule%``, ``%text%``.
Text values are filtered as viewer text is anywhere it is shown (``bot.integrations.text``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from typing import Any
from urllib.parse import urlsplit

import websockets

from bot.actions.model import Action
from bot.integrations.base import AuthFailed, IntegrationDown, IntegrationRefused, IntegrationSink, Probe
from bot.integrations.text import shown_text

STREAMERBOT_KINDS = frozenset({"streamerbot"})


def auth_string(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode("utf-8")).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode("utf-8")).digest()).decode("ascii")


def target(action: Action) -> dict[str, str]:
    """``{"name": ...}`` or ``{"id": ...}`` from the action's data; refused when it has neither."""
    ident = str(action.data.get("action_id") or "").strip()
    if ident:
        return {"id": ident}
    name = str(action.data.get("action") or "").strip()
    if name:
        return {"name": name}
    raise IntegrationRefused("streamerbot needs data.action (a name) or data.action_id")


class StreamerbotSink(IntegrationSink):
    name = "streamerbot"
    kinds = STREAMERBOT_KINDS

    def __init__(self, url: str = "ws://127.0.0.1:8080/", password: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self._password = password or ""
        self._ws: Any = None
        self._ids = itertools.count(1)
        self.info: dict[str, Any] = {}

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 8080}"

    def check_action(self, action: Action) -> None:
        target(action)
        args = action.data.get("args")
        if args is not None and not isinstance(args, dict):
            raise IntegrationRefused("streamerbot: data.args must be a mapping")

    async def _connect(self) -> None:
        self._ws = ws = await websockets.connect(self.url, max_size=1 << 24, open_timeout=self.timeout)
        hello = json.loads(await ws.recv())
        if not isinstance(hello, dict) or hello.get("request") != "Hello":
            raise IntegrationDown("the server did not say Hello: is this Streamer.bot's WebSocket server?")
        self.info = hello.get("info") or {}
        auth = hello.get("authentication")
        if auth:
            if not self._password:
                raise AuthFailed("Streamer.bot needs a password: set integrations.streamerbot.password "
                                 "or LIVEBOT_STREAMERBOT_PASSWORD")
            try:
                reply = await self.request("Authenticate", authentication=auth_string(
                    self._password, str(auth.get("salt", "")), str(auth.get("challenge", ""))), check=False)
            except websockets.ConnectionClosed:  # a refusal may come as a bare close, without an answer
                raise AuthFailed("Streamer.bot closed the connection at authentication: is the password "
                                 "right?") from None
            if reply.get("status") != "ok":
                raise AuthFailed(f"Streamer.bot refused the password ({reply.get('error') or 'status error'})")

    def _alive(self) -> bool:
        from websockets.protocol import State

        return self._ws is not None and self._ws.state is State.OPEN

    async def _disconnect(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def request(self, request: str, *, check: bool = True, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for the answer with its id (events in between are skipped)."""
        ws = self._ws
        if ws is None:
            raise IntegrationDown("not connected")
        ident = f"livebot-{next(self._ids)}"
        await ws.send(json.dumps({"request": request, "id": ident, **fields}))
        while True:
            message = json.loads(await ws.recv())
            if isinstance(message, dict) and message.get("id") == ident:
                break
        if check and message.get("status") != "ok":
            raise IntegrationRefused(f"Streamer.bot refused {request} ({message.get('error') or 'status error'})")
        return message

    async def _perform(self, action: Action) -> None:
        args = {"user": action.user or "", "rule": action.rule}
        if action.text:
            args["text"] = action.text
        args.update(action.data.get("args") or {})
        args = {k: shown_text(v) if isinstance(v, str) else v for k, v in args.items()}  # viewer text, filtered
        which = target(action)
        try:
            await self.request("DoAction", action=which, args=args)
        except IntegrationRefused as exc:
            raise IntegrationRefused(f"{exc} for action {which.get('name') or which.get('id')!r}") from None

    async def _look(self, probe: Probe) -> None:
        if self.info:
            probe.notes.append(f"Streamer.bot {self.info.get('version', '?')} ({self.info.get('name', '?')})")
        actions = (await self.request("GetActions")).get("actions") or []
        probe.saw["actions"] = [str(a.get("name", "")) for a in actions]
        probe.detail["action_ids"] = [str(a.get("id", "")) for a in actions]
