"""Print actions for a person: one readable line per action."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Sequence, TextIO

from bot.actions.model import Action


def format_action(action: Action) -> str:
    """``19:04:12  say       thank-gift         Thanks ana for 5x Rose!`` (time in UTC)."""
    clock = datetime.fromtimestamp(action.ts / 1000, tz=timezone.utc).strftime("%H:%M:%S")
    text = action.text.replace("\n", " ")
    return f"{clock}  {action.kind:<9} {action.rule:<18} {text}"


# Actions for live displays only (the overlay's vote counts and board): not printed.
DISPLAY_KINDS = frozenset({"poll_update", "leaderboard", "goal", "timer"})  # (goal, timer: bot/engine/features.py)


class ConsoleSink:
    name = "console"
    hidden_kinds = DISPLAY_KINDS | {"sound"}  # the dispatcher leaves these out (a sound is heard on the overlay)
    live_only = True
    live_only_why = "the console shows actions live"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    async def send(self, actions: Sequence[Action]) -> None:
        lines = "".join(format_action(a) + "\n" for a in actions)
        if lines:
            self.stream.write(lines)
            self.stream.flush()

    async def close(self) -> None:
        self.stream.flush()
