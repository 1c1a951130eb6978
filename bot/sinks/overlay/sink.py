"""The overlay as a sink: actions go to the page; text-to-speech is rate-limited here first."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

from bot.actions.model import Action
from bot.actions.pacing import Pacing
from bot.sinks.overlay.server import OverlayServer
from bot.sinks.overlay.tts import TtsLimiter


class OverlaySink:
    """Send actions to the overlay page (gift alerts, shout-outs, polls, board, banner, speech).

    ``server``: an ``OverlayServer`` (e.g. one mounted on a shared application); when None, one
    is made from ``server_options`` (``host``, ``port``, ``css``, ...). ``start``/``close`` start
    and stop that server. ``tts_per_minute`` and ``tts_user_gap_ms`` limit ``tts`` actions (see
    ``TtsLimiter``); ``tts_max_chars`` shortens long lines. ``alert_gap_s``: the live dispatcher
    shows alerts and shout-outs one at a time, this far apart (biggest first in a burst).
    """

    name = "overlay"
    live_only = True
    live_only_why = "the overlay shows actions live"

    def __init__(self, server: OverlayServer | None = None, *, tts_per_minute: int = 6,
                 tts_user_gap_ms: int = 30_000, tts_max_chars: int = 200, alert_gap_s: float = 4.0,
                 sounds: Any = None, **server_options: Any) -> None:
        if server is not None and server_options:
            raise TypeError("give either a server or its options, not both")
        self.server = server or OverlayServer(sounds=sounds, **server_options)
        self.sounds = sounds if sounds is not None else self.server.sounds  # sound alerts (sounds.py)
        self.tts = TtsLimiter(tts_per_minute, tts_user_gap_ms)
        self.tts_max_chars = tts_max_chars
        self.pacing = Pacing(min_gap=alert_gap_s, kinds=frozenset({"alert", "shoutout"}))
        self.counters: Counter[str] = Counter()  # shown (page messages), tts_empty
        self.kinds = self.server.state.kinds  # what the page shows: the dispatcher hands over only these

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    async def send(self, actions: Sequence[Action]) -> None:
        kept = [self._tts(a) if a.kind == "tts" else self._sound(a) if a.kind == "sound" else a for a in actions]
        self.counters["shown"] += self.server.show([a for a in kept if a is not None])

    def _tts(self, action: Action) -> Action | None:
        """A ``tts`` action within the limits (shortened if long), or None: dropped and counted."""
        if not action.text.strip():
            self.counters["tts_empty"] += 1
            return None
        if not self.tts.allow(action.user, action.ts):
            return None
        if len(action.text) > self.tts_max_chars:
            return replace(action, text=action.text[: self.tts_max_chars - 1] + "…")
        return action

    def _sound(self, action: Action) -> Action | None:
        """A ``sound`` action checked (a file in the folder) and within the limits, or None."""
        if self.sounds is None:
            self.counters["sound_off"] += 1
            return None
        return self.sounds.check(action)

    def stats(self) -> dict[str, int]:
        """Everything counted: page messages, speech allowed and dropped, connections, evictions."""
        return {**self.counters, **{f"tts_{k}": v for k, v in self.tts.counters.items()},
                **self.server.counters, **(self.sounds.stats() if self.sounds is not None else {})}

    async def close(self) -> None:
        await self.server.stop()
