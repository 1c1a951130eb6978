"""A stream with a crash in it says what the same stream says without one.

The demo session (25 minutes: gift streaks, tiers, merged thank-yous under the chat budget, polls,
timers, milestones, a reconnect backlog) goes through the shipped starter pack twice, on a virtual
clock, in the live shell with state, journal, recording, an immediate sink and a paced one:

- once without interruption;
- once "killed" (no save, no drain, the sinks' workers gone) at several points, each time
  restarted on the same files and fed the source's reconnect backlog (the last 300 events again)
  before the rest.

Every action either sink delivered, over all the processes, is compared with the uninterrupted
run: the same actions, each once. This is what ``tests/test_faults.py -k sigkill`` shows for one
rule and plain gifts, here for everything the starter pack does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

import bot.live
from bot.actions.dispatcher import LiveDispatcher, Pacing
from bot.actions.journal import DeliveryJournal
from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules
from bot.events.model import Event
from bot.live import LiveRunner
from bot.sources.recorder import Recorder
from bot.sources.replay import ReplaySource
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import CaptureSink, ScriptSource

GUARD = 60.0  # seconds: a hang guard, never a measurement
ROOT = Path(__file__).resolve().parent.parent
BACKLOG = 300


class Named(CaptureSink):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


@pytest.fixture
def fast_loop(monkeypatch):
    monkeypatch.setattr(bot.live, "IDLE_WAKE_S", 0.005)


def demo_events() -> list[Event]:
    return list(ReplaySource(ROOT / "examples" / "demo-session.jsonl").events())


def copy(ev: Event) -> Event:
    return Event(ev.type, ev.ts, user=ev.user, room_id=ev.room_id, msg_id=ev.msg_id, data=dict(ev.data))


class Process:
    """One run of the daemon's live shell over the files in ``tmp``."""

    def __init__(self, tmp: Path, clock: VirtualClock, save_every_ms: int, rules=None) -> None:
        self.store = SqliteStore(tmp / "state.db")
        self.keeper = StateKeeper(self.store, "demo", every_ms=save_every_ms)
        self.journal = DeliveryJournal(tmp / "state.db.delivered")
        self.keeper.on_saved.append(self.journal.rotate)
        self.jsonl, self.overlay = Named("jsonl"), Named("overlay")
        self.dispatcher = LiveDispatcher([self.jsonl, self.overlay], journal=self.journal,
                                         pacing={"overlay": Pacing(min_gap=0.002)}, drain_timeout=GUARD)
        self.src = ScriptSource()
        self.runner = LiveRunner([self.src], Engine(rules or load_rules(ROOT / "rules")), self.dispatcher, keeper=self.keeper,
                                 recorder=Recorder(tmp / "sessions", room="demo"), clock=clock, batch=32)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())
        await asyncio.wait_for(self.src.ready.wait(), GUARD)

    async def feed(self, clock: VirtualClock, events: list[Event], at: int | None = None, step_ms: int = 0) -> None:
        """Put ``events`` as they arrive live: the clock at each one's time (or at ``at``: a
        backlog arriving all at once), waiting for the runner every few events. ``step_ms``: time
        passes between events in steps this long, the loop turning at each (as a live loop wakes
        while the room is quiet), rather than all at once."""
        for i, ev in enumerate(events):
            while step_ms and at is None and clock.now() + step_ms < ev.ts:
                clock.advance(step_ms)
                await self.settle()
            clock.set(max(clock.now(), ev.ts if at is None else at))
            self.src.put(copy(ev))
            if i % 25 == 24:
                await self.settle()
        await self.settle()

    async def settle(self) -> None:
        for _ in range(int(GUARD / 0.002)):
            if not len(self.runner.queue):
                break
            await asyncio.sleep(0.002)
        beat = self.runner.heartbeat
        for _ in range(int(GUARD / 0.002)):
            if self.runner.heartbeat != beat:
                break
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        """SIGTERM: drain, save, deliver."""
        self.src.done.set()
        await asyncio.wait_for(self.task, GUARD)
        await self.dispatcher.close()
        self.runner.save_after_dispatch()
        self.store.close()

    async def kill(self) -> None:
        """SIGKILL: nothing more happens: no drain, no save, no delivery, files as they are."""
        async def nothing() -> None:
            pass

        self.runner._drain = nothing  # type: ignore[method-assign]
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        workers = list(self.dispatcher._tasks.values())
        for t in workers:
            t.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self.journal.close()
        self.store.close()
        if self.runner.recorder is not None and self.runner.recorder._file is not None:
            self.runner.recorder._file.close()  # (the OS closes it; what was written is there)

    def delivered(self) -> tuple[list, list]:
        return self.jsonl.actions, self.overlay.actions


def key(a) -> tuple:
    return (a.event_id or f"@{a.ts}", a.rule, a.kind, a.text)


