"""Load: a burst of 10,000 events/s against the live path, with shedding on. Every gift is kept.

    python bench/bench_load.py                      # 10,000 events/s for 30 minutes
    python bench/bench_load.py --minutes 2
    python bench/bench_load.py --minutes 2 --rate 20000 --capacity 10000 --keep /tmp/load

A feed process runs a loopback `websockets` server that sends TikFinity flat lines (one event a
message, as TikFinity does) at ``--rate`` events/s for ``--minutes``: mostly likes and joins, with
chat and gifts mixed in (50 % like, 39 % join, 10 % chat, 1 % gift; 20,000 viewers; each line
carries the CLOCK_MONOTONIC time it was sent), then ends the stream (close code 4005).

This process is `livebot run`'s live path, assembled as the daemon does: WebSocketSource → the
bounded, shedding EventQueue (``--capacity``) → LiveRunner with the starter pack (rules/) →
LiveDispatcher → the JSONL sink; the recorder writes every handled event. Logging at WARNING.

It reports: events sent (by type) and the rate reached; events handled; shed by type (joins and
likes first, then chat; gifts never); gifts sent, handled and thanked (thank-gift firings: must
equal the gifts sent); what the chat budget did with the thank-you lines (20 a minute, by
design); the queue's high water; latency from the feed's send to the end of the batch that
handled the event (p50, p99, max; handled events only); RSS at the start, every minute, and at
the end. A progress line is printed every minute (useful with nohup).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from memory import rss_mb  # noqa: E402 - bench/ on the path first

MIX = (("like", 0.50), ("join", 0.39), ("chat", 0.10), ("gift", 0.01))
VIEWERS = 20_000
GIFTS = ((5655, "Rose", 1), (5655, "Rose", 1), (5655, "Rose", 1), (5827, "Ice Cream Cone", 1),
         (6064, "GG", 1), (5760, "Weights", 1), (6267, "Corgi", 299), (7934, "Heart Me", 1),
         (6033, "Doughnut", 30), (11046, "Galaxy", 1000))
CHAT = ("hello!", "hi from Spain", "love this", "!top", "what game is this?", "lol", "first time here",
        "!help", "🔥🔥🔥", "where are you from?")

# -- the feed process -----------------------------------------------------------------------------

def feed(port_out, result_out, rate: int, seconds: float, seed: int) -> None:
    """Serve one connection: ``rate`` events/s for ``seconds``, then close with 4005."""
    import websockets

    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]

    def line(i: int, kind: str, rng: random.Random) -> bytes:
        v = rng.randrange(VIEWERS)
        data = {"userId": str(10_000_000 + v), "uniqueId": f"viewer{v}", "nickname": f"Viewer {v}",
                "msgId": str(7_000_000_000 + i), "createTime": str(time.time_ns() // 1_000_000),
                "sentNs": time.monotonic_ns()}
        if kind == "like":
            data["likeCount"] = rng.randint(1, 15)
            data["totalLikeCount"] = i
            name = "like"
        elif kind == "join":
            name = "member"
        elif kind == "chat":
            data["comment"] = rng.choice(CHAT)
            name = "chat"
        else:
            gift_id, gift_name, diamonds = rng.choice(GIFTS)
            data.update(giftId=gift_id, giftName=gift_name, diamondCount=diamonds, giftType=2, repeatCount=1,
                        repeatEnd=False)
            name = "gift"
        return orjson.dumps({"event": name, "data": data})

    async def handler(ws) -> None:
        rng = random.Random(seed)
        sent: Counter[str] = Counter()
        total = int(rate * seconds)
        start = time.monotonic()
        i = 0
        batch = [kind for kind in rng.choices(kinds, weights, k=4096)]
        try:
            while i < total:
                due = min(total, int((time.monotonic() - start) * rate) + 1)
                while i < due:
                    kind = batch[i % 4096]
                    await ws.send(line(i, kind, rng))
                    sent[kind] += 1
                    i += 1
                await asyncio.sleep(0.001)
            elapsed = time.monotonic() - start
            await ws.close(code=4005, reason="stream end")
        except websockets.ConnectionClosed:
            elapsed = time.monotonic() - start
        result_out.put({"sent": dict(sent), "seconds": elapsed})

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", 0, max_size=1 << 20) as server:
            port_out.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()  # until killed

    asyncio.run(main())


# -- the bot ----------------------------------------------------------------------------------------

class Histogram:
    """Latencies in 2 % wide logarithmic buckets from 1 µs (percentiles to within 2 %)."""

    STEP = math.log(1.02)

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.n = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        self.counts[int(math.log(max(ns, 1000) / 1000) / self.STEP)] += 1
        self.n += 1
        if ns > self.max_ns:
            self.max_ns = ns

    def pct(self, p: float) -> float:
        """The p-th percentile, in ms."""
        want = p / 100 * self.n
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= want:
                return 1000 * math.exp((bucket + 1) * self.STEP) / 1e6
        return 0.0


async def run_bot(url: str, out: Path, capacity: int, minutes: float, progress: list) -> dict:
    from bot.actions.dispatcher import LiveDispatcher
    from bot.engine.core import Engine
    from bot.engine.loader import load_rules
    from bot.live import LiveRunner
    from bot.sinks import JsonlSink
    from bot.sources.queue import EventQueue
    from bot.sources.recorder import Recorder
    from bot.sources.websocket import WebSocketSource

    hist = Histogram()

    class TimedRunner(LiveRunner):
        async def _handle(self, batch, record=True):
            await super()._handle(batch, record)
            now = time.monotonic_ns()
            for ev in batch:
                raw = ev.raw
                if raw is not None:
                    hist.add(now - raw["data"]["sentNs"])

    engine = Engine(load_rules(ROOT / "rules"))
    dispatcher = LiveDispatcher([JsonlSink(out / "actions.jsonl")], dead_letter=out / "dead.jsonl")
    recorder = Recorder(out / "sessions", room="load")
    source = WebSocketSource(url, max_message=1 << 20)
    runner = TimedRunner([source], engine, dispatcher, recorder=recorder, queue=EventQueue(capacity))

    async def report_every_minute() -> None:
        t0 = time.monotonic()
        minute = 0
        while True:
            await asyncio.sleep(60)
            minute += 1
            handled = sum(runner.result.events.values())
            shed = sum(v for k, v in runner.queue.shed.items() if k != "like_hearts")
            row = (minute, handled, shed, runner.queue.high_water, rss_mb(), hist.pct(50), hist.pct(99))
            progress.append(row)
            print(f"  minute {minute:>3}/{minutes:g}: handled {handled:>12,}  shed {shed:>11,}  "
                  f"queue high water {row[3]:>6,}  RSS {row[4]:6.0f} MB  latency so far p50 {row[5]:8.2f} ms  "
                  f"p99 {row[6]:8.2f} ms  ({time.monotonic() - t0:.0f} s)", flush=True)

    ticker = asyncio.create_task(report_every_minute())
    try:
        result = await runner.run()
    finally:
        ticker.cancel()
    await dispatcher.close()
    return {"result": result, "engine": engine, "runner": runner, "dispatcher": dispatcher, "hist": hist,
            "recorder": recorder, "source": source}


def per_kind(path: Path, key: str | None = None) -> Counter:
    """Lines of a JSONL actions (or dead-letter, ``key="action"``) file by (rule, kind)."""
    out: Counter = Counter()
    if path.exists():
        for line in open(path, "rb"):
            d = orjson.loads(line)
            a = d[key] if key else d
            out[(a.get("rule"), a.get("kind"))] += 1
    return out


def merged_lines(path: Path, dead: bool) -> int:
    """Lines that stand for several chat lines merged by the budget."""
    n = 0
    if path.exists():
        for line in open(path, "rb"):
            d = orjson.loads(line)
            a = d["action"] if dead else d
            n += bool((a.get("data") or {}).get("merged"))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30, help="how long the burst lasts (default 30)")
    ap.add_argument("--rate", type=int, default=10_000, help="events per second (default 10,000)")
    ap.add_argument("--capacity", type=int, default=10_000, help="the event queue's capacity (source.queue_capacity)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the recording and actions in this folder")
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from bot.runner import tune_gc

    seconds = args.minutes * 60
    print(f"load: {args.rate:,} events/s for {args.minutes:g} min, TikFinity flat lines over a loopback "
          f"WebSocket → WebSocketSource → EventQueue(capacity {args.capacity:,}, shedding on) → LiveRunner "
          f"with the starter pack → LiveDispatcher → JSONL sink; recorder on. python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    ports: mp.Queue = mp.Queue()
    results: mp.Queue = mp.Queue()
    proc = mp.Process(target=feed, args=(ports, results, args.rate, seconds, args.seed), daemon=True)
    proc.start()
    url = f"ws://127.0.0.1:{ports.get(timeout=60)}/"
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-load-"))
    out.mkdir(parents=True, exist_ok=True)
    tune_gc()
    rss_start = rss_mb()
    progress: list = []
    t0 = time.perf_counter()
    try:
        got = asyncio.run(run_bot(url, out, args.capacity, args.minutes, progress))
        wall = time.perf_counter() - t0
        fed = results.get(timeout=60)
    finally:
        proc.kill()
    rss_end = rss_mb()

    result, engine, runner, hist = got["result"], got["engine"], got["runner"], got["hist"]
    recorder, dispatcher, source = got["recorder"], got["dispatcher"], got["source"]
    sent: Counter[str] = Counter(fed["sent"])
    total_sent = sum(sent.values())
    events = {k: v for k, v in result.events.items() if k not in ("connect", "disconnect", "live_end")}
    handled = sum(events.values())
    shed = Counter({k: v for k, v in runner.queue.shed.items() if k != "like_hearts"})
    gifts_sent, gifts_handled = sent["gift"], events.get("gift", 0)
    thanked = engine.fired["thank-gift"]
    budget = runner.counts.budget(runner.engine)  # (the whole process: the 4005 at the end started a fresh engine)
    at_sink = per_kind(out / "actions.jsonl")
    dead = per_kind(out / "dead.jsonl", key="action")
    rec_lines = sum(1 for f in recorder.files for _ in open(f, "rb"))
    rec_mb = sum(f.stat().st_size for f in recorder.files) / 2**20
    jsonl = dispatcher.stats["jsonl"]

    print()
    print(f"events sent     {total_sent:>12,} in {fed['seconds']:.1f} s = {total_sent / fed['seconds']:,.0f}/s  "
          f"({', '.join(f'{k} {v:,}' for k, v in sent.most_common())})")
    print(f"events handled  {handled:>12,}  ({', '.join(f'{k} {v:,}' for k, v in Counter(events).most_common())})")
    print(f"events shed     {sum(shed.values()):>12,}  ({', '.join(f'{k} {v:,}' for k, v in shed.most_common()) or 'none'})"
          f"; likes' hearts shed {runner.queue.shed.get('like_hearts', 0):,}")
    print(f"accounted       sent {total_sent:,} = handled {handled:,} + shed {sum(shed.values()):,} + malformed "
          f"{source.malformed}: {'yes' if total_sent == handled + sum(shed.values()) + source.malformed else 'NO'}")
    ok = gifts_sent == gifts_handled == thanked and shed["gift"] == 0
    print(f"gifts           sent {gifts_sent:,}, handled {gifts_handled:,}, shed {shed['gift']}, thank-gift rule "
          f"firings {thanked:,} (before the chat budget): {'every gift kept and fired on' if ok else 'NOT EQUAL'}")
    for name, counts, file, dead_file in (("JSONL sink", at_sink, "actions.jsonl", False),
                                          ("dead letters", dead, "dead.jsonl", True)):
        kinds: Counter = Counter()
        for (_rule, kind), n in counts.items():
            kinds[kind] += n
        print(f"{name:<15} by kind: {', '.join(f'{k} {v:,}' for k, v in kinds.most_common()) or 'none'}; "
              f"thank-gift {', '.join(f'{k} {n:,}' for (r, k), n in sorted(counts.items(), key=str) if r == 'thank-gift') or 'none'} "
              f"(lines standing for merged ones {merged_lines(out / file, dead_file):,})")
    print(f"chat budget     thank-you and other chat lines queued {budget['queued']:,}, merged {budget['merged']:,}, "
          f"dropped (budget full) {budget['dropped_full']:,}, dropped (stale) {budget['dropped_stale']:,}, "
          f"deduplicated {budget['deduplicated']:,}, held at the stream's end (dead-lettered) "
          f"{budget['held_at_close']:,} (20 lines a minute, by design)")
    print(f"actions         {sum(result.actions.values()):,} ({', '.join(f'{k} {v:,}' for k, v in result.actions.most_common(6))}); "
          f"JSONL sink sent {jsonl.sent:,}, dead-lettered {jsonl.dead_lettered:,}")
    print(f"queue           high water {runner.queue.high_water:,} (capacity {args.capacity:,})")
    print(f"latency         feed send → handled: p50 {hist.pct(50):.2f} ms, p99 {hist.pct(99):.2f} ms, "
          f"max {hist.max_ns / 1e6:.1f} ms ({hist.n:,} events)")
    print(f"RSS             start {rss_start:.0f} MB, end {rss_end:.0f} MB"
          + (f", per minute: {' '.join(f'{r[4]:.0f}' for r in progress)}" if progress else ""))
    print(f"recording       {rec_lines:,} lines, {rec_mb:,.0f} MB; recorder failures {recorder.failed}")
    print(f"wall            {wall:.1f} s; output in {out}" + ("" if args.keep else " (deleted)"))
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
