"""Hand actions to sinks.

``Dispatcher`` (replay, tests, benchmarks): every batch to every sink in turn, awaited, in order;
one failing sink never stops the others. Deterministic and cheap.

``LiveDispatcher`` (the live runner): the same ``dispatch(actions)`` / ``close()`` interface, but
``dispatch`` only queues and returns. Each sink has its own bounded queue and worker task, so a
slow or failing sink never stalls another; a sink may be paced (``bot.actions.pacing``); a send
that raises is retried with backoff, and what cannot be delivered goes to the dead-letter file
(``bot.actions.delivery``). Every action is counted per sink.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

import structlog

from bot.actions.delivery import DeadLetter, PermanentSinkError, RetryPolicy, SinkStats
from bot.actions.journal import DeliveryJournal
from bot.actions.model import Action
from bot.actions.pacing import Pacing, SinkQueue
from bot.sinks.base import Sink, accepts, is_live_only

log = structlog.get_logger("bot.dispatcher")

__all__ = ["ActionDispatcher", "DeadLetter", "Dispatcher", "LiveDispatcher", "Pacing", "PermanentSinkError",
           "RetryPolicy", "SinkStats"]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ActionDispatcher(Protocol):
    """What the runners need: ``Dispatcher`` and ``LiveDispatcher`` both fit."""

    async def dispatch(self, actions: Sequence[Action]) -> None: ...

    async def close(self) -> None: ...


class Dispatcher:
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self._accepts = [accepts(s) for s in self.sinks]  # each sink's kinds, read once
        self.sent: Counter[str] = Counter()  # actions delivered, by sink
        self.failed: Counter[str] = Counter()  # actions a sink raised on, by sink

    async def dispatch(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        for sink, accept in zip(self.sinks, self._accepts):
            mine = actions if accept is None else [a for a in actions if accept(a)]
            if not mine:
                continue
            try:
                await sink.send(mine)
                self.sent[sink.name] += len(mine)
            except Exception as exc:
                self.failed[sink.name] += len(mine)
                log.error("sink_failed", sink=sink.name, actions=len(mine), error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:
                log.error("sink_close_failed", sink=sink.name, error=f"{type(exc).__name__}: {exc}")


Sleep = Callable[[float], Awaitable[Any]]


def _worker_done(task: asyncio.Task[None]) -> None:
    """A worker only ends by itself at close; if it died of a bug, say so now (close() still
    dead-letters what it left)."""
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        log.error("sink_worker_failed", sink=task.get_name(), error=_describe(exc))


class _Lane:
    """One sink's queue, worker and counters."""

    def __init__(self, sink: Sink, *, pacing: Pacing | None, max_queue: int, max_batch: int, retry: RetryPolicy,
                 dead: DeadLetter, clock: Callable[[], float], sleep: Sleep, rng: random.Random | None,
                 journal: DeliveryJournal | None = None) -> None:
        self.sink = sink
        self.journal = journal
        self.name = sink.name
        self.accept = accepts(sink)  # the kinds this sink shows: filtered here, once
        self.live_only = is_live_only(sink)
        self.pacing = pacing
        self.queue = SinkQueue(max_queue, pacing)
        self.max_batch = max_batch
        self.retry = retry
        self.backoff = retry.backoff(rng)
        self.dead = dead
        self.clock = clock
        self.sleep = sleep
        self.stats = SinkStats()
        self.wake = asyncio.Event()
        self.closing = False
        self.in_flight: list[Action] | None = None
        self.attempts = 0
        self.last_paced: float | None = None  # clock() when the last paced action was delivered

    # -- producer side (synchronous: dispatch never waits on a sink) -----------------------------

    def offer(self, actions: Sequence[Action]) -> None:
        if self.accept is not None:
            actions = [a for a in actions if self.accept(a)]
            if not actions:
                return
        stats = self.stats
        if self.journal is not None and self.journal.before:
            fresh = [a for a in actions if not self.journal.already_delivered(self.name, a)]
            stats.already_delivered += len(actions) - len(fresh)
            actions = fresh
            if not actions:
                return
        stats.dispatched += len(actions)
        if self.closing:
            self._dead(actions, "closed", "dispatched after close()", 0)
            return
        put = self.queue.put
        over: list[Action] = []
        for action in actions:
            if (pushed_out := put(action)) is not None:
                over.append(pushed_out)
        stats.queue_depth = len(self.queue)
        if over:
            before, stats.overflow = stats.overflow, stats.overflow + len(over)
            if before == 0 or before // 1000 != stats.overflow // 1000:  # the first, then every 1000th
                log.warning("sink_queue_full", sink=self.name, overflow_total=stats.overflow,
                            max_queue=self.queue.max_size)
            self._dead(over, "overflow", f"queue full ({self.queue.max_size} actions)", 0)
        self.wake.set()

    def _dead(self, actions: Sequence[Action], reason: str, error: str, attempts: int) -> None:
        self.stats.dead_lettered += len(actions)
        filed = self.dead.write(self.name, actions, reason=reason, error=error, attempts=attempts)
        if filed and self.journal is not None and not self.live_only:
            # Settled: ``livebot resend`` has them in the file; a restart that fires them again must
            # not send them. (Only in the log, they are not settled: a restart sends them.)
            self.journal.delivered(self.name, actions)

    # -- worker ----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            taken = await self._next()
            if taken is None:
                return
            batch, paced = taken
            await self._deliver(batch, paced)

    async def _next(self) -> tuple[list[Action], bool] | None:
        queue = self.queue
        while True:
            self.wake.clear()
            if queue.fifo:
                batch = queue.take_fifo(self.max_batch)
                self.stats.queue_depth = len(queue)
                return batch, False
            if queue.ranked:
                assert self.pacing is not None
                wait = 0.0 if self.last_paced is None else self.last_paced + self.pacing.min_gap - self.clock()
                if wait <= 0:
                    batch = [queue.pop_ranked()]
                    self.stats.queue_depth = len(queue)
                    return batch, True
                await self._wait(wait)  # the gap, unless something unpaced arrives first
                continue
            if self.closing:
                return None
            await self.wake.wait()

    async def _wait(self, timeout: float) -> None:
        sleeper = asyncio.ensure_future(self.sleep(timeout))
        waker = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def _deliver(self, batch: list[Action], paced: bool) -> None:
        """Send ``batch`` until it goes through or is dead-lettered. If the worker is cancelled
        meanwhile (close() ran out of time), ``in_flight`` stays set for ``abandon``."""
        stats = self.stats
        n = len(batch)
        self.in_flight = batch
        stats.in_flight = n
        self.attempts = 0
        self.backoff.reset()
        while True:
            self.attempts += 1
            try:
                await self.sink.send(batch)
            except Exception as exc:
                stats.failed += n
                error = _describe(exc)
                permanent = isinstance(exc, PermanentSinkError)
                if permanent or self.attempts >= self.retry.max_attempts:
                    log.error("sink_gave_up", sink=self.name, actions=n, attempts=self.attempts, error=error,
                              dead_letter=str(self.dead.path) if self.dead.path is not None else None)
                    self.in_flight = None
                    stats.in_flight = 0
                    self._dead(batch, "permanent" if permanent else "failed", error, self.attempts)
                    return
                delay = self.backoff.next_delay()
                stats.retried += n
                log.warning("sink_retry", sink=self.name, actions=n, attempt=self.attempts,
                            retry_in=round(delay, 3), error=error)
                await self.sleep(delay)
            else:
                self.in_flight = None
                stats.in_flight = 0
                stats.sent += n
                if self.journal is not None:
                    self.journal.delivered(self.name, batch)
                if paced:
                    self.last_paced = self.clock()
                return

    def pending(self) -> list[Action]:
        """What this sink has yet to deliver: the batch being sent, then the queue in its order."""
        out = list(self.in_flight or ())
        out += self.queue.fifo
        out += [entry[2] for entry in sorted(self.queue.ranked)]
        return out

    def abandon(self, error: str) -> None:
        """Dead-letter what the worker did not get to (called once the worker has stopped)."""
        if self.in_flight is not None:
            batch, self.in_flight = self.in_flight, None
            self.stats.in_flight = 0
            self.stats.shutdown += len(batch)
            self._dead(batch, "shutdown", error, self.attempts)
        left = self.queue.drain()
        self.stats.queue_depth = 0
        if left:
            self.stats.shutdown += len(left)
            self._dead(left, "shutdown", error, 0)


