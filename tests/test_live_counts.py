"""What a live run counts and does with the chat budget's waiting lines, over the whole process:

- a stop (no state database) or a stream's end (``live_end``, Eulerstream's close code 4005) never
  sends every waiting chat line at once: what the budget allows by then goes out, the rest is
  dead-lettered as ``shutdown``;
- counters are cumulative for the process (a ``live_end`` starts a fresh engine, not fresh totals);
- what the chat budget merged, dropped (full, stale) and held is counted in /metrics, /status,
  the log and the final ``stopped`` line.
Virtual time throughout: nothing here waits on a clock."""

from __future__ import annotations

import asyncio

import orjson
from structlog.testing import capture_logs

from bot.actions.dispatcher import LiveDispatcher
from bot.clock import VirtualClock
from bot.control.metrics import registry_for, render
from bot.control.server import ControlServer
from aiohttp.test_utils import make_mocked_request
from bot.engine.core import Engine
from bot.events.model import Event
from bot.live import LiveRunner
from bot.sources.queue import stamp
from bot.testing import CaptureSink, chat, ruleset

GUARD = 60.0  # seconds: a hang guard, never a measurement
ECHO = ruleset("""
settings:
  chat: {per_minute: 6, burst: 3}
rules:
  - id: echo
    on: chat
    do: [{say: "{{ event.text }}"}]
""")


class Burst:
    """Every chat line at once, at one virtual instant; then a ``live_end`` if asked; then ends."""

    name = "burst"

    def __init__(self, n: int, end: bool = False, then: int = 0) -> None:
        self.n, self.end, self.then = n, end, then

    async def run(self, queue, clock, stop):
        for i in range(self.n):
            stamp(queue, clock, chat(1_000, f"hi {i}", f"v{i}", msg_id=f"c{i}"))
        stamp(queue, clock, chat(1_000, "again", "v0", msg_id="c0"))  # a duplicate
        if self.end:
            stamp(queue, clock, Event("live_end", 1_000, msg_id="end", data={"source": "websocket"}))
            for i in range(self.then):
                stamp(queue, clock, chat(1_000, f"next {i}", f"w{i}", msg_id=f"d{i}"))
            if self.then:
                stamp(queue, clock, chat(1_000, "again", "w0", msg_id="d0"))  # a duplicate in the next stream


def dead_letters(path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def run(tmp_path, source) -> tuple[LiveRunner, CaptureSink, list]:
    sink = CaptureSink()
    dispatcher = LiveDispatcher([sink], dead_letter=tmp_path / "dead.jsonl")
    runner = LiveRunner([source], Engine(ECHO), dispatcher, clock=VirtualClock(1_000))
    with capture_logs() as logs:
        await asyncio.wait_for(runner.run(), GUARD)
        await dispatcher.close()
    return runner, sink, logs


async def test_a_stop_without_a_state_database_sends_only_what_the_budget_allows_and_dead_letters_the_rest(tmp_path):
    runner, sink, logs = await run(tmp_path, Burst(20))
    # burst 3 at once; the queue keeps max(10, per_minute) lines, the 7 least valuable dropped
    assert [a.text for a in sink.actions] == ["hi 0", "hi 1", "hi 2"]
    assert all(a.ts <= 1_000 for a in sink.actions)  # nothing stamped in the future
    dead = dead_letters(tmp_path / "dead.jsonl")
    assert len(dead) == 10 and {d["reason"] for d in dead} == {"shutdown"}
    assert sorted(d["action"]["text"] for d in dead) == sorted(f"hi {i}" for i in range(3, 13))
    assert any(e["event"] == "chat_lines_held_at_close" and e["lines"] == 10 for e in logs)


async def test_a_stream_end_does_not_flood_the_chat_with_the_lines_the_budget_held(tmp_path):
    runner, sink, _ = await run(tmp_path, Burst(20, end=True))
    assert [a.text for a in sink.actions] == ["hi 0", "hi 1", "hi 2"]
    dead = dead_letters(tmp_path / "dead.jsonl")
    assert len(dead) == 10 and {d["reason"] for d in dead} == {"shutdown"}
    assert "live_end" in dead[0]["error"]


async def test_counters_are_cumulative_for_the_process_across_a_stream_end(tmp_path):
    runner, sink, logs = await run(tmp_path, Burst(20, end=True, then=2))
    text = render(registry_for(runner)).decode()
    assert "livebot_duplicates_total 2.0" in text  # one per stream: the first not forgotten at live_end
    budget = runner.counts.budget(runner.engine)
    assert budget["dropped_full"] == 7 and budget["held_at_close"] == 10
    assert 'livebot_chat_budget_total{outcome="dropped_full"} 7.0' in text
    assert 'livebot_chat_budget_total{outcome="held_at_close"} 10.0' in text


async def test_budget_drops_show_in_the_log_metrics_status_and_final_line(tmp_path):
    runner, sink, logs = await run(tmp_path, Burst(20))
    text = render(registry_for(runner)).decode()
    for outcome, n in (("merged", 0), ("dropped_full", 7), ("dropped_stale", 0), ("held_at_close", 10)):
        assert f'livebot_chat_budget_total{{outcome="{outcome}"}} {n}.0' in text
    budget_lines = [e for e in logs if e["event"] == "chat_budget"]
    assert budget_lines and budget_lines[-1]["dropped_full"] == 7 and budget_lines[-1]["held_at_close"] == 10
    page = (await ControlServer(runner, port=0).status_page(make_mocked_request("GET", "/status"))).text
    assert "chat budget" in page and "dropped_full 7" in page and "held_at_close 10" in page
    assert runner.counts.summary(runner.engine) == {
        "duplicates": 1, "rule_errors": 0, "chat_merged": 0, "chat_dropped_full": 7, "chat_dropped_stale": 0,
        "chat_held_at_close": 10}
