"""The HTTP server every livebot process shares: ``/healthz`` and ``/metrics`` from a health
function and a Prometheus registry, started on ``host:port`` (``port: 0`` picks a free one) and
stopped. The daemon's ``ControlServer`` (status, control page, overlay) and the Redis worker's and
ingest's ``ScaleServer`` are both this, with their own routes added.
"""

from __future__ import annotations

from typing import Any, Callable

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from bot.control.metrics import CONTENT_TYPE, render

log = structlog.get_logger("bot.control")


class HttpServer:
    role = ""  # named in the logs (the daemon's server has none)

    def __init__(self, health: Callable[[], tuple[bool, dict[str, Any]]], registry: CollectorRegistry, *,
                 host: str = "127.0.0.1", port: int = 8787, middlewares: tuple = ()) -> None:
        self.health = health
        self.registry = registry
        self.host = host
        self.port = port
        self.app = web.Application(middlewares=list(middlewares))
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics)
        self._site_runner: web.AppRunner | None = None

    async def healthz(self, request: web.Request) -> web.Response:
        ok, body = self.health()
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})

    async def listen(self) -> int:
        """Listen; returns the bound port. Raises OSError when it cannot (a port in use)."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._site_runner = runner
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("http_listening", **({"role": self.role} if self.role else {}), host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._site_runner is not None:
            await self._site_runner.cleanup()
            self._site_runner = None
