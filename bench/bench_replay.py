"""Replay throughput against a decode-only baseline, measured side by side in one run.

    python bench/bench_replay.py                  # 1,000,000 events, 3 rounds
    python bench/bench_replay.py --events 200000 --rounds 1

Each measurement runs in a fresh child process pinned to one core, so peak memory (VmHWM) is
that mode's own. Modes, each over the same generated session file (TikFinity flat format):
  stdjson   read the file and json.loads (standard library) each line
  orjson    read the file and orjson.loads each line
  decode    read the file and decode each line into normalized events (bot.events.wire, which
            uses orjson): the decode-only baseline, i.e. the pipeline's own decoding step
  pipeline  the full `livebot replay --quiet --out actions.jsonl` path: source, dedup,
            streak folding, the starter rule pack, the JSONL sink
  traced    pipeline with the engine's trace recording (a 100-event ring buffer, as `livebot
            run` keeps for the control page by default) and nobody reading it
Rounds are interleaved (stdjson, orjson, decode, pipeline, stdjson, ...) and the medians are
reported, since machines here are noisy; ratios are taken between the same run's medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"


def session_file(events: int, seed: int) -> Path:
    """The generated session, made once and reused (bench/data is not committed)."""
    path = DATA / f"session-{events}-{seed}.jsonl"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from sessiongen import generate

        DATA.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for line in generate(minutes=100_000, seed=seed, max_events=events):
                f.write(line + b"\n")
        tmp.rename(path)
    return path


def child(mode: str, path: Path, rules: Path, out: Path) -> dict:
    """Run one mode in this process and return its figures."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sys.path.insert(0, str(ROOT))
    from bot.runner import tune_gc

    tune_gc()  # every mode runs with the garbage collector set as `livebot replay` sets it
    events = 0
    start = time.perf_counter()
    if mode in ("stdjson", "orjson"):
        if mode == "orjson":
            from orjson import loads
        else:
            from json import loads

        with open(path, "rb") as f:
            for line in f:
                loads(line)
                events += 1
    elif mode == "decode":
        from bot.events.wire import DecodeError, decode_line

        with open(path, "rb") as f:
            for line in f:
                try:
                    events += len(decode_line(line))
                except DecodeError:
                    pass
    elif mode in ("pipeline", "traced"):
        import asyncio

        from bot.actions.dispatcher import Dispatcher
        from bot.engine.core import Engine
        from bot.engine.loader import load_rules
        from bot.runner import replay
        from bot.sinks.jsonl import JsonlSink
        from bot.sources.replay import ReplaySource

        start = time.perf_counter()
        source = ReplaySource(path)
        dispatcher = Dispatcher([JsonlSink(out)])
        engine = Engine(load_rules(rules))
        if mode == "traced":
            from bot.engine.trace import Tracer

            Tracer(100).attach(engine)

        async def go():
            result = await replay(source, engine, dispatcher)
            await dispatcher.close()
            return result

        result = asyncio.run(go())
        events = sum(result.read.values())
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - start
    return {"mode": mode, "events": events, "seconds": seconds, "eps": events / seconds, "maxrss_mb": _peak_mb()}


def _peak_mb() -> float:
    """This process's peak resident memory. (ru_maxrss would carry the parent's peak over exec.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, path: Path, rules: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--file", str(path), "--rules", str(rules), "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules")
    parser.add_argument("--out", type=Path, default=DATA / "bench-actions.jsonl")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.file, args.rules, args.out)))
        return

    path = session_file(args.events, args.seed)
    modes = ("stdjson", "orjson", "decode", "pipeline", "traced")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            runs[mode].append(measure(mode, path, args.rules, args.out))
    med = {m: statistics.median(r["eps"] for r in runs[m]) for m in modes}
    rss = {m: max(r["maxrss_mb"] for r in runs[m]) for m in modes}
    actions = sum(1 for _ in open(args.out, "rb"))
    print(f"session: {path.name}, {runs['orjson'][0]['events']:,} lines, "
          f"{runs['pipeline'][0]['events']:,} events, {actions:,} actions; median of {args.rounds} round(s), one core")
    print(f"{'mode':<10} {'events/s':>12} {'pipeline/mode':>14} {'peak RSS':>10}")
    for m in modes:
        print(f"{m:<10} {med[m]:>12,.0f} {med['pipeline'] / med[m]:>14.2f} {rss[m]:>8.0f} MB")
    ratio = med["pipeline"] / med["decode"]
    ok = med["pipeline"] >= 50_000 and ratio >= 0.25 and rss["pipeline"] < 300
    print(f"targets (>= 50,000 events/s; >= 0.25 of the decode-only baseline, here {ratio:.2f}; "
          f"peak < 300 MB): {'met' if ok else 'NOT met'}")
    cost = 1 - med["traced"] / med["pipeline"]
    print(f"trace on, nobody reading: {med['traced'] / med['pipeline']:.3f} of the pipeline without it "
          f"({cost:+.1%} cost; target <= 3%: {'met' if cost <= 0.03 else 'NOT met'})")
    print(f"against bare parsing: {med['pipeline'] / med['orjson']:.2f} of orjson.loads, "
          f"{med['pipeline'] / med['stdjson']:.2f} of json.loads")


if __name__ == "__main__":
    main()
