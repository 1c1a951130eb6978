"""A real redis-server on a free loopback port for the tests of ``bot.scale``, started and stopped
by the tests themselves (the fixture ``redis_server``: import it into a test module).

Skips the tests when ``redis-server`` or the ``redis`` package is missing (see .ci/run)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class RedisServer:
    port: int
    pidfile: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("redis")
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = _free_port()
        pidfile = folder / f"redis-{port}.pid"
        subprocess.run([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                        "--daemonize", "yes", "--pidfile", str(pidfile), "--dir", str(folder),
                        "--logfile", str(folder / f"redis-{port}.log")], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return RedisServer(port, pidfile)
            except OSError:
                time.sleep(0.02)
        stop_redis(RedisServer(port, pidfile))  # lost the port to someone else: try another
    raise RuntimeError("could not start redis-server")


def stop_redis(server: RedisServer) -> None:
    try:
        pid = int(server.pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    stop_redis(server)
