"""Lifetime viewer totals kept between sessions in a JSON file (written atomically)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


class StoreError(ValueError):
    pass


def load_lifetime(path: str | Path) -> dict[str, dict[str, Any]]:
    """Totals from earlier sessions; a missing file is an empty start."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        data = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(f"{p}: cannot read the state file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("viewers", {}), dict):
        raise StoreError(f"{p}: not a livebot state file (expected {{\"viewers\": {{...}}}})")
    return data.get("viewers", {})


def save_lifetime(path: str | Path, viewers: dict[str, dict[str, Any]]) -> None:
    """Write to a temporary file, then rename over the old one: a crash never leaves half a file."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({"version": 1, "viewers": viewers}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
