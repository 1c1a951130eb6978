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