async def run_stream(tmp: Path, events: list[Event], kills: list[int], save_every_ms: int,
                     how: str = "kill", rules=None, step_ms: int = 0) -> tuple[Counter, Counter, list[Process]]:
    clock = VirtualClock(events[0].ts)
    processes = [Process(tmp, clock, save_every_ms, rules)]
    await processes[0].start()
    done = 0
    for k in kills:
        await processes[-1].feed(clock, events[done:k], step_ms=step_ms)
        await (processes[-1].kill() if how == "kill" else processes[-1].stop())
        p = Process(tmp, clock, save_every_ms, rules)
        processes.append(p)
        await p.start()
        await p.feed(clock, events[max(0, k - BACKLOG):k], at=clock.now())  # the reconnect backlog
        done = k
    await processes[-1].feed(clock, events[done:], step_ms=step_ms)
    await processes[-1].stop()
    jsonl, overlay = Counter(), Counter()
    for p in processes:
        jsonl.update(key(a) for a in p.jsonl.actions)
        overlay.update(key(a) for a in p.overlay.actions)
    return jsonl, overlay, processes


@pytest.mark.parametrize("save_every_ms, how", [(5_000, "kill"), (120_000, "kill"), (5_000, "stop")])
async def test_a_stream_killed_three_times_says_what_it_says_without_a_crash(tmp_path, fast_loop, save_every_ms,
                                                                            how):
    """(Saves every 5 s, the default; and every 2 minutes, so each restart catches up with
    hundreds of events in many batches, gift streaks and merged lines cut across them. And
    stopped cleanly (SIGTERM, a deploy) at the same points instead of killed: open streaks,
    polls and waiting chat lines carry over, not closed at the stop.)"""
    events = demo_events()
    (tmp_path / "straight").mkdir()
    (tmp_path / "killed").mkdir()
    want_jsonl, want_overlay, _ = await run_stream(tmp_path / "straight", events, [], save_every_ms)
    n = len(events)
    kills = [n // 4, n // 2 + 7, 3 * n // 4 + 13]
    got_jsonl, got_overlay, processes = await run_stream(tmp_path / "killed", events, kills, save_every_ms, how)
    caught = [p.runner.caught_up for p in processes[1:]]
    suppressed = sum(s.already_delivered for p in processes for s in p.dispatcher.stats.values())
    print(f"\n[crash equivalence, {how}, saves every {save_every_ms // 1000} s] {n} events, {sum(want_jsonl.values())} "
          f"actions; caught up {caught}; not sent again {suppressed}; jsonl twice "
          f"{sum(c > 1 for c in got_jsonl.values())}, missing {len(want_jsonl - got_jsonl)}, extra "
          f"{len(got_jsonl - want_jsonl)}; overlay equal {got_overlay == want_overlay}")
    assert sum(want_jsonl.values()) > 500 and all(c == 1 for c in want_jsonl.values())
    assert how == "stop" or sum(caught) > 0 and (save_every_ms < 60_000 or min(caught) > 100)
    assert got_jsonl - want_jsonl == Counter(), "said after a crash, not without one (or said twice)"
    assert want_jsonl - got_jsonl == Counter(), "said without a crash, not with one"
    assert got_overlay == want_overlay


TIMER_RULES = """
rules:
  - id: reminder
    every: 3s
    do: [{cta: "reminder #{{ rule.fired + 1 }} ({{ since.chat }} chats since)"}]
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} ({{ user.diamonds }})"}]
"""


async def test_timers_over_a_quiet_stream_fire_the_same_after_a_crash(tmp_path, fast_loop):
    """A 3-second reminder that counts its firings, over a stream with 7 s between events,
    saved every 2 minutes and killed twice: the catch-up fires every period the live run fired (a
    catch-up is no clock jump), so no reminder is said twice or with another number."""
    from bot.engine.loader import load_rules_text
    from bot.events.model import User

    t0 = 1_763_665_200_000
    events = []
    for i in range(60):  # a gift or a chat line every 7 s (two reminders between), for seven minutes
        who = User(f"u{i % 4}", f"v{i % 4}", f"V{i % 4}")
        if i % 3:
            events.append(Event("chat", t0 + i * 7000, user=who, msg_id=f"c{i}", data={"text": "hi"}))
        else:
            events.append(Event("gift", t0 + i * 7000, user=who, msg_id=f"g{i}",
                                data={"gift_id": 1, "name": "Rose", "diamonds": 1, "count": 1, "gift_type": 2,
                                      "streak_end": False}))
    rules = load_rules_text(TIMER_RULES)
    (tmp_path / "straight").mkdir()
    (tmp_path / "killed").mkdir()
    want, _, _ = await run_stream(tmp_path / "straight", events, [], 120_000, rules=rules, step_ms=250)
    got, _, processes = await run_stream(tmp_path / "killed", events, [23, 47], 120_000, rules=rules, step_ms=250)
    reminders = sorted(k[3] for k in want if k[1] == "reminder")
    print(f"\n[timers] {len(reminders)} reminders; caught up {[p.runner.caught_up for p in processes[1:]]}; "
          f"missing {len(want - got)}, extra {len(got - want)}")
    assert len(reminders) > 100 and all(c == 1 for c in want.values())
    assert got - want == Counter() and want - got == Counter()
