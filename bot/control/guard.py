"""Who may use the daemon's HTTP server, and how a state-changing request must look.

- Bound to a loopback address (the default), no token is needed: only this machine can connect.
- Bound elsewhere, a token is required: ``LIVEBOT_HTTP_TOKEN`` from the environment (never from a
  file, never logged). ``livebot run`` refuses to start without one. Every request but
  ``/healthz`` (for health probes) must carry it: ``Authorization: Bearer <token>``, the
  ``X-Livebot-Token`` header, or ``?token=`` on a page's first load (the WebSocket too: browsers
  cannot give it headers), which sets an HttpOnly, SameSite=Strict cookie for what follows.
- Bound to loopback, a request must also name a loopback host (``Host: 127.0.0.1:8787``,
  ``localhost``, ``[::1]``): a web page whose own name an attacker re-points at 127.0.0.1 (DNS
  rebinding) is "same origin" with itself, so neither the token-less loopback nor the Origin check
  would stop it; its ``Host`` is its own name, and is refused (403). (A reverse proxy in front
  must pass ``Host`` through as 127.0.0.1, or the server be bound elsewhere with a token.)
- A POST (every control changes state; nothing else does) must be ``application/json`` (a
  cross-site form cannot send that without a CORS preflight, which is never answered) and, when
  the browser names an ``Origin``, come from this server's own. The WebSocket checks the
  ``Origin`` too (a cross-site page could otherwise open it with the user's cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Awaitable, Callable

from aiohttp import web

TOKEN_ENV = "LIVEBOT_HTTP_TOKEN"
COOKIE = "livebot_token"
OPEN_PATHS = frozenset({"/healthz"})


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_from_env(env: dict | None = None) -> str | None:
    value = (os.environ if env is None else env).get(TOKEN_ENV, "")
    return value or None


def check_bind(host: str, token: str | None) -> str | None:
    """Why this server may not start (one line), or None."""
    if not is_loopback(host) and not token:
        return (f"http.host {host} opens the control page to the network: set {TOKEN_ENV} in the environment "
                f"(a long random token), or bind 127.0.0.1")
    return None


def loopback_host(request: web.Request) -> bool:
    """The request's ``Host`` names this machine (``localhost``, ``127.x.x.x``, ``[::1]``; any port)."""
    host = request.headers.get("Host", "")
    name = host[1:host.find("]")] if host.startswith("[") else host.rpartition(":")[0] if ":" in host else host
    return name.lower() == "localhost" or (is_loopback(name) and name != "")


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = request.headers.get("Host", "")
    return origin in (f"http://{host}", f"https://{host}")


class Guard:
    def __init__(self, host: str, token: str | None) -> None:
        self.host = host
        self.token = token
        self.required = not is_loopback(host)  # (loopback: this machine only, as the overlay in OBS)

    def _given(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        return request.headers.get("X-Livebot-Token") or request.query.get("token") or request.cookies.get(COOKIE)

    def allowed(self, request: web.Request) -> bool:
        if not self.required or request.path in OPEN_PATHS:
            return True
        given = self._given(request)
        return bool(self.token) and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if not self.required and request.path not in OPEN_PATHS and not loopback_host(request):
            return web.json_response({"error": "this server answers only to 127.0.0.1 / localhost (Host refused)"},
                                     status=403)
        if not self.allowed(request):
            return web.json_response({"error": "a token is needed (LIVEBOT_HTTP_TOKEN)"}, status=401)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if not same_origin(request):
                return web.json_response({"error": "cross-site request refused"}, status=403)
            if request.content_type != "application/json":
                return web.json_response({"error": "send application/json"}, status=415)
        elif request.headers.get("Upgrade", "").lower() == "websocket" and not same_origin(request):
            return web.json_response({"error": "cross-site WebSocket refused"}, status=403)
        response = await handler(request)
        query_token = request.query.get("token")
        if self.required and query_token and isinstance(response, web.Response) and \
                hmac.compare_digest(query_token.encode(), str(self.token).encode()):  # (only the right one)
            response.set_cookie(COOKIE, query_token, httponly=True, samesite="Strict")
        return response
