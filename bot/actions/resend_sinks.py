"""The sinks ``livebot resend`` (``bot.actions.resend``) sends to: ``build_target`` builds the one
sink a dead-letter line names, as ``livebot run`` builds it; ``configured_names`` and
``_built_in_sinks`` tell a configured sink from a live-only one; ``_Target`` wraps a sink so a
run can wait for each send to settle, and ``_Caught`` is the dispatchers' dead-letter file kept
in memory, so a send that failed again becomes a fresh record in place of its line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Sequence

import orjson

from bot.actions.delivery import DeadLetter
from bot.actions.model import Action
from bot.config import Config
from bot.sinks.base import Sink


async def build_target(cfg: Config, name: str) -> Sink | None:
    """The sink called ``name``, built as ``livebot run`` builds it, or None if the config has none.
    Only that sink is built (no file opened, no connection made for the others)."""
    from bot.daemon import build_sinks
    from bot.sinks.jsonl import JsonlSink

    from bot.integrations import NAMES

    integrations = dataclasses.replace(cfg.integrations, **{
        other: dataclasses.replace(getattr(cfg.integrations, other), enabled=False)
        for other in NAMES if other != name})
    only = dataclasses.replace(cfg, console=False, chat_enabled=False,
                               jsonl=cfg.jsonl if name == JsonlSink.name else None,
                               webhooks=[w for w in cfg.webhooks if w.name == name], integrations=integrations)
    built = build_sinks(only)
    found = next((s for s in built if s.name == name), None)
    for other in built:
        if other is not found:
            await other.close()
    return found


def _built_in_sinks() -> tuple[type, ...]:
    """The sinks with a fixed name (what a dead-letter line names them by)."""
    from bot.sinks.chat import ChatSink
    from bot.sinks.console import ConsoleSink
    from bot.sinks.jsonl import JsonlSink
    from bot.sinks.overlay.sink import OverlaySink

    return (ConsoleSink, JsonlSink, ChatSink, OverlaySink)


def configured_names(cfg: Config) -> set[str]:
    """The names of the sinks the config gives a name of its own (webhooks, integrations)."""
    from bot.integrations import enabled_names

    return {w.name for w in cfg.webhooks} | set(enabled_names(cfg))


class _Target:
    """A sink for one resend run: ``done`` is set at the end of every send, for ``settled``."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.name = sink.name
        self.max_batch = getattr(sink, "max_batch", None)
        self.pacing = getattr(sink, "pacing", None)
        self.done = asyncio.Event()

    async def send(self, actions: Sequence[Action]) -> None:
        try:
            await self.sink.send(actions)
        finally:
            self.done.set()

    async def close(self) -> None:
        await self.sink.close()


class _Caught(DeadLetter):
    """The dispatchers' dead-letter file, caught in memory: a fresh record per failed action, by
    ``id(action)`` (one batch at a time, so this stays small)."""

    def __init__(self, targets: dict[str, _Target]) -> None:
        super().__init__(None)
        self.targets = targets
        self.records: dict[int, tuple[str, bytes]] = {}
        self.errors: dict[str, tuple[str, str, int]] = {}  # sink -> (reason, error, attempts) of its last failure

    def write(self, sink: str, actions: Sequence[Action], *, reason: str, error: str, attempts: int) -> None:
        at = time.time_ns() // 1_000_000
        for a in actions:  # the DeadLetter line format
            line = orjson.dumps({"at": at, "sink": sink, "reason": reason, "error": error, "attempts": attempts,
                                 "action": a.to_dict()}, default=str) + b"\n"
            self.records[id(a)] = (reason, line)
        self.written += len(actions)
        if reason in ("failed", "permanent"):
            self.errors[sink] = (reason, error, attempts)
        if (target := self.targets.get(sink)) is not None:
            target.done.set()
