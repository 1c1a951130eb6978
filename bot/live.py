"""The live shell: sources push into a bounded queue; the engine runs on the wall clock.

Each event's engine time is when it reached us (``Event.received``, stamped as it is queued,
never going backwards). The recorder writes that time with the event, so replaying a recorded
session fires exactly the actions the live run fired. Timers and other deadlines fire when
nothing is waiting in the queue, so they never overtake an event that arrived before them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import structlog

from bot.actions.dispatcher import ActionDispatcher
from bot.actions.model import Action
from bot.clock import Clock, WallClock
from bot.engine.core import Engine
from bot.control.metrics import Latency
from bot.engine.rules import RuleSet
from bot.events.model import CONNECT, DISCONNECT, LIVE_END, Event
from bot.sinks.console import ConsoleSink
from bot.sources.queue import EventQueue, stamp  # noqa: F401 - stamp is what sources call
from bot.livecounts import ProcessCounts
from bot.sources.recorder import Recorder
from bot.sources.replay import ReplaySource
from bot.store.keeper import StateKeeper

log = structlog.get_logger("bot.live")
action_log = structlog.get_logger("bot.actions")
IDLE_WAKE_S = 0.25  # how often the loop looks at stop requests and the recorder's flush clock


def _elapsed_ms() -> int:
    """Real time passing (ms): CLOCK_BOOTTIME, which also counts a suspended machine, where there is one."""
    return time.clock_gettime_ns(_ELAPSED) // 1_000_000


_ELAPSED = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
STEP_MS = 1000  # the wall clock moving this much more (or less) than real time between two readings: a step


class LiveClock:
    """The live shell's clock: wall time (ms) that never goes back and is never stepped.

    ``wall`` gives the time (the system's wall clock by default); ``elapsed`` (ms, default
    CLOCK_BOOTTIME) tells real time passing from the wall clock being *stepped* (NTP, a restored
    VM, someone setting the clock). A step either way is absorbed: time goes on from where it was
    at the real pace, so streak flushes, cooldowns and timers neither stand still nor fire in a
    burst, and a gift streak in progress is not cut in two. The offset stays for the rest of
    the process. Real time passing (a suspended machine, a stalled loop) moves it on.
    With ``elapsed=None`` (a virtual clock, in tests and benchmarks) only steps back are absorbed.
    Sources are given this clock, so receive times, engine time and the recording agree; other
    attributes (a ``VirtualClock``'s ``set``) are the wrapped clock's.
    """

    def __init__(self, wall: Clock | None = None, elapsed: Callable[[], int] | None = _elapsed_ms) -> None:
        self.wall = wall or WallClock()
        self.elapsed = elapsed
        self.offset = 0  # ms added to the wall clock: the steps absorbed
        self.steps = 0
        self._prev: tuple[int, int] | None = None  # the last (wall, elapsed) readings
        self._out = 0

    def now(self) -> int:
        w = self.wall.now()
        e = self.elapsed() if self.elapsed is not None else 0
        if self._prev is not None:
            dw = w - self._prev[0]
            real = e - self._prev[1] if self.elapsed is not None else max(dw, 0)
            if abs(dw - real) >= STEP_MS or (dw < 0 and self.elapsed is None):
                self.offset += real - dw
                self.steps += 1
                log.warning("clock_stepped", by_ms=dw - real, offset_ms=self.offset, steps=self.steps)
        self._prev = (w, e)
        t = w + self.offset
        if t < self._out:  # a step smaller than STEP_MS back: hold still until it has passed
            t = self._out
        self._out = t
        return t

    def __getattr__(self, name: str):
        if name == "wall":  # (not set yet)
            raise AttributeError(name)
        return getattr(self.wall, name)


JUMP_MS = 1000  # engine time moving more than this between two steps: a clock jump or a stalled loop


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
        self._console = any(isinstance(s, ConsoleSink) for s in getattr(dispatcher, "sinks", ()))
        # A clock given as-is (a virtual one) is only kept from going back; see LiveClock.
        self.clock = clock if isinstance(clock, LiveClock) else LiveClock(clock, elapsed=None) if clock else LiveClock()
        self.recorder = recorder
        self.queue = queue or EventQueue()
        self.keeper = keeper
        self.batch = batch
        self.on_stream_end = on_stream_end  # called with the stream's recording (None: not recorded)
        self.stop = asyncio.Event()
        self.result = LiveResult()
        self.latency = Latency()
        self.counts = ProcessCounts()  # engine and chat budget counters over the process, across stream ends
        self.connected: dict[str, bool] = {}  # by source name, from connect/disconnect events
        self.last_event_at: float | None = None  # monotonic time of the last viewer event
        self.heartbeat = time.monotonic()  # the loop's last turn (a stalled loop fails /healthz)
        self._last = 0
        self.skipped_periods = 0  # timer periods not fired twice after a jump (see _skip_missed_periods)
        self.caught_up = 0  # events fed again from the recording at start (see _catch_up)
        self._saved_file: Path | None = None  # the recording file the last snapshot named
        self._final: dict[str, Any] | None = None  # what the last save at shutdown kept beside the state
        self._catching_up: tuple[str, int] | None = None
        self._ended = False  # a stream's live_end was handled and the next stream has not begun
        self._held_connect: Event | None = None  # the connect that will begin the next stream

    def _time(self, ev: Event) -> int:
        t = ev.received if ev.received is not None else self.clock.now()
        ev.received = t = self._move_to(t)
        return t

    def _move_to(self, t: int) -> int:
        """Engine time: ``t``, never going backwards."""
        if t > self._last + JUMP_MS and self._catching_up is None:  # (a catch-up fires every period, as live did)
            self._skip_missed_periods(t)
        if t > self._last:
            self._last = t
        return self._last

    def _skip_missed_periods(self, now: int) -> None:
        """Time jumped: a timer that missed several periods fires once (live, the loop wakes at
        least every ``IDLE_WAKE_S``, so a timer can only miss periods in a jump)."""
        skipped = self.engine.skip_missed_periods(now)
        if skipped:
            self.skipped_periods += skipped
            log.warning("timer_periods_skipped", periods=skipped, jump_ms=now - self._last)

    async def _handle(self, batch: list[Event], record: bool = True) -> None:
        out: list[Action] = []
        for ev in batch:
            if self._ended:  # between two streams: connection events are not a stream
                if ev.type == CONNECT or ev.type == DISCONNECT or ev.type == LIVE_END:
                    self._between_streams(ev)
                    continue
                self._ended = False  # the next stream's first event (after its connect, if one is up)
                held, self._held_connect = self._held_connect, None
                if held is not None:
                    self._one(held, record, out)
            self._one(ev, record, out)
        if self._catching_up is not None:  # as a replay: deadlines fire by the events' own time
            out += self.engine.advance(self._last)
        elif self._ended:  # no stream: nothing is due (timers start with the next stream)
            pass
        elif not len(self.queue):  # nothing arrived before now is still waiting: deadlines may fire
            out += self.engine.advance(self._move_to(self.clock.now()))
        if record and batch and self.recorder is not None:
            # In the file before their actions go out: after a crash, everything a thank-you was
            # sent for is there for the restart to catch up with (one write per batch).
            self.recorder.flush()
        await self._dispatch(out)
        if batch and self._catching_up is None:  # (events fed again from the recording are old)
            done = self.clock.now()
            for ev in batch:
                self.latency.observe(max(0, done - ev.received) / 1000)  # type: ignore[operator]
        if self.keeper is not None:
            new_file = self.recorder is not None and self.recorder.is_open and self.recorder.path != self._saved_file
            if new_file or self.keeper.due(self._last):
                # The sinks first: a saved state must not cover a gift whose thank-you is still in a
                # sink's queue, or a SIGKILL right after the save loses it (a restart drops the
                # backlog's copy as a duplicate). The loop may not have yielded for many batches;
                # one turn lets every sink that writes at once (console, JSONL) write what it was
                # given. A slow or paced one (a webhook, overlay alerts) may still be sending.
                await asyncio.sleep(0)
            if new_file:
                # A new recording file: save now, so the snapshot names it (a restart catches up
                # from the file the snapshot names, and this process's events are in this one).
                if self.keeper.save(self.engine, self._last, self._saved_beside()):
                    self._saved_file = self.recorder.path  # type: ignore[union-attr]
            else:
                self.keeper.tick(self.engine, self._last, self._saved_beside)

    def _one(self, ev: Event, record: bool, out: list[Action]) -> None:
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

    def _between_streams(self, ev: Event) -> None:
        """A connection event after a stream's ``live_end`` and before the next stream's first
        event: counted and shown (``/healthz``), but neither recorded nor fed to the rules, so a
        source polling for the next live (or reconnecting) opens no recording of its own, starts no
        session (no shutdown marker, no timers) and ends nothing twice. The last ``connect`` of a
        connection still up is kept, and begins the next stream when it comes."""
        self.result.events[ev.type] += 1
        if ev.type == LIVE_END:  # that stream is over already
            log.info("live_end_between_streams", source=ev.data.get("source", ""))
            return
        self.connected[str(ev.data.get("source", ""))] = ev.type == CONNECT
        self._held_connect = ev if ev.type == CONNECT else None

    def _saved_beside(self) -> dict[str, Any]:
        """What a snapshot keeps beside the engine's state, for ``_resume`` after a crash: where the
        recording stands just past the last event handled, and what the sinks have yet to deliver."""
        pending = getattr(self.dispatcher, "pending", None)
        if self._catching_up is not None:
            recording = self._catching_up
        else:
            recording = self.recorder.position() if self.recorder is not None else None
        return {"recording": recording, "pending": pending() if pending is not None else None}

    async def _resume(self) -> None:
        """The stream's state is back from its snapshot: hand the sinks again what they had not
        delivered when it was saved, then catch up with the recording."""
        assert self.keeper is not None
        pending = self.keeper.resume_pending
        requeue = getattr(self.dispatcher, "requeue", None)
        if pending and requeue is not None:
            log.info("requeued", actions=requeue(pending), sinks=sorted(pending))
        if self.keeper.stale_pending and requeue is not None:  # too late to say: kept, not lost
            requeue(self.keeper.stale_pending, stale=True)
            log.warning("stale_actions_dead_lettered", sinks=sorted(self.keeper.stale_pending))
        bury = getattr(self.dispatcher, "bury", None)
        if self.keeper.stale_actions and bury is not None:
            bury(self.keeper.stale_actions, "stale", "the stream was over when the bot came back")
            log.warning("stale_stream_closed", actions=len(self.keeper.stale_actions))
        await self._catch_up()

    async def _catch_up(self) -> None:
        """After a restart: feed the engine what the stream's recording holds past the resumed
        snapshot, the events the last process handled after its last save (a kill loses at most
        the recorder's last flush). Their actions go to the dispatcher, whose journal keeps the
        sinks from sending again what they delivered before; the source's reconnect backlog then
        finds these events known and drops them as duplicates."""
        found = self.keeper.resume_recording if self.keeper is not None else None
        if found is None:
            return
        path, offset = found
        if not os.path.isfile(path):  # (gone, or not a plain file: /dev/zero would never end)
            log.warning("catch_up_unreadable", path=path, error="not a file")
            return
        if self.recorder is not None and self.recorder.resume(path):
            self._saved_file = self.recorder.path or Path(path)  # (the snapshot names it already)
        caught = 0
        batch: list[Event] = []
        source = ReplaySource(path)  # (as a replay reads it: a cut or malformed line is logged, counted, skipped)
        end: int | None = offset
        try:
            for events, end in source.lines_from(offset):
                batch += events
                if len(batch) >= self.batch:
                    caught += len(batch)
                    self._catching_up = (path, end)  # (for a snapshot saved meanwhile: past this line)
                    await self._handle(batch, record=False)
                    batch = []
        except (OSError, ValueError) as exc:
            log.warning("catch_up_unreadable", path=path, error=str(exc))
            end = None
        if batch and end is not None:
            caught += len(batch)
            self._catching_up = (path, end)
            await self._handle(batch, record=False)
        self._catching_up = None
        self.caught_up = caught
        log.info("caught_up", path=path, events=caught, malformed=source.malformed)

    def save_after_dispatch(self) -> None:
        """Call once the dispatcher has closed: what it could not deliver by then is in the
        dead-letter file, so the last snapshot stops listing it as pending (a restart would send
        it, and ``livebot resend`` again) — except for the live-only sinks (overlay, console,
        chat), which resend leaves alone: their alerts go out after the restart; and except when
        there is no dead-letter file (or it failed): then all of it goes out after the restart.
        Until then everything was listed, for a kill during the drain."""
        if self.keeper is not None and self._final is not None:
            pending = self._final.get("pending") or {}
            dead = getattr(self.dispatcher, "dead_letter", None)
            if dead is not None and dead.path is not None and not dead.write_errors:  # resend has the rest
                live_only = getattr(self.dispatcher, "live_only", frozenset())  # the sinks' own ``live_only``
                pending = {k: v for k, v in pending.items() if k in live_only}
            self.keeper.save(self.engine, self._last, {**self._final, "pending": pending or None})

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in reloaded rules; the stream's state is kept."""
        self.engine.replace_rules(rules, self._last)

    def _end_stream(self, now: int) -> list[Action]:
        """The stream ended: what was open ends too (as at the end of a replay of its recording),
        and the next stream starts with fresh session state (lifetime totals carried over). Chat
        lines the budget still holds are dead-lettered (``shutdown``): the stream they were for is
        over, and sending them all at once would flood the chat."""
        out, held = self.engine.close_live(now)
        self._bury_held(held, "the stream ended (live_end) with these chat lines still held by the chat budget")
        self.counts.ended(self.engine)
        if self._catching_up is not None:  # the stream ended before the crash: its file is done
            recording: Path | None = Path(self._catching_up[0])
            if self.recorder is not None:
                self.recorder.resume(None)
        else:
            recording = self.recorder.files[-1] if self.recorder is not None and self.recorder.files else None
        self._ended = True
        if self.on_stream_end is not None:
            self.on_stream_end(recording)
        if self.keeper is not None:
            self.engine = self.keeper.finish(self.engine, now, self.result.actions)
        else:
            self.engine = self.engine.fresh(self.engine.state.lifetime_snapshot())
        return out

    def _bury_held(self, held: list[Action], why: str) -> None:
        """Chat lines the budget held at a close: dead-lettered as ``shutdown`` (logged if the
        dispatcher keeps no dead letters), never sent at once past the budget."""
        if not held:
            return
        log.warning("chat_lines_held_at_close", lines=len(held), reason="shutdown", why=why)
        bury = getattr(self.dispatcher, "bury", None)
        if bury is not None:
            bury(held, "shutdown", why)
        else:
            for a in held:
                log.warning("chat_line_not_sent", rule=a.rule, kind=a.kind, user=a.user, text=a.text)

    async def _dispatch(self, actions: list[Action]) -> None:
        self.counts.log_budget(self.engine)
        if actions:
            self.result.actions.update(a.rule for a in actions)
            self.result.action_kinds.update((a.rule, a.kind) for a in actions)
            # one line per action: the console sink prints it for a person; the log repeats it only
            # at debug then (at info without a console: the log is then the only record on a terminal)
            emit = action_log.debug if self._console else action_log.info
            for a in actions:
                emit("action", rule=a.rule, kind=a.kind, user=a.user, event_id=a.event_id)
            await self.dispatcher.dispatch(actions)

    async def run(self) -> LiveResult:
        """Run until ``stop`` is set or every source has finished; then drain and close."""
        if self.keeper is not None:
            self.engine = self.keeper.open(self.engine, self.clock.now())
            await self._resume()
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
        if self.engine.state.started is not None:  # (not after a live_end with nothing since: no stream)
            end = Event(DISCONNECT, self.clock.now(), data={"source": "livebot", "reason": "shutdown"})
            await self._handle([end], record=self.recorder is not None and self.recorder.is_open)
        if self.keeper is None:  # the session ends here: open streaks, polls and chat lines too
            # (what the budget allows by now goes out; what it still holds is dead-lettered)
            out, held = self.engine.close_live(max(self._last, self.clock.now()))
            await self._dispatch(out)
            self._bury_held(held, "livebot stopped with these chat lines still held by the chat budget")
            self.counts.log_budget(self.engine, force=True)
        else:  # the stream goes on without us: keep its state (open streaks and polls too) for a restart
            await asyncio.sleep(0)  # (the sinks first, as in _handle)
            self._final = self._saved_beside()
            self.keeper.save(self.engine, self._last, self._final)
        self.result.shed = Counter(self.queue.shed)
        if self.recorder is not None:
            self.recorder.close()
