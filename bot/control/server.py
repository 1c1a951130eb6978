"""One aiohttp server for the daemon: ``/healthz``, ``/metrics``, a status page (HTML, or JSON with
``Accept: application/json`` or ``?format=json``), the control page at ``/`` (``bot.control.page``),
and whatever else mounts on it (the overlay, the webhook source). Bound to 127.0.0.1 unless
configured otherwise; bound elsewhere, every request but ``/healthz`` needs the token
(``LIVEBOT_HTTP_TOKEN``; see ``bot.control.guard``).

``/healthz`` answers 200 while the event loop turns (its last turn less than ``stall_s`` ago),
with whether each source is connected and how old the last event is; 503 when the loop has
stalled. A creator who is simply offline is not unhealthy: the source is polling.
"""

from __future__ import annotations

import html
import time
from typing import Any

import structlog
from aiohttp import web

from bot.control.guard import Guard
from bot.control.http import HttpServer
from bot.control.metrics import registry_for

log = structlog.get_logger("bot.control")


class ControlServer(HttpServer):
    def __init__(self, runner: Any, *, host: str = "127.0.0.1", port: int = 8787, reloader: Any = None,
                 stall_s: float = 10.0, config: dict[str, Any] | None = None, token: str | None = None,
                 control: Any = None) -> None:
        self.runner = runner
        self.reloader = reloader
        self.stall_s = stall_s
        self.config = config or {}  # redacted: shown on the status page
        self.started = time.monotonic()
        self.guard = Guard(host, token)
        self.control = control  # bot.control.page.Control: the page at / (None: no page)
        super().__init__(self.health, registry_for(runner, reloader, control), host=host, port=port,
                         middlewares=(self.guard.middleware,))
        self.app.router.add_get("/status", self.status_page)
        from bot.control.subathon import add_routes as subathon_routes  # POST /subathon/... (h17)
        subathon_routes(self.app, runner)
        from bot.control.points import add_routes as points_routes  # GET /points.csv, POST /points/adjust (h17)
        points_routes(self.app, runner)
        if control is not None:
            control.mount(self.app)

    def health(self) -> tuple[bool, dict[str, Any]]:
        r = self.runner
        now = time.monotonic()
        loop_age = now - r.heartbeat
        ok = loop_age < self.stall_s
        body = {
            "status": "ok" if ok else "stalled",
            "sources": {name: ("connected" if up else "disconnected") for name, up in r.connected.items()},
            "last_event_age_s": None if r.last_event_at is None else round(now - r.last_event_at, 3),
            "loop_age_s": round(loop_age, 3),
            "queue_depth": len(r.queue),
            "uptime_s": round(now - self.started, 1),
        }
        return ok, body

    def status(self) -> dict[str, Any]:
        """What /status shows, as plain data."""
        ok, health = self.health()
        r = self.runner
        out: dict[str, Any] = {
            **health,
            "queue_high_water": r.queue.high_water,
            "events": dict(r.result.events),
            "actions": dict(r.result.actions),
            "shed": dict(r.queue.shed),
            "diamonds": r.engine.state.diamonds,
            "top_gifters": r.engine.board.top(5),
            "chat_budget": dict(r.engine.budget.counters),
        }
        if self.reloader is not None:
            out["rule_reloads"] = {"applied": self.reloader.reloads, "refused": self.reloader.refused,
                                   "problems": self.reloader.last_problems[:20]}
        if self.control is not None:
            out["control"] = self.control.settings()
        return out

    async def status_page(self, request: web.Request) -> web.Response:
        if request.query.get("format") == "json" or "application/json" in request.headers.get("Accept", ""):
            return web.json_response(self.status())
        ok, health = self.health()
        r = self.runner
        rows = [("health", health["status"]), ("uptime", f"{health['uptime_s']:.0f} s"),
                ("sources", ", ".join(f"{k}: {v}" for k, v in health["sources"].items()) or "none yet"),
                ("last event", "none yet" if health["last_event_age_s"] is None else f"{health['last_event_age_s']} s ago"),
                ("queue", f"{len(r.queue)} waiting (most ever {r.queue.high_water})"),
                ("events", ", ".join(f"{t} {n}" for t, n in r.result.events.most_common()) or "none"),
                ("actions", ", ".join(f"{t} {n}" for t, n in r.result.actions.most_common()) or "none"),
                ("shed", ", ".join(f"{t} {n}" for t, n in r.queue.shed.items()) or "none"),
                ("chat budget", ", ".join(f"{k} {n}" for k, n in r.counts.budget(r.engine).items()
                                          if k in ("merged", "dropped_full", "dropped_stale", "held_at_close"))),
                ("diamonds this stream", f"{r.engine.state.diamonds:,}"),
                ("top gifters", " · ".join(f"{g['rank']}. {g['nickname']} ({g['diamonds']:,})"
                                           for g in r.engine.board.top(5)) or "none yet")]
        if self.reloader is not None:
            rows.append(("rule reloads", f"{self.reloader.reloads} applied, {self.reloader.refused} refused"))
            rows += [("rule problem", p) for p in self.reloader.last_problems[:20]]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        page = (f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>livebot status</title>"
                f"<style>body{{font:14px system-ui;margin:2em}}th{{text-align:left;padding-right:1em}}</style>"
                f"<h1>livebot</h1><table>{body}</table><p><a href=/>control</a> · <a href=/metrics>metrics</a> · "
                f"<a href=/healthz>healthz</a> · <a href=/status?format=json>json</a>")
        return web.Response(text=page, content_type="text/html")

    async def start(self) -> int:
        """Listen; returns the bound port (``port: 0`` picks a free one)."""
        port = await self.listen()
        if self.control is not None:
            self.control.start()
        return port

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        await super().stop()
