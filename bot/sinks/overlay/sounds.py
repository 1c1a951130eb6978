"""Sound alerts: files from one configured folder, served by the overlay server and played by the
page one at a time.

- A ``sound`` action's text is a file name in the folder (``- sound: rose.mp3`` in a rule, a tier's
  ``do``, or the engine's per-gift sounds from ``settings: sounds: gifts:``). Only plain names are
  served: letters, digits, ``_ - . space``, one of the audio extensions below, no folders, no
  ``..``, no symbolic link out of the folder; at most ``max_bytes``; with its content type.
- Limits (on the action's own time, so a replay limits as the live run did): at most ``per_minute``
  sounds in any minute, one per viewer every ``user_gap_ms`` — a streak of 99 roses is one sound,
  and a crowd cannot make a wall of noise. The page plays them one at a time (a short queue) at
  ``volume`` (0–1, times the action's ``data.volume`` if it gives one).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.actions.model import Action
from bot.sinks.overlay.tts import TtsLimiter

CONTENT_TYPES = {".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
                 ".wav": "audio/wav", ".m4a": "audio/mp4", ".aac": "audio/aac", ".webm": "audio/webm",
                 ".flac": "audio/flac"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")
DEFAULT_MAX_BYTES = 5 << 20


def plain_name(name: str) -> bool:
    """A file name we serve: plain, no folder, no '..', a known audio extension."""
    return bool(NAME.match(name)) and ".." not in name and Path(name).suffix.lower() in CONTENT_TYPES


class SoundBoard:
    def __init__(self, folder: str | Path, *, volume: float = 0.8, per_minute: int = 10, user_gap_ms: int = 10_000,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.volume = min(1.0, max(0.0, volume))
        self.max_bytes = max_bytes
        self.limiter = TtsLimiter(per_minute, user_gap_ms)
        self.counters: Counter[str] = Counter()  # sounds: played, missing, bad_name, too_big; served, refused

    def _file(self, name: str) -> Path | None:
        """The file for ``name`` inside the folder, or None (not plain, missing, or leaving the folder)."""
        if not plain_name(name):
            return None
        try:
            root = self.folder.resolve(strict=True)
            path = (root / name).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if path.parent != root or not path.is_file():
            return None
        return path

    def check(self, action: Action) -> Action | None:
        """A ``sound`` action ready for the page (``data``: name, volume), or None: dropped, counted."""
        name = action.text.strip()
        if not plain_name(name):
            self.counters["bad_name"] += 1
            return None
        path = self._file(name)
        if path is None:
            self.counters["missing"] += 1
            return None
        if path.stat().st_size > self.max_bytes:
            self.counters["too_big"] += 1
            return None
        if not self.limiter.allow(action.user, action.ts):
            self.counters["limited"] += 1
            return None
        scale = action.data.get("volume", 1)
        scale = scale if isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 <= scale <= 1 else 1
        self.counters["played"] += 1
        return Action(action.ts, "sound", name, action.rule, action.user, action.event_id,
                      {"name": name, "volume": round(self.volume * scale, 3)})

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """``GET {prefix}/sounds/{name}``."""
        name = request.match_info.get("name", "")
        path = self._file(name)
        if path is None:
            self.counters["refused"] += 1
            raise web.HTTPNotFound(text="no such sound")
        if path.stat().st_size > self.max_bytes:
            self.counters["refused"] += 1
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_bytes, actual_size=path.stat().st_size)
        self.counters["served"] += 1
        return web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[path.suffix.lower()],
                                               "X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=60"})

    def stats(self) -> dict[str, int]:
        return {**{f"sound_{k}": v for k, v in self.counters.items()},
                **{f"sound_{k}": v for k, v in self.limiter.counters.items() if k != "allowed"}}


def sound_message(action: Action) -> dict[str, Any] | None:
    """The page message for a checked ``sound`` action."""
    name = action.data.get("name")
    volume = action.data.get("volume")
    if not isinstance(name, str) or not plain_name(name) or not isinstance(volume, (int, float)):
        return None
    from urllib.parse import quote

    return {"t": "sound", "src": "sounds/" + quote(name), "volume": min(1.0, max(0.0, float(volume)))}
