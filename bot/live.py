"""The live shell: sources push into a bounded queue; the engine runs on the wall clock.

Each event's engine time is when it reached us (``Event.received``, stamped as it is queued,
never going backwards). The recorder writes that time with the event, so replaying a recorded
session fires exactly the actions the live run fired. Timers and other deadlines fire when
nothing is waiting in the queue, so they never overtake an event that arrived before them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import structlog

from bot.actions.dispatcher import ActionDispatcher
from bot.actions.model import Action
from bot.clock import Clock, WallClock
from bot.engine.core import Engine
from bot.control.metrics import Latency
from bot.engine.rules import RuleSet
from bot.events.model import CONNECT, DISCONNECT, LIVE_END, Event
from bot.sources.queue import EventQueue, stamp  # noqa: F401 - stamp is what sources call
from bot.sources.recorder import Recorder
from bot.store.keeper import StateKeeper

log = structlog.get_logger("bot.live")
action_log = structlog.get_logger("bot.actions")
IDLE_WAKE_S = 0.25  # how often the loop looks at stop requests and the recorder's flush clock


class LiveSource(Protocol):
    name: str

    async def run(self, queue: EventQueue, clock: Clock, stop: asyncio.Event) -> None: ...


@dataclass
class LiveResult:
    events: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)  # by rule
    action_kinds: Counter[tuple[str, str]] = field(default_factory=Counter)  # by (rule, kind)
    shed: Counter[str] = field(default_factory=Counter)


class LiveRunner:
    def __init__(self, sources: Sequence[LiveSource], engine: Engine, dispatcher: ActionDispatcher, *,
                 clock: Clock | None = None, recorder: Recorder | None = None, queue: EventQueue | None = None,
                 keeper: StateKeeper | None = None, batch: int = 256,
                 on_stream_end: Callable[[Path | None], None] | None = None) -> None:
        self.sources = list(sources)
        self.engine = engine
        self.dispatcher = dispatcher
        self.clock = clock or WallClock()
        self.recorder = recorder
        self.queue = queue or EventQueue()
        self.keeper = keeper
        self.batch = batch
        self.on_stream_end = on_stream_end  # called with the stream's recording (None: not recorded)
        self.stop = asyncio.Event()
        self.result = LiveResult()
        self.latency = Latency()
        self.connected: dict[str, bool] = {}  # by source name, from connect/disconnect events
        self.last_event_at: float | None = None  # monotonic time of the last viewer event
        self.heartbeat = time.monotonic()  # the loop's last turn (a stalled loop fails /healthz)
        self._last = 0

    def _time(self, ev: Event) -> int:
        t = ev.received if ev.received is not None else self.clock.now()
        t = max(t, self._last)
        ev.received = self._last = t
        return t

    async def _handle(self, batch: list[Event], record: bool = True) -> None:
        out: list[Action] = []
        for ev in batch:
            now = self._time(ev)
            self.result.events[ev.type] += 1
            if ev.type == CONNECT or ev.type == DISCONNECT:
                self.connected[str(ev.data.get("source", ""))] = ev.type == CONNECT
            else:
                self.last_event_at = time.monotonic()
            if record and self.recorder is not None:
                self.recorder.write(ev)
            out += self.engine.feed(ev, now)
            if ev.type == LIVE_END:
                out += self._end_stream(now)
        if not len(self.queue):  # nothing arrived before now is still waiting: deadlines may fire
            self._last = max(self._last, self.clock.now())
            out += self.engine.advance(self._last)
        await self._dispatch(out)
        if batch:
            done = self.clock.now()
            for ev in batch:
                self.latency.observe(max(0, done - ev.received) / 1000)  # type: ignore[operator]
        if self.keeper is not None:
            self.keeper.tick(self.engine, self._last)

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in reloaded rules; the stream's state is kept."""
        self.engine.replace_rules(rules, self._last)

    def _end_stream(self, now: int) -> list[Action]:
        """The stream ended: what was open ends too (as at the end of a replay of its recording),
        and the next stream starts with fresh session state (lifetime totals carried over)."""
        out = self.engine.close()
        if self.on_stream_end is not None:
            self.on_stream_end(self.recorder.files[-1] if self.recorder is not None and self.recorder.files else None)
        if self.keeper is not None:
            self.engine = self.keeper.finish(self.engine, now, self.result.actions)
        else:
            self.engine = self.engine.fresh(self.engine.state.lifetime_snapshot())
        return out

    async def _dispatch(self, actions: list[Action]) -> None:
        if actions:
            self.result.actions.update(a.rule for a in actions)
            self.result.action_kinds.update((a.rule, a.kind) for a in actions)
            for a in actions:
                action_log.info("action", rule=a.rule, kind=a.kind, user=a.user, event_id=a.event_id)
            await self.dispatcher.dispatch(actions)

    async def run(self) -> LiveResult:
        """Run until ``stop`` is set or every source has finished; then drain and close."""
        if self.keeper is not None:
            self.engine = self.keeper.open(self.engine, self.clock.now())
        tasks = [asyncio.create_task(src.run(self.queue, self.clock, self.stop), name=src.name)
                 for src in self.sources]
        try:
            while not self.stop.is_set() and not all(t.done() for t in tasks):
                due = self.engine.next_deadline()
                wait = IDLE_WAKE_S if due is None else min(IDLE_WAKE_S, max(0.0, (due - self.clock.now()) / 1000))
                batch = await self.queue.get(timeout=wait, limit=self.batch)
                self.heartbeat = time.monotonic()
                await self._handle(batch)
                if self.recorder is not None:
                    self.recorder.tick()
        finally:
            self.stop.set()
            for t in tasks:
                if not t.done():
                    t.cancel()
            for t in tasks:
                try:
                    await t
                except asyncio.CancelledError:
                    pass
                except Exception as exc:  # a source that crashed is reported, the rest still drains
                    log.error("source_failed", source=t.get_name(), error=f"{type(exc).__name__}: {exc}")
            await self._drain()
        return self.result

    async def _drain(self) -> None:
        while len(self.queue):
            await self._handle(self.queue.get_nowait(self.batch))
        # A last event marks when the session ended, so a replay of the recording ends there too
        # (unless the stream's file was already closed by its live_end: no file for it alone).
        end = Event(DISCONNECT, self.clock.now(), data={"source": "livebot", "reason": "shutdown"})
        await self._handle([end], record=self.recorder is not None and self.recorder.is_open)
        await self._dispatch(self.engine.close())
        if self.keeper is not None:  # the stream goes on without us: keep its state for a restart
            self.keeper.save(self.engine, self._last)
        self.result.shed = Counter(self.queue.shed)
        if self.recorder is not None:
            self.recorder.close()
