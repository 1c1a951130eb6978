"""A real WebSocket server on a free loopback port, for tests: subclass it and write ``handler``.

    class Feed(WsServer):
        async def handler(self, ws): ...

    async with Feed() as feed:   # feed.url is ws://127.0.0.1:<port>/
        ...
"""

from __future__ import annotations

import asyncio

import websockets


class WsServer:
    stop: asyncio.Event | None = None  # set on exit when a subclass has one (to end its handlers)

    async def handler(self, ws) -> None:  # pragma: no cover - subclasses write it
        raise NotImplementedError

    async def __aenter__(self):
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    async def __aexit__(self, *exc) -> None:
        if self.stop is not None:
            self.stop.set()
        self.server.close()
        await self.server.wait_closed()


class Serve(WsServer):
    """A WsServer around a plain handler function: ``async with Serve(handler) as server: server.url``."""

    def __init__(self, handler) -> None:
        self.handler = handler


HANG = "hang"  # a script step: send nothing more, keep the connection open until the client closes it
DROP = "drop"  # a script step: the network goes away (the transport aborted, no close frame)


class ScriptServer(WsServer):
    """A loopback feed that plays ``scripts[n]`` to the n-th connection (the last one repeats).

    A step is text to send, an int close code (the server closes with it), ``HANG`` or ``DROP``;
    at the end of a script the server waits for the client to close (counted in ``closed_by_client``).
    """

    def __init__(self, scripts):
        self.scripts = scripts
        self.connections = 0
        self.closed_by_client = 0
        self.connected = asyncio.Event()

    async def handler(self, ws):
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        self.connected.set()
        for step in script:
            if step == DROP:
                ws.transport.abort()
                return
            if isinstance(step, int):
                await ws.close(code=step, reason="test")
                return
            if step != HANG:
                await ws.send(step)
        await ws.wait_closed()
        self.closed_by_client += 1
