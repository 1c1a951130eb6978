"""The live dispatcher: per-sink queues, retries with backoff, the dead-letter file, pacing, close.

Time is a fake: ``FakeTime.sleep`` moves ``FakeTime.now`` and yields, so backoff waits and pacing
gaps are measured without waiting. Nothing here asserts a wall-clock duration; the few real
timeouts are hang guards.
"""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from bot.actions.delivery import DeadLetter, PermanentSinkError, RetryPolicy
from bot.actions.dispatcher import Dispatcher, LiveDispatcher
from bot.actions.model import Action
from bot.actions.pacing import Pacing, SinkQueue, gift_worth
from bot.testing import CaptureSink
from waiting import guard, until

GUARD = guard(30.0)  # seconds: only so that a bug hangs a test for a while rather than forever


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def act(i: int, kind: str = "say", **data) -> Action:
    return Action(ts=1000 + i, kind=kind, text=f"action {i}", rule="r", user=f"u{i}", event_id=f"e{i}", data=data)


class Named(CaptureSink):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.arrived = asyncio.Event()
        self.want = 0

    async def send(self, actions) -> None:
        await super().send(actions)
        if len(self.actions) >= self.want:
            self.arrived.set()


class GatedSink(Named):
    """Blocks every send until ``gate`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.started = 0

    async def send(self, actions) -> None:
        self.started += 1
        await self.gate.wait()
        await super().send(actions)


class FailingSink:
    def __init__(self, name: str = "broken", fail_times: int | None = None, exc: type[Exception] = RuntimeError):
        self.name = name
        self.fail_times = fail_times  # None: always
        self.exc = exc
        self.calls = 0
        self.actions: list[Action] = []
        self.closed = False

    async def send(self, actions) -> None:
        self.calls += 1
        if self.fail_times is None or self.calls <= self.fail_times:
            raise self.exc(f"boom {self.calls}")
        self.actions.extend(actions)

    async def close(self) -> None:
        self.closed = True


def dead_lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def assert_balanced(d: LiveDispatcher) -> None:
    for name, s in d.stats.items():
        assert s.dispatched == s.sent + s.dead_lettered + s.queue_depth + s.in_flight, (name, s)
        assert s.failed >= s.retried


async def test_slow_sink_does_not_block_a_fast_one(tmp_path):
    slow, fast = GatedSink("slow"), Named("fast")
    fast.want = 30
    d = LiveDispatcher([slow, fast], dead_letter=tmp_path / "dead.jsonl")
    for i in range(10):  # dispatch returns although the slow sink never finishes a send
        await asyncio.wait_for(d.dispatch([act(3 * i), act(3 * i + 1), act(3 * i + 2)]), GUARD)
    await asyncio.wait_for(fast.arrived.wait(), GUARD)
    assert [a.ts for a in fast.actions] == [1000 + i for i in range(30)]
    assert slow.actions == [] and slow.started == 1
    assert d.stats["slow"].queue_depth + d.stats["slow"].in_flight == 30
    assert_balanced(d)
    slow.gate.set()
    await d.close()
    assert [a.ts for a in slow.actions] == [1000 + i for i in range(30)]
    assert d.stats["slow"].sent == d.stats["fast"].sent == 30
    assert not (tmp_path / "dead.jsonl").exists()
    assert slow.closed and fast.closed
    assert_balanced(d)


async def test_failing_sink_is_retried_with_backoff_then_dead_lettered(tmp_path):
    clock = FakeTime()
    dead = tmp_path / "out" / "dead.jsonl"
    broken, good = FailingSink(), Named("good")
    retry = RetryPolicy(max_attempts=4, base=0.01, cap=0.05)
    d = LiveDispatcher([broken, good], dead_letter=dead, retry=retry, max_batch=3, clock=clock.now,
                       sleep=clock.sleep, rng=random.Random(7))
    sent = [act(i, data_i=i) for i in range(7)]
    await d.dispatch(sent[:4])
    await d.dispatch(sent[4:])
    await d.close()

    assert [a.ts for a in good.actions] == [a.ts for a in sent]
    s = d.stats["broken"]
    batches = 3  # 7 actions at most 3 per send: 3 + 3 + 1 (the first dispatch's 4 were queued together)
    assert broken.calls == batches * retry.max_attempts
    assert s.sent == 0 and s.dead_lettered == 7 and s.failed == 7 * 4 and s.retried == 7 * 3
    assert s.sent + s.dead_lettered == s.dispatched == 7
    assert d.stats["good"].sent == 7 and d.stats["good"].dead_lettered == 0
    # backoff: per batch three waits, each within [base/2, min(cap, base * 2**n)], reset between batches
    assert len(clock.sleeps) == batches * 3
    for k, delay in enumerate(clock.sleeps):
        n = k % 3
        assert retry.base / 2 <= delay <= min(retry.cap, retry.base * 2 ** n)

    lines = dead_lines(dead)
    assert [line["action"] for line in lines] == [a.to_dict() for a in sent]
    assert {line["sink"] for line in lines} == {"broken"}
    assert {line["reason"] for line in lines} == {"failed"}
    assert {line["attempts"] for line in lines} == {4}
    assert all(line["error"].startswith("RuntimeError: boom") for line in lines)
    assert d.metrics()["dead_letter"]["written"] == 7
    assert broken.closed
    assert_balanced(d)


async def test_flaky_sink_recovers_without_losing_anything(tmp_path):
    clock = FakeTime()
    flaky = FailingSink("flaky", fail_times=2)
    d = LiveDispatcher([flaky], dead_letter=tmp_path / "dead.jsonl", clock=clock.now, sleep=clock.sleep,
                       retry=RetryPolicy(max_attempts=3, base=0.01))
    await d.dispatch([act(1), act(2)])
    await d.close()
    assert [a.ts for a in flaky.actions] == [1001, 1002]
    s = d.stats["flaky"]
    assert (s.sent, s.failed, s.retried, s.dead_lettered) == (2, 4, 4, 0)
    assert not (tmp_path / "dead.jsonl").exists()


async def test_permanent_error_is_dead_lettered_without_retries(tmp_path):
    clock = FakeTime()
    sink = FailingSink("refuses", exc=PermanentSinkError)
    d = LiveDispatcher([sink], dead_letter=tmp_path / "dead.jsonl", clock=clock.now, sleep=clock.sleep)
    await d.dispatch([act(1)])
    await d.close()
    assert sink.calls == 1 and clock.sleeps == []
    [line] = dead_lines(tmp_path / "dead.jsonl")
    assert line["reason"] == "permanent" and line["attempts"] == 1
    assert d.stats["refuses"].dead_lettered == 1


async def test_full_queue_dead_letters_the_overflow(tmp_path):
    sink = GatedSink("busy")
    d = LiveDispatcher([sink], dead_letter=tmp_path / "dead.jsonl", max_queue=2, max_batch=1)
    await d.dispatch([act(i) for i in range(5)])  # all queued before the worker runs: 2 fit
    s = d.stats["busy"]
    assert s.overflow == 3 and s.dead_lettered == 3 and s.queue_depth == 2
    sink.gate.set()
    await d.close()
    assert [a.ts for a in sink.actions] == [1000, 1001]
    assert [line["action"]["ts"] for line in dead_lines(tmp_path / "dead.jsonl")] == [1002, 1003, 1004]
    assert {line["reason"] for line in dead_lines(tmp_path / "dead.jsonl")} == {"overflow"}
    assert s.sent + s.dead_lettered == s.dispatched == 5


async def test_paced_burst_goes_biggest_first_with_the_minimum_gap(tmp_path):
    clock = FakeTime()

    class Overlay(Named):
        pacing = Pacing(min_gap=4.0, kinds={"alert"})

        async def send(self, actions):
            self.times = getattr(self, "times", []) + [clock.now()] * len(actions)
            await super().send(actions)

    overlay = Overlay("overlay")
    d = LiveDispatcher([overlay], dead_letter=tmp_path / "dead.jsonl", clock=clock.now, sleep=clock.sleep)
    overlay.want = 1
    await d.dispatch([act(0, "alert", diamonds="5")])  # shown at once
    await asyncio.wait_for(overlay.arrived.wait(), GUARD)
    clock.t += 1.0  # a second later a burst arrives while the first alert is still up
    burst = [act(1, "alert", diamonds=1), act(2, "alert", diamonds="500"), act(3, "alert", diamonds=10),
             act(4, "say"), act(5, "alert", total_diamonds="5,000"), act(6, "alert", diamonds=10), act(7, "alert")]
    await d.dispatch(burst)
    await d.close()

    assert [a.ts - 1000 for a in overlay.actions] == [0, 4, 5, 2, 3, 6, 1, 7]
    shown = [(a.ts - 1000, t) for a, t in zip(overlay.actions, overlay.times)]
    assert shown[1] == (4, 1.0)  # the unpaced line did not wait for the alerts
    alert_times = [t for a, t in zip(overlay.actions, overlay.times) if a.kind == "alert"]
    gaps = [b - a for a, b in zip(alert_times, alert_times[1:])]
    assert all(g >= 4.0 - 1e-9 for g in gaps), gaps
    assert d.stats["overlay"].sent == 8


async def test_pacing_can_be_set_per_sink_by_name(tmp_path):
    clock = FakeTime()
    sink = Named("screen")
    d = LiveDispatcher([sink], dead_letter=tmp_path / "dead.jsonl", clock=clock.now, sleep=clock.sleep,
                       pacing={"screen": Pacing(min_gap=2.0)})
    await d.dispatch([act(1, worth=1), act(2, worth=2), act(3, worth=3)])
    await d.close()
    assert [a.ts for a in sink.actions] == [1003, 1002, 1001]
    assert clock.t >= 4.0  # two gaps of fake time
    with pytest.raises(ValueError, match="unknown sink"):
        LiveDispatcher([sink], pacing={"nope": None})


async def test_close_drains_the_queues(tmp_path):
    class Yielding(Named):
        async def send(self, actions):
            await asyncio.sleep(0)
            await super().send(actions)

    sinks = [Yielding("a"), Yielding("b")]
    d = LiveDispatcher(sinks, dead_letter=tmp_path / "dead.jsonl", max_batch=7)
    for i in range(20):
        await d.dispatch([act(5 * i + k) for k in range(5)])
    await d.close()
    for sink in sinks:
        assert [a.ts - 1000 for a in sink.actions] == list(range(100)) and sink.closed
    assert d.stats["a"].queue_depth == 0 and d.closed
    assert not (tmp_path / "dead.jsonl").exists()


async def test_close_is_bounded_and_dead_letters_what_is_left(tmp_path):
    stuck, fine = GatedSink("stuck"), Named("fine")
    d = LiveDispatcher([stuck, fine], dead_letter=tmp_path / "dead.jsonl", max_batch=2, drain_timeout=0.05)
    await d.dispatch([act(i) for i in range(5)])
    await until(lambda: d.stats["fine"].sent == 5, "the fine sink's five")  # (a busy machine: not in 50 ms)
    await asyncio.wait_for(d.close(), GUARD)  # returns although "stuck" never finishes a send
    s = d.stats["stuck"]
    assert s.sent == 0 and s.shutdown == 5 and s.dead_lettered == 5 and s.in_flight == s.queue_depth == 0
    lines = dead_lines(tmp_path / "dead.jsonl")
    assert sorted(line["action"]["ts"] for line in lines) == [1000 + i for i in range(5)]
    assert {line["reason"] for line in lines} == {"shutdown"}
    assert [line["attempts"] for line in lines if line["action"]["ts"] in (1000, 1001)] == [1, 1]  # in flight
    assert stuck.closed and fine.closed and d.stats["fine"].sent == 5
    await d.dispatch([act(9)])  # after close: refused into the dead-letter file, counted
    assert d.stats["stuck"].dead_lettered == 6 and dead_lines(tmp_path / "dead.jsonl")[-1]["reason"] == "closed"
    assert_balanced(d)


async def test_dead_letter_without_a_file_logs_each_action():
    from structlog.testing import capture_logs

    d = LiveDispatcher([FailingSink(exc=PermanentSinkError)])
    with capture_logs() as logs:
        await d.dispatch([act(1)])
        await d.close()
    [record] = [e for e in logs if e["event"] == "dead_letter"]
    assert record["sink"] == "broken" and record["action"]["ts"] == 1001
    assert d.dead_letter.written == 1


def test_duplicate_sink_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        LiveDispatcher([CaptureSink(), CaptureSink()])


def test_gift_worth_reads_numbers_and_numeric_text():
    assert gift_worth(act(1, diamonds=5)) == 5
    assert gift_worth(act(1, total_diamonds="1,200", diamonds=3)) == 1200
    assert gift_worth(act(1, diamonds="lots")) == 0
    assert gift_worth(act(1, diamonds=True, worth="7")) == 7
    assert gift_worth(act(1)) == 0


def test_paced_queue_pushes_out_the_smallest_when_full():
    q = SinkQueue(2, Pacing(min_gap=1.0))
    assert q.put(act(1, diamonds=10)) is None
    assert q.put(act(2, diamonds=1)) is None
    assert q.put(act(3, diamonds=100)).ts == 1002  # the 1-diamond one makes room
    assert q.put(act(4, diamonds=1)).ts == 1004  # ranks below everything queued: it is the overflow
    assert [a.ts for a in q.drain()] == [1003, 1001]


async def test_simple_dispatcher_is_unchanged():
    sink = CaptureSink()
    d = Dispatcher([sink, FailingSink()])
    await d.dispatch([act(1), act(2)])
    await d.close()
    assert len(sink.actions) == 2 and d.sent["capture"] == 2 and d.failed["broken"] == 2


async def test_dead_letter_appends(tmp_path):
    path = tmp_path / "dead.jsonl"
    for i in range(2):
        dl = DeadLetter(path)
        dl.write("s", [act(i)], reason="failed", error="x", attempts=1)
        dl.close()
    assert [line["action"]["ts"] for line in dead_lines(path)] == [1000, 1001]


async def test_live_runner_with_the_live_dispatcher_and_metrics(tmp_path):
    """The live runner drives a LiveDispatcher as it drives a Dispatcher; /metrics reads its counters."""
    from bot.clock import VirtualClock
    from bot.control.metrics import registry_for, render
    from bot.engine.core import Engine
    from bot.live import LiveRunner
    from bot.sources.queue import stamp
    from bot.testing import chat, ruleset

    class Burst:
        name = "burst"

        async def run(self, queue, clock, stop):
            for i in range(20):
                stamp(queue, clock, chat(i, f"hi {i}", f"v{i}"))

    rules = ruleset("rules:\n  - id: echo\n    on: chat\n    do: [{say: '{{ event.text }}'}]\n")
    slow, fast = GatedSink("slow"), Named("fast")
    fast.want = 20
    d = LiveDispatcher([slow, fast], dead_letter=tmp_path / "dead.jsonl")
    runner = LiveRunner([Burst()], Engine(rules), d, clock=VirtualClock(1_000))
    await asyncio.wait_for(runner.run(), GUARD)  # never waits on the slow sink
    await asyncio.wait_for(fast.arrived.wait(), GUARD)
    text = render(registry_for(runner)).decode()
    assert 'livebot_sink_sent_total{sink="fast"} 20.0' in text
    assert 'livebot_sink_sent_total{sink="slow"} 0.0' in text
    assert 'livebot_sink_dead_lettered_total{sink="slow"} 0.0' in text
    depth = d.stats["slow"].queue_depth
    assert depth == 20 - d.stats["slow"].in_flight and f'livebot_sink_queue_depth{{sink="slow"}} {depth}.0' in text
    slow.gate.set()
    await d.close()
    assert d.stats["fast"].sent == d.stats["slow"].sent == 20
    assert_balanced(d)
