"""What the engine's trace costs when nobody reads it: replay throughput, trace on vs off.

    python bench/bench_trace.py                      # 200,000 events, 15 rounds of each
    python bench/bench_trace.py --events 100000 --rounds 9

One process, pinned to one core; the full `livebot replay --quiet --out actions.jsonl` code path
(source, dedup, streak folding, the starter rule pack, the JSONL sink) over the generated session
of bench_replay.py, with and without a ``Tracer(--size)`` attached (100 events by default, as
`livebot run` keeps one for the control page). Rounds alternate off / on, and each is timed in CPU time of this process. On a
shared machine other processes only ever make a round slower, so the fastest round of each mode is
the closest to its own cost; the medians are shown beside them. Target: the trace costs <= 3 %.

    python bench/bench_trace.py --instructions 20000

counts instead the CPU instructions the same code path executes (valgrind's callgrind, when
installed), off and on, over the first 20,000 events, less those of starting up with no events:
a figure other processes on the machine cannot disturb (it leaves out cache effects).

    python bench/bench_trace.py --memory 20000

the bytes the trace keeps alive (tracemalloc, after a replay of the first 20,000 events, trace
on minus off): what its ring of 100 events holds — the memory effects the instruction count leaves out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


def one(path: Path, rules, traced: bool, out: Path, size: int = 100) -> tuple[float, int]:
    from bot.actions.dispatcher import Dispatcher
    from bot.engine.core import Engine
    from bot.engine.trace import Tracer
    from bot.runner import replay
    from bot.sinks.jsonl import JsonlSink
    from bot.sources.replay import ReplaySource

    source = ReplaySource(path)
    dispatcher = Dispatcher([JsonlSink(out)])
    engine = Engine(rules)
    if traced:
        Tracer(size).attach(engine)

    async def go():
        result = await replay(source, engine, dispatcher)
        await dispatcher.close()
        return result

    start = time.process_time()
    result = asyncio.run(go())
    return time.process_time() - start, sum(result.read.values())


def instructions(mode: str, events: int) -> int:
    """Instructions executed by a child replaying ``events`` events (trace ``mode`` on/off)."""
    import re
    import subprocess

    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                           __file__, "--child", mode, "--events", str(events)],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict and set layouts each run
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))  # type: ignore[union-attr]


def head(events: int) -> Path:
    """The first ``events`` events of the generated session (made here, never under valgrind)."""
    import itertools

    from bench_replay import DATA, session_file

    path = DATA / f"trace-head-{events}.jsonl"
    if not path.exists():
        with open(session_file(200_000, 1), "rb") as f, open(path, "wb") as out:
            out.writelines(itertools.islice(f, events))
    return path


def retained(mode: str, events: int) -> int:
    """Bytes a child still holds after replaying ``events`` events (tracemalloc), trace ``mode``."""
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--child", mode, "--events", str(events), "--memory", "1"],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return int(done.stdout.strip().splitlines()[-1])


def child(mode: str, events: int, memory: bool = False) -> None:
    from bench_replay import DATA

    from bot.engine.loader import load_rules
    from bot.runner import tune_gc

    path = head(events)
    rules = load_rules(ROOT / "rules")
    tune_gc()
    if memory:  # what stays allocated after the replay (the engine's state, and the trace's ring when on)
        import asyncio
        import gc
        import tracemalloc

        from bot.actions.dispatcher import Dispatcher
        from bot.engine.core import Engine
        from bot.engine.trace import Tracer
        from bot.runner import replay
        from bot.sources.replay import ReplaySource

        engine = Engine(rules)
        tracemalloc.start()
        if mode == "on":
            Tracer(100).attach(engine)
        asyncio.run(replay(ReplaySource(path), engine, Dispatcher([])))
        gc.collect()
        print(tracemalloc.get_traced_memory()[0])
        return
    if events:
        one(path, rules, mode == "on", DATA / f"bench-trace-{mode}.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", type=int, default=100, help="events the trace keeps (100)")
    parser.add_argument("--instructions", type=int, metavar="EVENTS", help="count instructions (valgrind)")
    parser.add_argument("--memory", type=int, metavar="EVENTS", help="bytes the trace keeps alive (tracemalloc)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.events, bool(args.memory))
        return
    if args.memory and not args.child:
        n = args.memory
        head(n)
        off, on = retained("off", n), retained("on", n)
        print(f"first {n:,} events; bytes allocated after the replay (tracemalloc): trace off {off:,}, on {on:,}; "
              f"the trace keeps {on - off:,} bytes ({(on - off) / 100:,.0f} per event kept)")
        return
    if args.instructions:
        n = args.instructions
        head(0), head(n)
        start = instructions("off", 0)
        off, on = instructions("off", n) - start, instructions("on", n) - start
        print(f"first {n:,} events of the generated session; instructions (callgrind), start-up subtracted")
        print(f"trace off {off:>15,}   {off / n:>9,.0f} per event")
        print(f"trace on  {on:>15,}   {on / n:>9,.0f} per event")
        print(f"trace on ÷ off: {off / on:.3f}; cost {on / off - 1:+.2%} — target <= 3%: "
              f"{'met' if on / off - 1 <= 0.03 else 'NOT met'}")
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from bench_replay import DATA, session_file

    from bot.engine.loader import load_rules
    from bot.runner import tune_gc

    path = session_file(args.events, args.seed)
    rules = load_rules(ROOT / "rules")
    tune_gc()
    out = DATA / "bench-trace-actions.jsonl"
    times: dict[bool, list[float]] = {False: [], True: []}
    events = 0
    for _ in range(args.rounds):
        for traced in (False, True):
            seconds, events = one(path, rules, traced, out, args.size)
            times[traced].append(seconds)
    print(f"session: {path.name}, {events:,} events; trace of {args.size} events; {args.rounds} alternating "
          f"rounds of each, CPU time, one core")
    print(f"{'trace':<8} {'best events/s':>14} {'median events/s':>16}")
    for traced in (False, True):
        print(f"{'on' if traced else 'off':<8} {events / min(times[traced]):>14,.0f} "
              f"{events / statistics.median(times[traced]):>16,.0f}")
    best = min(times[False]) / min(times[True])
    med = statistics.median(times[False]) / statistics.median(times[True])
    print(f"trace on ÷ off: {best:.3f} (best rounds), {med:.3f} (medians); cost {1 - best:+.1%} — "
          f"target <= 3%: {'met' if 1 - best <= 0.03 else 'NOT met'}")


if __name__ == "__main__":
    main()
