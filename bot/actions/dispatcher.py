"""Hand each batch of actions to every sink; one failing sink never stops the others."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import structlog

from bot.actions.model import Action
from bot.sinks.base import Sink

log = structlog.get_logger("bot.dispatcher")


class Dispatcher:
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.sent: Counter[str] = Counter()  # actions delivered, by sink
        self.failed: Counter[str] = Counter()  # actions a sink raised on, by sink

    async def dispatch(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        for sink in self.sinks:
            try:
                await sink.send(actions)
                self.sent[sink.name] += len(actions)
            except Exception as exc:
                self.failed[sink.name] += len(actions)
                log.error("sink_failed", sink=sink.name, actions=len(actions), error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:
                log.error("sink_close_failed", sink=sink.name, error=f"{type(exc).__name__}: {exc}")
