"""Soak: an hour of a busy stream (500 events/s) through `livebot run`'s code path at full speed,
with memory sampled along the way: it must stay flat.

    python bench/bench_soak.py                       # 60 virtual minutes at 500 events/s
    python bench/bench_soak.py --minutes 10

The session comes from the seeded simulator (bench/sessiongen.py, TikFinity format) with its
timestamps respaced to 500 events/s. A feed source pushes it into `run_daemon` — the same
function `livebot run` calls: bounded queue, engine with the starter pack, dispatcher, JSONL
sink, recorder, SQLite state snapshots every 5 s of stream time, the HTTP control server and the
rule watcher — on a virtual clock that follows the events, so timers, flushes and snapshots
happen as they would in an hour of real time. RSS is read from /proc every 5 virtual minutes.
The baseline is the same process's RSS after loading everything, before the first event.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from memory import rss_mb  # noqa: E402 - bench/ on the path first

RATE = 500


class FeedSource:
    """Pushes a session file into the queue at RATE events/s of virtual time, as fast as the
    runner takes them (it waits while the queue is half full, so nothing is shed)."""

    name = "feed"

    def __init__(self, path: Path, minutes: float, samples: list) -> None:
        self.path = path
        self.total = int(minutes * 60 * RATE)
        self.samples = samples
        self.connects = 1

    async def run(self, queue, clock, stop) -> None:
        from bot.events.model import CONNECT, Event
        from bot.sources.replay import ReplaySource

        start = clock.now()
        queue.put(Event(CONNECT, start, data={"source": self.name}, received=start))
        step = 1000 // RATE
        next_sample = 0
        for i, ev in enumerate(ReplaySource(self.path).events()):
            if i >= self.total or stop.is_set():
                break
            t = start + i * step
            ev.ts = ev.received = t
            clock.set(t)
            queue.put(ev)
            if i % 256 == 0:
                if t - start >= next_sample:
                    self.samples.append(((t - start) / 60_000, rss_mb(), time.perf_counter()))
                    next_sample += 5 * 60_000
                while len(queue) > queue.capacity // 2:
                    await asyncio.sleep(0)
                await asyncio.sleep(0)
        self.samples.append((self.total / RATE / 60, rss_mb(), time.perf_counter()))
        stop.set()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from bench_replay import session_file

    from bot.clock import VirtualClock
    from bot.config import Config
    from bot.daemon import run_daemon
    from bot.engine.loader import load_rules
    from bot.runner import tune_gc
    from bot.sinks import JsonlSink

    events = int(args.minutes * 60 * RATE)
    path = session_file(events, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(rules=ROOT / "rules", console=False, record=Path(tmp) / "sessions", state_db=Path(tmp) / "state.db",
                     http_port=0)
        rules = load_rules(cfg.rules)
        tune_gc()
        samples: list = []
        clock = VirtualClock(1_763_665_200_000)
        source = FeedSource(path, args.minutes, samples)
        base = rss_mb()
        t0 = time.perf_counter()
        result = asyncio.run(run_daemon(cfg, rules, source=source, sinks=[JsonlSink(Path(tmp) / "actions.jsonl")],
                                        clock=clock))
        wall = time.perf_counter() - t0
        recorded = sum(1 for f in (Path(tmp) / "sessions").iterdir() for _ in open(f, "rb"))
    handled = sum(result.events.values())
    print(f"{handled:,} events ({args.minutes:g} virtual minutes at {RATE}/s) in {wall:.1f} s "
          f"({handled / wall:,.0f} events/s); {sum(result.actions.values()):,} actions; "
          f"recorded {recorded:,}; shed {sum(result.shed.values())}")
    print(f"baseline RSS (everything loaded, no events yet): {base:.0f} MB")
    print(f"{'stream minute':>13} {'RSS MB':>8} {'vs baseline':>12}")
    for minute, mb, _ in samples:
        print(f"{minute:>13.0f} {mb:>8.0f} {mb / base:>12.2f}")
    # The duplicate window (engine.dedup_window, 500,000 ids) fills in 500,000 / 500 s ≈ 17 minutes;
    # after that, only the number of distinct viewers can still grow.
    end = samples[-1][1]
    for since in (10, 20):
        warm = next((mb for minute, mb, _ in samples if minute >= since), None)
        if warm is not None:
            print(f"growth from minute {since} to the end: {end - warm:+.0f} MB ({(end / warm - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
