"""Scaling out on Redis: worker throughput with 1 and 2 worker processes over many rooms, and what
the Redis path costs against replaying the same events in-process, measured side by side.

    python bench/bench_redis.py                       # 50 rooms, 300,000 events, 3 rounds
    python bench/bench_redis.py --rooms 50 --events 100000 --rounds 1

Starts its own redis-server on a free loopback port (apt-get install redis-server). The events:
one seeded simulated session per room (``bench/sessiongen.py``, seed = room number + 1, TikFinity
flat format, decoded to normalized events), shifted to end "now", with the starter rule pack.
Modes, interleaved per round, medians reported:

  inproc    in-process replay of the same events: each event's record (the JSON a stream entry
            holds) decoded and fed to its room's Engine, in one process pinned to one core; no
            Redis, no I/O: the baseline
  ingest    appending every room's events to Redis (``bot.scale.ingest.append_events``:
            pipelined XADD, 256 per round trip), from one process: events/s appended
  workers1  one ``livebot run --source redis://...`` process drains the 50 pre-filled streams
  workers2  two worker processes share them (25 rooms each)

A worker run: the workers start and claim the (empty) rooms; then the pre-filled streams are
swapped in with one MULTI of RENAMEs (so start-up and claiming are not timed); the time to drain
ends when every room's consumer group has lag 0 (everything delivered; each worker processes a
read before its next one). Checkpoints (every 1 s, the default) and action publishing are
included. The machine has 2 cores: with 2 workers, redis-server and this script share them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def rooms_file(rooms: int, events: int) -> Path:
    """Every room's events as normalized JSONL lines ``{"room": ..., "e": {...}}`` (made once)."""
    path = DATA / f"redis-{rooms}rooms-{events}.jsonl"
    if path.exists():
        return path
    sys.path.insert(0, str(HERE))
    import orjson
    from sessiongen import generate

    from bot.events.wire import DecodeError, decode_line

    DATA.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    per_room = events // rooms
    with open(tmp, "wb") as f:
        for i in range(rooms):
            room = f"room-{i:03d}"
            for line in generate(minutes=100_000, seed=i + 1, max_events=per_room):
                try:
                    evs = decode_line(line)
                except DecodeError:
                    continue
                for ev in evs:
                    f.write(orjson.dumps({"room": room, "e": ev.to_dict(with_raw=False)}) + b"\n")
    tmp.rename(path)
    return path


