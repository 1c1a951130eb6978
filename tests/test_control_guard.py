"""The control server's write and data endpoints (POST /subathon/*, POST /points/adjust, GET /points.csv)
refuse another site's page (Origin, Sec-Fetch-Site), a DNS-rebinding page (its own name as Host on a
loopback bind), and anyone without LIVEBOT_HTTP_TOKEN when the server is not bound to this machine. Real
aiohttp server, real HTTP requests."""

from __future__ import annotations

import aiohttp
import pytest

from bot.actions.dispatcher import Dispatcher
from bot.config import load_config
from bot.control.guard import is_loopback, token_from_env
from bot.control.server import ControlServer
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.live import LiveRunner
from bot.testing import CaptureSink

RULES = """settings:
  points: {chat: 1}
  subathon: {start: 1h}
rules:
  - id: t
    on: gift
    do: [{say: thanks}]
"""


async def _server(host: str = "127.0.0.1", token: str | None = None) -> ControlServer:
    runner = LiveRunner([], Engine(load_rules_text(RULES)), Dispatcher([CaptureSink()]))
    server = ControlServer(runner, host=host, port=0, token=token)
    await server.start()
    return server


async def _codes(port: int, headers: dict[str, str]) -> list[int]:
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        out = []
        for method, path in (("POST", "/subathon/pause"), ("POST", "/points/adjust?user=nobody&points=5"),
                             ("GET", "/points.csv")):
            # state changes are JSON POSTs (bot/control/guard.py)
            body = {"json": {}} if method == "POST" else {}
            async with http.request(method, base + path, headers=headers, **body) as resp:
                out.append(resp.status)
        return out


async def test_a_dns_rebinding_page_is_refused_on_a_loopback_bind():
    server = await _server()
    try:
        # a page at http://evil.example:PORT whose name resolves to 127.0.0.1: its Origin matches its Host
        evil = {"Host": f"evil.example:{server.port}", "Origin": f"http://evil.example:{server.port}"}
        assert await _codes(server.port, evil) == [403, 403, 403]
        assert await _codes(server.port, {"Host": f"evil.example:{server.port}"}) == [403, 403, 403]
        # another site's page (even another port on this machine) by Sec-Fetch-Site
        assert await _codes(server.port, {"Sec-Fetch-Site": "same-site"}) == [403, 403, 403]
        assert await _codes(server.port, {"Origin": "http://evil"}) == [403, 403, 403]
        # this machine by name or address: served (202 queued, 404 no such viewer, 200 the table)
        assert await _codes(server.port, {}) == [202, 404, 200]
        assert await _codes(server.port, {"Host": f"localhost:{server.port}", "Sec-Fetch-Site": "none"}) == [202, 404, 200]
        assert await _codes(server.port, {"Origin": f"http://127.0.0.1:{server.port}",
                                          "Sec-Fetch-Site": "same-origin"}) == [202, 404, 200]
    finally:
        await server.stop()


async def test_off_this_machine_the_endpoints_need_the_token():
    server = await _server(host="0.0.0.0")  # open to the network, no token: refused
    try:
        assert await _codes(server.port, {}) == [403, 403, 403]
    finally:
        await server.stop()
    server = await _server(host="0.0.0.0", token="s3cret")
    try:
        assert await _codes(server.port, {}) == [401, 401, 401]
        assert await _codes(server.port, {"Authorization": "Bearer wrong"}) == [401, 401, 401]
        assert await _codes(server.port, {"Host": f"lan-box:{server.port}",
                                          "Authorization": "Bearer s3cret"}) == [202, 404, 200]
        assert await _codes(server.port, {"X-Livebot-Token": "s3cret"}) == [202, 404, 200]
        # a token does not let another site's page in
        assert await _codes(server.port, {"X-Livebot-Token": "s3cret", "Origin": "http://evil"}) == [403, 403, 403]
    finally:
        await server.stop()


def test_a_token_is_taken_from_the_environment_only(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("http:\n  host: 0.0.0.0\n  token: t0k3n\n")
    with pytest.raises(Exception) as err:  # never in a file: an unknown key
        load_config(cfg_file, env={})
    assert "c.yaml:3:3" in str(err.value) and "token" in str(err.value)
    assert token_from_env({"LIVEBOT_HTTP_TOKEN": "e"}) == "e" and token_from_env({}) is None


@pytest.mark.parametrize("host,ok", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
                                     ("localhost", True), ("LOCALHOST.", True), ("0.0.0.0", False),
                                     ("192.168.1.5", False), ("evil.example", False), ("", False), (None, False)])
def test_what_counts_as_this_machine(host, ok):
    assert is_loopback(host) is ok
