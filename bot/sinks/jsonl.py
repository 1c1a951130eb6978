"""Write each action as one JSON line: ``{"ts","kind","text","rule","user","event_id","data"}``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import orjson

from bot.actions.model import Action
from bot.appendfile import end_cut_line


def dumps_action(action: Action) -> bytes:
    return orjson.dumps(action.to_dict())


class JsonlSink:
    name = "jsonl"

    def __init__(self, path: str | Path, append: bool = False) -> None:
        """``append``: keep what the file holds (the daemon: a restart must not erase its actions)."""
        self.path = Path(path)
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            end_cut_line(self.path)  # (a kill may have cut the last line of the previous run)
        self._file = open(self.path, "ab" if append else "wb")  # noqa: SIM115 - closed in close()

    async def send(self, actions: Sequence[Action]) -> None:
        if actions:
            self._file.write(b"".join(dumps_action(a) + b"\n" for a in actions))
            self._file.flush()

    async def close(self) -> None:
        if not self._file.closed:
            self._file.close()
