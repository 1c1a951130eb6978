"""The asyncio shell around the engine: pump a source into it and its actions into sinks.

In replay the clock is the events' own time. Pacing (``speed``) only decides how long to
sleep between virtual moments; the order of work never depends on it, so a replay at any
speed fires exactly the same actions at the same virtual times.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from dataclasses import dataclass, field

from bot.actions.dispatcher import Dispatcher
from bot.actions.model import Action
from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.events.formats.common import lossy
from bot.sources.replay import ReplaySource


def tune_gc() -> None:
    """For a process that runs the bot: events are short-lived and acyclic, so the cyclic garbage
    collector mostly scans live state for nothing. Freeze what is loaded (rules, templates) and
    collect less often. Called by the ``livebot`` command, not on import."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


class Pacer:
    """Maps virtual time onto the wall clock at ``speed`` × real time."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._anchor: tuple[int, float] | None = None

    async def wait_until(self, virtual_ms: int) -> None:
        loop = asyncio.get_running_loop()
        if self._anchor is None:
            self._anchor = (virtual_ms, loop.time())
            return
        v0, w0 = self._anchor
        delay = (virtual_ms - v0) / 1000 / self.speed - (loop.time() - w0)
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class ReplayResult:
    read: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    lossy: int = 0  # events decoded without a field their kind is expected to carry (see bot.events.wire)
    duplicates: int = 0
    streaks_flushed: int = 0
    rule_errors: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # by rule id
    chat: Counter[str] = field(default_factory=Counter)  # the chat budget: queued, merged, dropped...

    def summary(self) -> str:
        """One line: events read by type, actions by rule, malformed lines skipped."""
        events = ", ".join(f"{t} {n}" for t, n in self.read.most_common())
        actions = ", ".join(f"{r} {n}" for r, n in self.actions.most_common())
        return (f"events read: {sum(self.read.values())} ({events}); "
                f"actions: {sum(self.actions.values())} ({actions or 'none'}); "
                f"malformed lines skipped: {self.malformed}; lossy events: {self.lossy}; duplicates dropped: {self.duplicates}; "
                f"streaks flushed: {self.streaks_flushed}; rule errors: {self.rule_errors}"
                + ("; chat budget: " + ", ".join(f"{k} {v}" for k, v in sorted(self.chat.items())) if self.chat else ""))


async def replay(source: ReplaySource, engine: Engine, dispatcher: Dispatcher,
                 speed: float | None = None) -> ReplayResult:
    """Replay ``source`` through ``engine``; ``speed`` None means as fast as possible."""
    clock = VirtualClock()
    pacer = Pacer(speed) if speed else None
    lossy_before = lossy()
    sent: Counter[str] = Counter()

    async def dispatch(actions: list[Action]) -> None:
        if actions:
            sent.update(a.rule for a in actions)
            await dispatcher.dispatch(actions)

    out: list[Action] = []
    feed = engine.feed
    async for batch in source.batches():
        if pacer is None:  # as fast as possible: the same calls, without the waiting
            for ev in batch:
                acts = feed(ev, clock.set(ev.ts if ev.received is None else ev.received))
                if acts:
                    out += acts
        else:
            for ev in batch:
                now = clock.set(ev.ts if ev.received is None else ev.received)
                while (due := engine.next_deadline()) is not None and due <= now:
                    await pacer.wait_until(due)
                    await dispatch(engine.advance(due))
                await pacer.wait_until(now)
                await dispatch(feed(ev, now))
        await dispatch(out)
        out = []
    for action in engine.close():  # what was still open ends at its own time
        if pacer is not None:
            await pacer.wait_until(action.ts)
        await dispatch([action])
    return ReplayResult(
        read=source.read,
        malformed=source.malformed,
        lossy=lossy() - lossy_before,
        duplicates=engine.counters["duplicates"],
        streaks_flushed=engine.streaks.flushed,
        rule_errors=engine.counters["rule_errors"],
        actions=sent,
        chat=Counter(engine.budget.counters),
    )
