"""Bad input at start (issue 14, items 7 and 8): a port in use or an unwritable path is one line
naming it and where it was set, and exit status 2 — never a traceback, never a silent success."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

RULES = "rules:\n  - id: hello\n    on: chat\n    do: [{say: \"hi {{ user.nickname }}\"}]\n"


def livebot(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("livebot")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def config(tmp: Path, body: str) -> Path:
    (tmp / "rules.yaml").write_text(RULES)
    path = tmp / "config.yaml"
    path.write_text("rules: rules.yaml\n" + body)
    return path


def test_http_port_in_use_is_one_line_and_exit_2(tmp_path, busy_port):
    cfg = config(tmp_path, f"source:\n  type: webhook\n  webhook:\n    port: 0\n    allow_unsigned: true\n"
                           f"http:\n  port: {busy_port}\n")
    proc = livebot("run", "-c", str(cfg), cwd=tmp_path)
    one_line_error(proc, str(busy_port), "http.port", "in use")


def test_webhook_source_port_in_use_is_one_line_and_exit_2(tmp_path, busy_port):
    cfg = config(tmp_path, f"source:\n  type: webhook\n  webhook:\n    port: {busy_port}\n    allow_unsigned: true\n"
                           f"http:\n  port: 0\n")
    proc = livebot("run", "-c", str(cfg), cwd=tmp_path)
    one_line_error(proc, str(busy_port), "source.webhook.port", "in use")


@pytest.mark.parametrize("key,body", [
    ("--out", None),
    ("state.database", "state:\n  database: /proc/livebot-x/state.db\n"),
    ("record.folder", "record:\n  folder: /proc/livebot-x/sessions\n"),
    ("sinks.dead_letter", "sinks:\n  dead_letter: /proc/livebot-x/dead.jsonl\n"),
    ("sinks.jsonl", "sinks:\n  jsonl: /proc/livebot-x/a.jsonl\n"),
])
def test_run_with_an_unwritable_path_is_one_line_and_exit_2(tmp_path, key, body):
    base = "source:\n  type: webhook\n  webhook:\n    port: 0\n    allow_unsigned: true\nhttp:\n  port: 0\n"
    cfg = config(tmp_path, base + (body or ""))
    extra = ["--out", "/proc/livebot-x/a.jsonl"] if body is None else []
    proc = livebot("run", "-c", str(cfg), *extra, cwd=tmp_path)
    one_line_error(proc, key, "/proc/livebot-x")


def session(tmp: Path) -> Path:
    path = tmp / "s.jsonl"
    path.write_bytes(orjson.dumps({"type": "chat", "ts": 1000, "user": {"id": "1", "unique_id": "a",
                                                                         "nickname": "A"},
                                   "data": {"text": "hi"}}) + b"\n")
    return path


def test_replay_out_into_an_unwritable_place_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    proc = livebot("replay", str(session(tmp_path)), "--rules", "rules.yaml", "--out", "/proc/x/a.jsonl",
                   cwd=tmp_path)
    one_line_error(proc, "--out", "/proc/x")


def test_replay_out_into_a_missing_folder_is_refused_not_created(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    proc = livebot("replay", str(session(tmp_path)), "--rules", "rules.yaml", "--out", "nope/a.jsonl",
                   cwd=tmp_path)
    one_line_error(proc, "--out", "does not exist")
    assert not (tmp_path / "nope").exists()


def test_report_html_into_a_missing_folder_is_refused_not_created(tmp_path):
    proc = livebot("report", str(session(tmp_path)), "--html", "missing/r.html", cwd=tmp_path)
    one_line_error(proc, "--html", "does not exist")
    assert not (tmp_path / "missing").exists()


def test_report_html_into_an_existing_folder_still_works(tmp_path):
    (tmp_path / "out").mkdir()
    proc = livebot("report", str(session(tmp_path)), "--html", "out/r.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "r.html").is_file()
