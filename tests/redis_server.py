"""A real redis-server on a free loopback port for the tests of ``bot.scale``, started and stopped
by the tests themselves (the fixture ``redis_server``: import it into a test module), or one per test
with a client (``redis_running``); ``running`` runs a coroutine as a task for the length of a block.

Skips the tests when ``redis-server`` or the ``redis`` package is missing (see .ci/run)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import asynccontextmanager
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


def _launch(binary: str, port: int, pidfile: Path, aof: bool = False) -> None:
    """A daemonized redis-server on ``port``, its files beside ``pidfile``. Nothing is kept on
    disk, unless ``aof``: then every write is fsynced to the append-only file before it is
    acknowledged, so a restart in the same folder (even after SIGKILL) keeps it all."""
    folder = pidfile.parent
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
    subprocess.run([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", *persistence,
                    "--daemonize", "yes", "--pidfile", str(pidfile), "--dir", str(folder),
                    "--logfile", str(folder / f"redis-{port}.log")], check=True)


def _answers(port: int, timeout: float = 10.0) -> bool:
    """Whether a redis-server answers PING on ``port`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            time.sleep(0.02)
    return False


def start_redis(folder: Path, aof: bool = False) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("redis")
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = _free_port()
        pidfile = folder / f"redis-{port}.pid"
        _launch(binary, port, pidfile, aof)
        if _answers(port):
            return RedisServer(port, pidfile)
        stop_redis(RedisServer(port, pidfile))  # lost the port to someone else: try another
    raise RuntimeError("could not start redis-server")


def _signal_and_wait(server: RedisServer, sig: int) -> bool:
    """Send ``sig``; True once the process is gone (within 10 s), or was gone already."""
    try:
        pid = redis_pid(server)
        os.kill(pid, sig)
    except (OSError, ValueError):
        return True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def stop_redis(server: RedisServer) -> None:
    if not _signal_and_wait(server, signal.SIGTERM):
        _signal_and_wait(server, signal.SIGKILL)


def restart_redis(server: RedisServer, aof: bool = False) -> None:
    """A redis-server again on a killed one's port and folder: empty, or with ``aof`` what the
    append-only file kept. Returns once it answers."""
    _launch(shutil.which("redis-server"), server.port, server.pidfile, aof)
    if not _answers(server.port):
        raise RuntimeError(f"redis-server did not come back on port {server.port}")


def kill_redis(server: RedisServer) -> None:
    """SIGKILL, as a crash: nothing is flushed; returns once the process is gone."""
    _signal_and_wait(server, signal.SIGKILL)
    server.pidfile.unlink(missing_ok=True)


def redis_pid(server: RedisServer) -> int:
    return int(server.pidfile.read_text().strip())


@asynccontextmanager
async def redis_running(folder: Path, password: str | None = None):
    """A redis-server of its own in ``folder`` and a ``redis.asyncio`` client of it, yielded as
    ``(server, client)``; on the way out, however the block ends, the client is closed (with a hang
    guard) and the server stopped. With ``password``, the server requires it and the client gives it."""
    server = start_redis(folder)
    client = None
    try:
        import redis.asyncio as redis_asyncio  # present: start_redis skipped the test otherwise

        url = server.url
        if password is not None:
            admin = redis_asyncio.from_url(server.url)
            try:
                await admin.config_set("requirepass", password)
            finally:
                await admin.aclose()
            url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        client = redis_asyncio.from_url(url)
        yield server, client
    finally:
        try:
            if client is not None:
                await asyncio.wait_for(client.aclose(), 60.0)
        finally:
            stop_redis(server)


@asynccontextmanager
async def running(coro, stop: asyncio.Event | None = None):
    """``coro`` as a task for the length of the block, yielded; on the way out, however the block
    ends, ``stop`` is set and the task, if it has not finished, cancelled and waited for."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        if stop is not None:
            stop.set()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    stop_redis(server)
