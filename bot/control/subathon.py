"""Pause, resume or add time to the subathon timer of a running ``livebot run``.

``control_subathon(runner, op, ms)`` puts a ``subathon_control`` event into the runner's event
queue, as a source would: the engine handles it in order with everything else, the recorder
writes it, and a replay of the recording (or the catch-up after a crash) does exactly the same.
The control server mounts it as HTTP (loopback by default, like ``/status``)::

    POST /subathon/pause
    POST /subathon/resume
    POST /subathon/add?ms=300000        (or ?s=300; negative takes time off)

Answers: 202 ``{"queued": op, "ms": n}``; 400 a bad or missing amount; 403 a request from a web
page of another origin, a Host not naming this machine, or a missing ``LIVEBOT_HTTP_TOKEN`` (bot/control/guard.py);
409 no ``settings: subathon:`` in the rules.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from aiohttp import web


from bot.events.model import SUBATHON_CONTROL, Event
from bot.sources.queue import stamp

OPS = ("pause", "resume", "add")
MAX_ADD_MS = 30 * 86_400_000  # a month at once: more is a typo
_seq = itertools.count(1)


class SubathonNotConfigured(LookupError):
    pass


def control_subathon(runner: Any, op: str, ms: int = 0) -> Event:
    """Queue a ``subathon_control`` event for the running engine; returns it. Raises ValueError
    for an unknown op or amount, SubathonNotConfigured when the rules have no timer."""
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}")
    if op == "add" and (isinstance(ms, bool) or not isinstance(ms, int) or not ms or abs(ms) > MAX_ADD_MS):
        raise ValueError(f"add needs a whole number of ms, not 0, at most {MAX_ADD_MS} either way")
    if runner.engine.features.subathon is None:
        raise SubathonNotConfigured("no subathon timer: add 'settings: subathon:' to the rules")
    now = runner.clock.now()
    data: dict[str, Any] = {"op": op} if op != "add" else {"op": op, "ms": ms}
    ev = Event(SUBATHON_CONTROL, now, msg_id=f"subathon:{op}:{now}:{next(_seq)}", data=data)
    stamp(runner.queue, runner.clock, ev)
    return ev


def add_routes(app: web.Application, runner: Any) -> None:
    """``POST /subathon/{pause,resume,add}`` on the control server, whose guard middleware
    (bot/control/guard.py) has already refused what another site or machine may not do."""

    async def handle(request: web.Request) -> web.Response:
        op = request.match_info["op"]
        ms = 0
        if op == "add":
            raw = request.query.get("ms")
            scale = 1
            if raw is None and "s" in request.query:
                raw, scale = request.query["s"], 1000
            try:
                value = float(raw) * scale if raw is not None else math.nan
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value != int(value):
                return web.json_response({"error": "add needs ?ms=N or ?s=N (a whole number, may be negative)"},
                                         status=400)
            ms = int(value)
        try:
            control_subathon(runner, op, ms)
        except SubathonNotConfigured as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"queued": op, "ms": ms}, status=202)

    app.router.add_post(r"/subathon/{op:pause|resume|add}", handle)
