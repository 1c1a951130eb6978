"""Game servers with RCON (Minecraft, and Source-engine games): run commands on a gift.

Client library: ``rcon`` (conqp/rcon on PyPI; GPLv3, so it is the optional extra ``livebot[rcon]``,
used as a dependency only, never copied): maintained, no dependencies, and it implements
Valve's Source RCON packet format (and BattlEye) with an asyncio client. Its one-shot ``rcon()``
opens a connection per command, and its ``Packet.aread`` uses ``read()`` where a packet may arrive
in pieces; so this sink keeps one authenticated connection and reads whole packets itself
(``readexactly`` of the size the packet announces), then lets ``rcon``'s ``Packet`` build and parse
them. ``mcrcon`` (MIT) was passed over: synchronous, its timeouts are ``SIGALRM`` (main thread
only), last released years ago; ``aiomcrcon`` is not on the index this project installs from.

Rule kind ``rcon``: the action's text is one command. Safety, in three layers:

1. At load, a rule whose command puts any value in raw is refused with ``file:line:col``: viewer
   text enters a command only as ``{{ user.nickname | rcon_quote }}`` (``bot.integrations.commands``).
2. Here, before sending: a command runs only when its first word (and, for ``execute``, each word
   after ``run``) is in ``integrations.rcon.allow``; no control characters; at most 1400 bytes.
   Anything else is refused for good (dead-lettered), never sent.
3. The server's own permissions (RCON runs as the console: keep the allow-list short).

Packets (Valve's spec): little-endian int32 size, int32 id, int32 type, a NUL-terminated body and
one more NUL. Login is type 3 (SERVERDATA_AUTH); the answer is type 2 (SERVERDATA_AUTH_RESPONSE)
with our id, or id -1 for a wrong password (a server may send an empty type 0 first). Commands are
type 2 (SERVERDATA_EXECCOMMAND), answered by type 0 (SERVERDATA_RESPONSE_VALUE) with their id.
"""

from __future__ import annotations

import asyncio
import io
import struct
from typing import Any

from bot.actions.model import Action
from bot.integrations.base import (AuthFailed, IntegrationDown, IntegrationRefused, IntegrationSink, NotInstalled,
                                   Probe)
from bot.integrations.commands import COMMAND_KINDS, refuse_reason

AUTH_RESPONSE, RESPONSE_VALUE = 2, 0
MAX_PACKET = 1 << 20  # a larger size field means we are not talking to an RCON server


class RconSink(IntegrationSink):
    name = "rcon"
    kinds = COMMAND_KINDS

    def __init__(self, host: str = "127.0.0.1", port: int = 25575, password: str | None = None, *,
                 allow: list[str] | frozenset[str] = (), **options: Any) -> None:
        super().__init__(**options)
        self.host, self.port = host, port
        self._password = password or ""
        self.allow = frozenset(w.lower().lstrip("/") for w in allow)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.last_reply = ""

    @property
    def where(self) -> str:
        return f"rcon://{self.host}:{self.port}"

    def check_action(self, action: Action) -> None:
        why = refuse_reason(action.text, self.allow)
        if why is not None:
            raise IntegrationRefused(f"rcon command refused: {why}")

    @staticmethod
    def _packet_class() -> Any:
        try:
            from rcon.source.proto import Packet
        except ImportError:
            raise NotInstalled("the RCON integration needs the rcon package: pip install 'livebot[rcon]'") from None
        return Packet

    async def _read_packet(self) -> Any:
        Packet = self._packet_class()  # noqa: N806

        assert self._reader is not None
        head = await self._reader.readexactly(4)
        (size,) = struct.unpack("<i", head)
        if not 10 <= size <= MAX_PACKET:
            raise IntegrationDown(f"not an RCON packet (size {size})")
        body = await self._reader.readexactly(size)
        return Packet.read(io.BytesIO(head + body))

    async def _write(self, packet: Any) -> None:
        assert self._writer is not None
        self._writer.write(bytes(packet))
        await self._writer.drain()

    async def _connect(self) -> None:
        Packet = self._packet_class()  # noqa: N806
        if not self._password:
            raise AuthFailed("RCON needs a password: set integrations.rcon.password or LIVEBOT_RCON_PASSWORD")
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        login = Packet.make_login(self._password)
        await self._write(login)
        while True:
            reply = await self._read_packet()
            if int(reply.type) == AUTH_RESPONSE:
                break
        if int(reply.id) == -1:
            raise AuthFailed("the game server refused the RCON password")
        if int(reply.id) != int(login.id):
            raise IntegrationDown("the game server answered the login with another id")

    def _alive(self) -> bool:
        return self._writer is not None and not self._writer.is_closing() and not (
            self._reader is not None and self._reader.at_eof())

    async def _disconnect(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def run(self, command: str) -> str:
        """Run one command (already checked); the server's answer."""
        Packet = self._packet_class()  # noqa: N806

        if self._writer is None:
            raise IntegrationDown("not connected")
        packet = Packet.make_command(command)
        await self._write(packet)
        while True:  # pieces of an earlier answer have other ids: skipped
            reply = await self._read_packet()
            if int(reply.id) == int(packet.id) and int(reply.type) == RESPONSE_VALUE:
                return reply.payload.decode("utf-8", "replace")

    async def _perform(self, action: Action) -> None:
        self.last_reply = await self.run(action.text.strip())

    async def _look(self, probe: Probe) -> None:
        probe.saw["allowed commands"] = sorted(self.allow)
