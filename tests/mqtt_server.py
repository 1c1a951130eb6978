"""A real Mosquitto broker on a free loopback port for the MQTT tests, started and stopped by the
tests (as tests/redis_server.py does for Redis), with a temporary config: anonymous, or with a
password file made by ``mosquitto_passwd``. Skips when Debian's ``mosquitto`` is not installed
(scripts/test installs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


@contextmanager
def mosquitto(folder: Path, *, users: dict[str, str] | None = None, port: int | None = None) -> Iterator[int]:
    """A broker on a free port (or ``port``: a restart) yielded until the block ends; with ``users``,
    only they may connect."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; scripts/test does)")
    port = port or _free_port()
    lines = [f"listener {port} 127.0.0.1", "persistence false", "log_dest stderr"]
    if os.geteuid() == 0:
        lines.append("user root")  # (root would otherwise switch to the mosquitto user)
    if users:
        passwords = folder / "passwords"
        passwords.touch(mode=0o600)
        for name, password in users.items():
            subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", str(passwords), name,
                            password], check=True, capture_output=True)
        lines += ["allow_anonymous false", f"password_file {passwords}"]
    else:
        lines.append("allow_anonymous true")
    conf = folder / f"mosquitto-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = open(folder / f"mosquitto-{port}.log", "wb")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        if not _listening(port, proc):
            raise RuntimeError(f"mosquitto did not start: {(folder / f'mosquitto-{port}.log').read_text()[-500:]}")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
