"""A local RCON server for tests, after Valve's Source RCON protocol (developer.valvesoftware.com/
wiki/Source_RCON_Protocol), as Minecraft's server speaks it.

A packet: int32 size (of what follows), int32 id, int32 type, a NUL-terminated ASCII/UTF-8 body,
one empty NUL; all little-endian. Types: 3 SERVERDATA_AUTH, 2 SERVERDATA_AUTH_RESPONSE,
2 SERVERDATA_EXECCOMMAND, 0 SERVERDATA_RESPONSE_VALUE. An auth request is answered with an empty
RESPONSE_VALUE and then an AUTH_RESPONSE carrying the request's id, or -1 for a wrong password.
A command before authenticating closes the connection. Each command gets a RESPONSE_VALUE with its
id. ``commands`` keeps what ran; ``split`` sends each answer in two TCP writes (a packet in pieces).
"""

from __future__ import annotations

import asyncio
import struct

AUTH, AUTH_RESPONSE, EXECCOMMAND, RESPONSE_VALUE = 3, 2, 2, 0


def packet(ident: int, kind: int, body: bytes) -> bytes:
    payload = struct.pack("<ii", ident, kind) + body + b"\x00\x00"
    return struct.pack("<i", len(payload)) + payload


class RconServer:
    def __init__(self, password: str = "creeper") -> None:
        self.password = password
        self.commands: list[str] = []
        self.logins = 0
        self.refused = 0
        self.split = False
        self.ran = asyncio.Event()
        self.connections: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RconServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for w in self.connections:
            w.close()
        await self.server.wait_closed()

    async def drop_all(self) -> None:
        """Close every open connection (a server restart, as the client sees it)."""
        for w in self.connections:
            w.close()
        self.connections.clear()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.split:
            writer.write(data[:7])
            await writer.drain()
            await asyncio.sleep(0)
            writer.write(data[7:])
        else:
            writer.write(data)
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)
        authed = False
        try:
            while True:
                (size,) = struct.unpack("<i", await reader.readexactly(4))
                data = await reader.readexactly(size)
                ident, kind = struct.unpack("<ii", data[:8])
                body = data[8:-2].decode("utf-8")
                if kind == AUTH:
                    await self._send(writer, packet(ident, RESPONSE_VALUE, b""))
                    if body == self.password:
                        authed = True
                        self.logins += 1
                        await self._send(writer, packet(ident, AUTH_RESPONSE, b""))
                    else:
                        self.refused += 1
                        await self._send(writer, packet(-1, AUTH_RESPONSE, b""))
                elif kind == EXECCOMMAND and authed:
                    self.commands.append(body)
                    self.ran.set()
                    await self._send(writer, packet(ident, RESPONSE_VALUE, f"ran: {body.split()[0]}".encode()))
                else:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
