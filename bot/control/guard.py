"""Who may drive the control server's write and data endpoints (``POST /subathon/*``,
``POST /points/adjust``, ``GET /points.csv``).

- Another site's page never: a browser's ``Origin`` must be this server's own, and its
  ``Sec-Fetch-Site`` (when sent) ``same-origin`` or ``none`` (typed in the address bar, curl).
- Bound to this machine (127.0.0.1, ::1, localhost): the request's ``Host`` must name this machine
  too. A page of another site whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its
  own name as ``Host`` and its own ``Origin``, so the Origin check alone would let it through.
- Bound to anything else (``http.host: 0.0.0.0``, e.g. in Docker): only with ``http.token`` (or
  ``LIVEBOT_HTTP_TOKEN``) sent as ``Authorization: Bearer <token>`` or ``X-Livebot-Token``; with
  no token configured these endpoints are refused (403) — anyone on the network could otherwise
  hand out points or stop the timer.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost (a bound address or a Host header's name)."""
    if not host:
        return False
    h = host.strip("[]").lower().rstrip(".")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str | None) -> str | None:
    try:
        return urlsplit("//" + (host_header or "")).hostname
    except ValueError:
        return None


class Guard:
    def __init__(self, bound_host: str = "127.0.0.1", token: str | None = None) -> None:
        self.bound_host = bound_host
        self.token = token or None

    def refuse(self, request: web.Request) -> web.Response | None:
        """None when the request may go on, else the refusal to answer with."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != (request.host or "").lower():
            return _no(403, "requests from other sites are refused")
        if request.headers.get("Sec-Fetch-Site", "same-origin").lower() not in ("same-origin", "none"):
            return _no(403, "requests from other sites are refused")
        if self.token is not None:
            auth = request.headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("X-Livebot-Token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _no(401, "a token is needed: Authorization: Bearer <http.token>")
            return None
        if not is_loopback(self.bound_host):
            return _no(403, "set http.token (or LIVEBOT_HTTP_TOKEN) to use this from another machine")
        if not is_loopback(_hostname(request.host)):
            return _no(403, "the Host must be this machine (127.0.0.1 or localhost)")
        return None


def _no(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


LOOPBACK_ONLY = Guard()