class LiveDispatcher:
    """Per-sink bounded queues and workers; retries, pacing and a dead-letter file.

    ``sinks``: each needs a unique ``name``; a sink may carry ``pacing`` (a ``Pacing``) and
    ``max_batch`` (the most actions per ``send``) attributes, which win over the defaults here.
    ``dead_letter``: a JSONL path (or a ``DeadLetter``); None logs undeliverable actions instead.
    ``max_queue``: actions waiting per sink before new ones are dead-lettered as overflow.
    ``max_batch``: the most actions handed to one ``send`` (unpaced actions; paced ones go singly).
    ``retry``: attempts and backoff per batch. ``pacing``: per sink name, overrides the sink's own
    (None switches it off). ``drain_timeout``: seconds ``close()`` waits for the queues to empty;
    ``close_timeout``: seconds each sink's own ``close()`` may take. ``clock`` (monotonic seconds),
    ``sleep`` and ``rng`` are injectable for tests. ``journal``: a ``DeliveryJournal``; each sink
    notes there what it delivered, and does not send again what it delivered before a restart.
    """

    def __init__(self, sinks: Sequence[Sink], *, dead_letter: str | Path | DeadLetter | None = None,
                 max_queue: int = 1000, max_batch: int = 50, retry: RetryPolicy | None = None,
                 pacing: Mapping[str, Pacing | None] | None = None, drain_timeout: float = 5.0,
                 close_timeout: float = 2.0, clock: Callable[[], float] | None = None, sleep: Sleep | None = None,
                 rng: random.Random | None = None, journal: DeliveryJournal | None = None) -> None:
        names = [s.name for s in sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique; repeated: {', '.join(dupes)}")
        unknown = sorted(set(pacing or ()) - set(names))
        if unknown:
            raise ValueError(f"pacing given for unknown sink(s): {', '.join(unknown)}")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.sinks = list(sinks)
        self.dead_letter = dead_letter if isinstance(dead_letter, DeadLetter) else DeadLetter(dead_letter)
        self.retry = retry or RetryPolicy()
        self.drain_timeout = drain_timeout
        self.close_timeout = close_timeout
        self.clock = clock or time.monotonic
        self.sleep: Sleep = sleep or asyncio.sleep
        self.lanes: dict[str, _Lane] = {}
        for sink in self.sinks:
            own = getattr(sink, "pacing", None)
            chosen = pacing[sink.name] if pacing is not None and sink.name in pacing else own
            batch = getattr(sink, "max_batch", None)
            self.lanes[sink.name] = _Lane(
                sink, pacing=chosen, max_queue=max_queue,
                max_batch=batch if isinstance(batch, int) and batch >= 1 else max_batch,
                retry=self.retry, dead=self.dead_letter, clock=self.clock, sleep=self.sleep, rng=rng,
                journal=journal)
        self.journal = journal
        self.stats: dict[str, SinkStats] = {name: lane.stats for name, lane in self.lanes.items()}
        self.dispatched = 0  # actions handed to dispatch(), each counted once (not per sink)
        # The control page (bot.control.page): ``mute(sink_name, actions)`` gives what that sink may
        # have (None: everything), and each tap sees every batch as it is dispatched.
        self.mute: Callable[[str, Sequence[Action]], Sequence[Action]] | None = None
        self.taps: list[Callable[[Sequence[Action]], None]] = []
        self.closed = False
        self._closing = False
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- the runner's interface ------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (``dispatch`` does this on first use; needs a running loop)."""
        if self._tasks or self._closing:
            return
        loop = asyncio.get_running_loop()
        for name, lane in self.lanes.items():
            task = self._tasks[name] = loop.create_task(lane.run(), name=f"sink:{name}")
            task.add_done_callback(_worker_done)

    async def dispatch(self, actions: Sequence[Action]) -> None:
        """Queue ``actions`` for every sink and return at once; never waits on a sink."""
        if not actions:
            return
        if not self._tasks and not self._closing:
            self.start()
        self.dispatched += len(actions)
        for tap in self.taps:
            tap(actions)
        if self.mute is not None:
            for name, lane in self.lanes.items():
                if allowed := self.mute(name, actions):
                    lane.offer(allowed)
            return
        for lane in self.lanes.values():
            lane.offer(actions)

    @property
    def live_only(self) -> frozenset[str]:
        """The names of the sinks whose actions only make sense live (their ``live_only``)."""
        return frozenset(name for name, lane in self.lanes.items() if lane.live_only)

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        """Per sink, the actions it has yet to deliver (kept with a state snapshot: the saved state
        knows their events, so after a crash nothing else would send them again)."""
        out = {}
        for name, lane in self.lanes.items():
            left = [a.to_dict() for a in lane.pending()]
            if left:
                out[name] = left
        return out

    def requeue(self, pending: Mapping[str, Sequence[Mapping[str, Any]]], *, stale: bool = False) -> int:
        """Queue again what ``pending()`` gave before a restart, each sink its own (the journal
        drops what a sink delivered after all). ``stale``: too late to send (the stream is over):
        dead-letter them instead (reason ``stale``). Returns how many actions were queued."""
        queued = 0
        for name, records in pending.items():
            lane = self.lanes.get(name)
            if lane is None:  # a sink renamed or removed since: kept in the dead-letter file, not lost
                log.warning("requeue_unknown_sink", sink=name, actions=len(records))
                kept = []
                for record in records:
                    try:
                        kept.append(Action.from_dict(dict(record)))
                    except (KeyError, TypeError, ValueError):
                        pass
                self.dead_letter.write(name, kept, reason="stale", error="the sink is no longer configured",
                                       attempts=0)
                continue
            actions = []
            for record in records:
                try:
                    actions.append(Action.from_dict(dict(record)))
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("requeue_bad_action", sink=name, error=_describe(exc))
            if actions and stale:
                fresh = [a for a in actions if lane.journal is None or not lane.journal.already_delivered(name, a)]
                lane._dead(fresh, "stale", "undelivered when the bot stopped; the stream was over at its restart", 0)
            elif actions:
                if not self._tasks and not self._closing:
                    self.start()
                before = lane.stats.dispatched
                lane.offer(actions)
                queued += lane.stats.dispatched - before
        return queued

    def bury(self, actions: Sequence[Action], reason: str, error: str) -> None:
        """Dead-letter ``actions`` for every sink (too late to send; kept, not lost)."""
        for lane in self.lanes.values():
            mine = [a for a in actions if lane.accept is None or lane.accept(a)]
            if mine:
                lane._dead(mine, reason, error, 0)

    async def close(self, timeout: float | None = None) -> None:
        """Drain every queue for up to ``timeout`` (default ``drain_timeout``) seconds, dead-letter
        what is left (counted as ``shutdown``), then close the sinks and the dead-letter file."""
        if self._closing:
            return
        self._closing = True
        for lane in self.lanes.values():
            lane.closing = True
            lane.wake.set()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout if timeout is None else timeout)
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=self.close_timeout)
                for task in stuck:  # a sink that swallows cancellation: leave it, but account for its actions
                    log.error("sink_worker_stuck", sink=task.get_name())
        for lane in self.lanes.values():
            lane.abandon("not delivered before the dispatcher closed")
        for lane in self.lanes.values():
            try:
                await asyncio.wait_for(lane.sink.close(), self.close_timeout)
            except Exception as exc:
                log.error("sink_close_failed", sink=lane.name, error=_describe(exc))
        self.dead_letter.close()
        if self.journal is not None:
            self.journal.close()
        self.closed = True
        log.info("dispatcher_closed", **{name: s.as_dict() for name, s in self.stats.items()})

    async def __aenter__(self) -> LiveDispatcher:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- numbers ---------------------------------------------------------------------------------

    @property
    def sent(self) -> Counter[str]:
        """Actions delivered, by sink (as ``Dispatcher.sent``)."""
        return Counter({name: s.sent for name, s in self.stats.items()})

    @property
    def failed(self) -> Counter[str]:
        """Actions in sends that raised, by sink, every attempt counted (as ``Dispatcher.failed``)."""
        return Counter({name: s.failed for name, s in self.stats.items()})

    @property
    def retried(self) -> Counter[str]:
        """Actions sent again after a failed send, by sink."""
        return Counter({name: s.retried for name, s in self.stats.items()})

    @property
    def dead_lettered(self) -> Counter[str]:
        """Actions written to the dead-letter file (or log), by sink."""
        return Counter({name: s.dead_lettered for name, s in self.stats.items()})

    @property
    def queued(self) -> Counter[str]:
        """Actions waiting in each sink's queue (not counting the batch being sent)."""
        return Counter({name: s.queue_depth for name, s in self.stats.items()})

    def metrics(self) -> dict[str, Any]:
        """Plain numbers for a /metrics endpoint."""
        return {
            "dispatched": self.dispatched,
            "sinks": {name: s.as_dict() for name, s in self.stats.items()},
            "dead_letter": self.dead_letter.stats(),
            "journal": self.journal.stats() if self.journal is not None else None,
            "closed": self.closed,
        }
