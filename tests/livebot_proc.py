"""``livebot run`` as a real subprocess for tests: write its config, start it.

    proc = await start_livebot(write_run_config(tmp_path, feed.url, RULES))
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


def write_run_config(tmp: Path, url: str, rules: str, *, console: bool = False, extra: str = "") -> Path:
    """``rules.yaml`` and ``config.yaml`` in ``tmp``: a WebSocket source at ``url`` (``extra`` is added
    under ``source:``), actions to ``actions.jsonl``, recordings in ``sessions/``, HTTP on a free port."""
    (tmp / "rules.yaml").write_text(rules)
    cfg = tmp / "config.yaml"
    cfg.write_text(f"rules: rules.yaml\nsinks:\n  console: {'true' if console else 'false'}\n  jsonl: actions.jsonl\n"
                   f"source:\n  type: websocket\n  websocket:\n    url: {url}\n{extra}"
                   f"record:\n  folder: sessions\nhttp:\n  port: 0\n")
    return cfg


async def start_livebot(cfg: Path) -> asyncio.subprocess.Process:
    """``python -m bot --log-json run -c cfg``, unbuffered, stdout and stderr piped."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "--log-json", "run", "-c", str(cfg),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
