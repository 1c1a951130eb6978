"""Loyalty points of a running ``livebot run``, over HTTP on the control server (loopback by default):

    GET  /points.csv                           every viewer's points, most first (rank, user_key,
                                               unique_id, nickname, points, level)
    POST /points/adjust?user=NAME&points=N     give N points (a refunded perk), or take them (N < 0);
                                               NAME is the viewer's @handle or user key

An adjustment is a ``points_control`` event put into the event queue (recorded, replayed the same).
Answers: 202 queued; 400 a bad amount; 401/403 another site's page, a Host not naming this machine, no or a wrong ``LIVEBOT_HTTP_TOKEN``
(bot/control/guard.py); 404 no such viewer;
409 no ``settings: points:`` in the rules.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web


from bot.engine.points import points_csv
from bot.events.model import POINTS_CONTROL, Event
from bot.sources.queue import stamp

MAX_ADJUST = 10**9
_seq = itertools.count(1)


def add_routes(app: web.Application, runner: Any) -> None:
    def points():
        return runner.engine.features.points

    async def export(request: web.Request) -> web.Response:
        p = points()
        if p is None:
            return web.json_response({"error": "no points: add 'settings: points:' to the rules"}, status=409)
        return web.Response(text=points_csv(p.table()), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="points.csv"',
                                     "X-Content-Type-Options": "nosniff"})

    async def adjust(request: web.Request) -> web.Response:
        p = points()
        if p is None:
            return web.json_response({"error": "no points: add 'settings: points:' to the rules"}, status=409)
        try:
            amount = int(request.query.get("points", ""))
        except ValueError:
            amount = 0
        if not amount or abs(amount) > MAX_ADJUST:
            return web.json_response({"error": "points must be a whole number, not 0"}, status=400)
        who = request.query.get("user", "").strip().lstrip("@")
        key = who if who in p.names or who in p.base else next(
            (k for k, (uid, _) in p.names.items() if uid.lower() == who.lower()), None) if who else None
        if key is None:
            return web.json_response({"error": f"no viewer {who[:40]!r} has points"}, status=404)
        now = runner.clock.now()
        stamp(runner.queue, runner.clock, Event(POINTS_CONTROL, now, msg_id=f"points:{now}:{next(_seq)}",
                                                data={"user_key": key, "points": amount}))
        return web.json_response({"queued": "adjust", "user_key": key, "points": amount}, status=202)

    app.router.add_get("/points.csv", export)
    app.router.add_post("/points/adjust", adjust)
