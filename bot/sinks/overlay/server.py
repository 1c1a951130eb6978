"""The overlay's web server: the page, its static files, and a WebSocket that pushes page messages.

Standalone (``await server.start()`` / ``await server.stop()``) or mounted on an application that
serves other routes too (``server.add_routes(app)``). Routes, under ``prefix`` (``/overlay``)::

    GET {prefix}/            the page (add this URL to OBS as a browser source)
    GET {prefix}/ws          the WebSocket: {"t": "state", ...} on connect, then {"t": "batch", "items": [...]}
    GET {prefix}/static/...  overlay.js, overlay.css, themes/NAME.css
    GET {prefix}/user.css    the configured CSS file (read on every request; empty when none)

Each browser gets a bounded queue and its own writer task: ``publish`` never waits. A browser
that falls ``client_queue`` messages behind is disconnected (and counted); its page reconnects
and gets the current state.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

import orjson
import structlog
from aiohttp import WSCloseCode, web

from bot.actions.model import Action
from bot.sinks.overlay.views import OverlayState

log = structlog.get_logger("bot.overlay")

STATIC = Path(__file__).parent / "static"
DEFAULT_PORT = 8791
# Scripts only from this server: even a bug that put viewer text into markup could not run it.
# Inline styles stay allowed for OBS's "Custom CSS" box, which injects a <style> element.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; font-src 'self' data:; media-src 'self'; base-uri 'none'; form-action 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}
CLOSE_TIMEOUT_S = 2.0


class _Client:
    """One browser: a bounded queue of serialized messages and the task that writes them."""

    __slots__ = ("request", "ws", "queue", "task")

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, size: int) -> None:
        self.request = request
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.task = asyncio.create_task(self._pump(), name="overlay-client")

    def offer(self, data: str) -> bool:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    async def _pump(self) -> None:
        try:
            while True:
                await self.ws.send_str(await self.queue.get())
        except (ConnectionError, RuntimeError):  # the browser went away; its handler ends too
            pass


class OverlayServer:
    """Serves the overlay page and pushes what ``show`` is given to every connected page.

    ``host``/``port``: where ``start`` listens (loopback by default; port 0 picks a free one).
    ``prefix``: the URL path of the page. ``css``: a user CSS file served as ``user.css``.
    ``client_queue``: messages a browser may fall behind before it is disconnected.
    ``banner_ms``, ``result_ms``, ``board_size``, ``kinds``: see ``OverlayState``.
    ``heartbeat``: seconds between WebSocket pings (a dead connection is noticed).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, prefix: str = "/overlay",
                 css: str | Path | None = None, client_queue: int = 256, banner_ms: int = 30_000,
                 result_ms: int = 15_000, board_size: int = 5, kinds: Iterable[str] = (),
                 heartbeat: float = 15.0, sounds: Any = None) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix must start with / and not end with / (or be empty)")
        if client_queue < 1:
            raise ValueError("client_queue must be at least 1")
        self.host = host
        self.port = port
        self.prefix = prefix
        self.css = Path(css) if css is not None else None
        self.client_queue = client_queue
        self.heartbeat = heartbeat
        self.sounds = sounds  # a SoundBoard (sounds.py): GET {prefix}/sounds/NAME
        self.state = OverlayState(banner_ms=banner_ms, result_ms=result_ms, board_size=board_size, kinds=kinds)
        self.counters: Counter[str] = Counter()  # connections, evicted, messages
        self._clients: set[_Client] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._css_warned = False

    @property
    def url(self) -> str:
        """The page's address, for OBS."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}/"

    @property
    def clients(self) -> int:
        return len(self._clients)

    # -- routes --------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Mount the page, its files and the WebSocket on ``app`` (under ``prefix``)."""
        p = self.prefix
        if p:
            app.router.add_get(p, self._to_page)
        app.router.add_get(p + "/", self._page)
        app.router.add_get(p + "/ws", self._ws)
        app.router.add_get(p + "/user.css", self._user_css)
        app.router.add_static(p + "/static", STATIC)
        if self.sounds is not None:
            app.router.add_get(p + "/sounds/{name}", self.sounds.serve)
        app.on_shutdown.append(self._on_shutdown)

    async def _to_page(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.prefix + "/" + (f"?{request.query_string}" if request.query_string else ""))

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def _user_css(self, request: web.Request) -> web.Response:
        text = ""
        if self.css is not None:
            try:
                text = self.css.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                if not self._css_warned:
                    self._css_warned = True
                    log.warning("overlay_css_unreadable", path=str(self.css), error=f"{type(exc).__name__}: {exc}")
        return web.Response(text=text, content_type="text/css", headers={"Cache-Control": "no-cache"})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            raise web.HTTPForbidden(text="the overlay socket only serves its own page")
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=4096)
        await ws.prepare(request)
        client = _Client(request, ws, self.client_queue)
        client.offer(orjson.dumps(self.state.snapshot()).decode())
        self._clients.add(client)
        self.counters["connections"] += 1
        try:
            async for _ in ws:  # the page sends nothing we need
                pass
        finally:
            self._clients.discard(client)
            client.task.cancel()
        return ws

    # -- pushing -------------------------------------------------------------------------------

    def show(self, actions: Sequence[Action]) -> int:
        """Update the state with ``actions`` and push their messages; returns how many. Never waits."""
        messages = [m for a in actions if (m := self.state.apply(a)) is not None]
        self.publish(messages)
        return len(messages)

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Queue ``messages`` (as one batch) for every page; a page too far behind is dropped."""
        if not messages:
            return
        self.counters["messages"] += len(messages)
        if not self._clients:
            return
        data = orjson.dumps({"t": "batch", "items": messages}).decode()
        for client in list(self._clients):
            if not client.offer(data):
                self.counters["evicted"] += 1
                log.warning("overlay_client_too_slow", peer=client.request.remote, queued=client.queue.qsize())
                self._disconnect(client, WSCloseCode.TRY_AGAIN_LATER, "too slow")

    def _disconnect(self, client: _Client, code: int, why: str) -> None:
        self._clients.discard(client)
        client.task.cancel()
        task = asyncio.create_task(self._close(client, code, why))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(client: _Client, code: int, why: str) -> None:
        try:
            await asyncio.wait_for(client.ws.close(code=code, message=why.encode()), CLOSE_TIMEOUT_S)
        except Exception:  # stuck or gone: cut the connection
            transport = client.request.transport
            if transport is not None:
                transport.abort()

    async def close_clients(self) -> None:
        """Disconnect every page (they will reconnect to whoever serves next)."""
        for client in list(self._clients):
            self._disconnect(client, WSCloseCode.GOING_AWAY, "server stopping")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close_clients()

    # -- standalone ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` with an application of our own (``port`` 0: a free port)."""
        if self._runner is not None:
            return
        app = web.Application()
        self.add_routes(app)
        if self.prefix:
            app.router.add_get("/", self._to_page)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("overlay_not_loopback", host=self.host, hint="anyone who can reach this port sees the overlay")
        log.info("overlay_started", url=self.url)

    async def stop(self) -> None:
        """Disconnect every page and stop listening (``start`` may be called again)."""
        await self.close_clients()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