def load_events(path: Path, shift_to_now: bool) -> dict[str, list]:
    """Room -> events; receive time = the event's time, shifted so the last one is now."""
    import orjson

    from bot.events.wire import decode_obj

    by_room: dict[str, list] = {}
    for line in open(path, "rb"):
        rec = orjson.loads(line)
        [ev] = decode_obj(rec["e"])
        if ev.type != "live_end":  # the streams go on (so there is a snapshot to weigh)
            by_room.setdefault(rec["room"], []).append(ev)
    last = max(ev.ts for evs in by_room.values() for ev in evs)
    shift = (time.time_ns() // 1_000_000 - last) if shift_to_now else 0
    for evs in by_room.values():
        for ev in evs:
            ev.received = ev.ts + shift
    return by_room


# -- modes ----------------------------------------------------------------------------------------

def child_inproc(path: Path, rules: Path) -> dict:
    """In-process replay of the same events: each room's records (the JSON a stream entry holds)
    decoded and fed to the room's Engine, room after room, in one process on one core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from bot.engine.core import Engine
    from bot.engine.loader import load_rules
    from bot.runner import tune_gc
    from bot.scale.ingest import decode_value, encode_event

    records = {room: [encode_event(ev) for ev in evs] for room, evs in load_events(path, shift_to_now=True).items()}
    ruleset = load_rules(rules)
    tune_gc()
    events = actions = 0
    start = time.perf_counter()
    from bot.config import engine_options, load_config

    # (the workers' engine settings: the same config, so the overlay's board updates are fired here too)
    options = engine_options(load_config(write_config(path.parent, rules.resolve())))
    for recs in records.values():
        engine = Engine(ruleset, **options)
        last = 0
        for raw in recs:
            ev = decode_value(raw)
            last = max(last, ev.received)
            actions += len(engine.feed(ev, last))
        events += len(recs)
    seconds = time.perf_counter() - start
    return {"mode": "inproc", "events": events, "actions": actions, "seconds": seconds, "eps": events / seconds}


async def fill(client, by_room: dict[str, list], prefix: str) -> float:
    """Append every room's events under ``prefix``; returns the seconds it took."""
    from bot.scale.ingest import append_events

    start = time.perf_counter()
    for room, evs in by_room.items():
        for i in range(0, len(evs), 256):
            await append_events(client, room, evs[i:i + 256], prefix=prefix, maxlen=0)
    return time.perf_counter() - start


def write_config(folder: Path, rules: Path) -> Path:
    cfg = folder / "bench-redis-config.yaml"
    cfg.write_text(f"rules: {rules}\nsinks: {{console: false}}\nhttp: {{enabled: false}}\n"
                   f"reload: {{watch: false}}\nredis:\n  lease: 1500ms\n  stream_maxlen: 0\n")
    return cfg


async def worker_run(url: str, by_room: dict[str, list], n_workers: int, cfg: Path) -> dict:
    import redis.asyncio as aioredis

    from bot.scale.ingest import register_room
    from bot.scale.keys import Keys

    keys = Keys("livebot")
    client = aioredis.from_url(url)
    await client.flushall()
    events = sum(len(v) for v in by_room.values())
    fill_s = await fill(client, by_room, "fill")
    for room in by_room:
        await client.xgroup_create(Keys("fill").events(room), "workers", id="0")
    mem_filled = (await client.info("memory"))["used_memory"]
    for room in by_room:
        await register_room(client, room)
    procs = [subprocess.Popen([sys.executable, "-m", "bot", "--log-level", "warning", "run", "-c", str(cfg),
                               "--source", url, "--worker-id", f"bench-w{i}"], cwd=ROOT)
             for i in range(n_workers)]
    try:
        while True:  # every room claimed, by every worker
            owners = await client.mget([keys.owner(r) for r in by_room])
            if all(owners) and len(set(owners)) == n_workers:
                break
            await asyncio.sleep(0.01)
        pipe = client.pipeline(transaction=True)
        for room in by_room:
            pipe.rename(Keys("fill").events(room), keys.events(room))
        start = time.perf_counter()
        await pipe.execute()
        streams = [keys.events(r) for r in by_room]
        while True:  # one pipelined look at every group, every 20 ms
            pipe = client.pipeline(transaction=False)
            for s in streams:
                pipe.xinfo_groups(s)
            lags = [1 if g["lag"] is None else g["lag"] for [g] in await pipe.execute()]
            if not any(lags):
                break
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - start
        while True:  # the last checkpoints (not timed)
            pending = [(await client.xpending(s, "workers"))["pending"] for s in streams]
            if not any(pending):
                break
            await asyncio.sleep(0.05)
        snap_bytes = [await client.hstrlen(keys.snapshot(r), "data") for r in by_room]
        actions = sum([await client.xlen(keys.actions(r)) for r in by_room])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        await client.aclose()
    return {"mode": f"workers{n_workers}", "events": events, "actions": actions, "seconds": seconds,
            "eps": events / seconds, "ingest_eps": events / fill_s, "mem_filled": mem_filled,
            "snapshot_bytes_mean": statistics.mean(snap_bytes), "snapshot_bytes_max": max(snap_bytes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "inproc":
        print(json.dumps(child_inproc(args.file, args.rules)))
        return

    from redis_server import start_redis, stop_redis

    path = rooms_file(args.rooms, args.events)
    server = start_redis(DATA / "redis")
    cfg = write_config(DATA, args.rules.resolve())
    runs: dict[str, list[dict]] = {m: [] for m in ("inproc", "workers1", "workers2")}
    try:
        for _ in range(args.rounds):
            done = subprocess.run([sys.executable, __file__, "--child", "inproc", "--file", str(path),
                                   "--rules", str(args.rules)], check=True, capture_output=True, text=True)
            runs["inproc"].append(json.loads(done.stdout.strip().splitlines()[-1]))
            for n in (1, 2):
                by_room = load_events(path, shift_to_now=True)
                runs[f"workers{n}"].append(asyncio.run(worker_run(server.url, by_room, n, cfg)))
    finally:
        stop_redis(server)
    med = {m: statistics.median(r["eps"] for r in rs) for m, rs in runs.items()}
    ingest = statistics.median(r["ingest_eps"] for m in ("workers1", "workers2") for r in runs[m])
    w1 = runs["workers1"][0]
    print(f"{args.rooms} rooms, {w1['events']:,} events ({w1['events'] // args.rooms:,} per room), "
          f"starter rule pack; median of {args.rounds} round(s)")
    print(f"{'mode':<10} {'events/s':>10} {'÷ inproc':>9}  actions")
    for m in ("inproc", "workers1", "workers2"):
        acts = runs[m][0]["actions"]
        print(f"{m:<10} {med[m]:>10,.0f} {med[m] / med['inproc']:>9.2f}  {acts:,}")
    print(f"{'ingest':<10} {ingest:>10,.0f} {ingest / med['inproc']:>9.2f}  (XADD, pipelined 256, one client)")
    print(f"2 workers ÷ 1 worker: {med['workers2'] / med['workers1']:.2f}")
    print(f"per event: engine {1e6 / med['inproc']:.1f} µs, whole Redis path (1 worker) {1e6 / med['workers1']:.1f} µs, "
          f"ingest append {1e6 / ingest:.1f} µs")
    print(f"Redis memory with the streams filled: {w1['mem_filled'] / w1['events']:.0f} bytes per event; "
          f"engine snapshot per room: {w1['snapshot_bytes_mean'] / 1024:.0f} KiB mean, "
          f"{w1['snapshot_bytes_max'] / 1024:.0f} KiB max")


if __name__ == "__main__":
    main()
