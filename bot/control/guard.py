"""Who may use the daemon's HTTP server, and how a state-changing request must look: the one place
that decides it, for the control page, its WebSocket, ``/status``, ``/metrics`` and the feature
endpoints (``POST /subathon/*``, ``POST /points/adjust``, ``GET /points.csv``).

- Bound to a loopback address (the default), no token is needed: only this machine can connect.
  The request's ``Host`` must then name this machine too (127.0.0.1, ::1, localhost): a page of
  another site whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its own name as
  ``Host`` (and a matching ``Origin``), so an Origin check alone would let it through.
- Bound elsewhere, a token is required: ``LIVEBOT_HTTP_TOKEN`` from the environment (never from a
  file, never logged). ``livebot run`` refuses to start without one. Every request but
  ``/healthz`` (for health probes) must carry it: ``Authorization: Bearer <token>``, the
  ``X-Livebot-Token`` header, or ``?token=`` on a page's first load (the WebSocket too: browsers
  cannot give it headers), which sets an HttpOnly, SameSite=Strict cookie for what follows.
  Tokens are compared in constant time.
- Another site's page never: a browser's ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site``, or
  an ``Origin`` that is not this server's own, is refused on every request, the WebSocket's
  included (a cross-site page could otherwise open it with the user's cookie).
- A POST (every control changes state; nothing else does) must be ``application/json``: a
  cross-site form cannot send that without a CORS preflight, which is never answered.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

TOKEN_ENV = "LIVEBOT_HTTP_TOKEN"
COOKIE = "livebot_token"
OPEN_PATHS = frozenset({"/healthz"})


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


def token_from_env(env: dict | None = None) -> str | None:
    value = (os.environ if env is None else env).get(TOKEN_ENV, "")
    return value or None


def check_bind(host: str, token: str | None) -> str | None:
    """Why this server may not start (one line), or None."""
    if not is_loopback(host) and not token:
        return (f"http.host {host} opens the control page to the network: set {TOKEN_ENV} in the environment "
                f"(a long random token), or bind 127.0.0.1")
    return None


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        return False
    return netloc == (request.host or "").lower()


def _no(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


class Guard:
    def __init__(self, host: str = "127.0.0.1", token: str | None = None) -> None:
        self.host = host
        self.token = token or None
        self.required = not is_loopback(host)  # (loopback: this machine only, as the overlay in OBS)

    def _given(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return request.headers.get("X-Livebot-Token") or request.query.get("token") or request.cookies.get(COOKIE)

    def allowed(self, request: web.Request) -> bool:
        if not self.required or request.path in OPEN_PATHS:
            return True
        given = self._given(request)
        return bool(self.token) and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def refuse(self, request: web.Request) -> web.Response | None:
        """None when the request may go on, else the refusal to answer with."""
        if request.path in OPEN_PATHS:
            return None
        if not self.allowed(request):
            if self.required and not self.token:
                return _no(403, f"set {TOKEN_ENV} to use this from another machine")
            return _no(401, f"a token is needed ({TOKEN_ENV}): Authorization: Bearer <token>")
        if not self.required and not is_loopback(_hostname(request.host)):
            return _no(403, "the Host must be this machine (127.0.0.1 or localhost)")
        if request.headers.get("Sec-Fetch-Site", "same-origin").lower() in ("cross-site", "same-site") or \
                not same_origin(request):
            return _no(403, "requests from other sites are refused")
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.content_type != "application/json":
            return _no(415, "send application/json")
        return None

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        response = await handler(request)
        # ?token= on a page's first load (the overlay in an OBS browser source, the control page):
        # a cookie for its scripts, styles and WebSocket. Pages are FileResponses, not yet sent here.
        given = request.query.get("token")
        if self.required and given is not None and self.token is not None and \
                hmac.compare_digest(given.encode(), self.token.encode()) and \
                isinstance(response, web.StreamResponse) and not response.prepared:
            response.set_cookie(COOKIE, given, httponly=True, samesite="Strict")
        return response
