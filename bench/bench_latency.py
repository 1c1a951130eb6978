"""End-to-end latency of the live path: event sent by a local WebSocket server → action written.

    python bench/bench_latency.py                 # 2,000 events/s for 60 s
    python bench/bench_latency.py --rate 2000 --seconds 10

A feed process (a real `websockets` server on loopback, TikFinity's flat format) sends chat lines
at a steady rate, each carrying the monotonic time it was sent (CLOCK_MONOTONIC is one clock for
every process on the machine). Two receivers are measured in the same run, one after the other:

  baseline  a bare `websockets` client that parses each message and notes when it arrived: the
            transport's own latency, nothing of livebot
  livebot   `livebot run`'s live path in this process: WebSocketSource → bounded queue → engine
            (a rule echoing each chat) → dispatcher → the JSONL sink, timed right after the sink
            has written and flushed each batch

It prints p50, p99 and max for both and the ratio of livebot's p99 to the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULES = """
rules:
  - id: echo
    on: chat
    do: [{say: "{{ event.text }}"}]
"""


def feed(port_out, rate: int, seconds: float) -> None:
    """The feed process: serve one connection, send ``rate`` events/s for ``seconds``, close 4005."""
    import websockets

    async def handler(ws):
        total = int(rate * seconds)
        start = time.monotonic()
        i = 0
        while i < total:
            due = int((time.monotonic() - start) * rate) + 1
            while i < min(due, total):
                data = {"userId": f"u{i % 500}", "uniqueId": f"viewer{i % 500}", "nickname": f"V{i % 500}",
                        "msgId": f"m{i}", "comment": str(time.monotonic_ns())}
                await ws.send(orjson.dumps({"event": "chat", "data": data}))
                i += 1
            await asyncio.sleep(0.0005)
        await ws.close(code=4005, reason="stream end")

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port_out.put(server.sockets[0].getsockname()[1])
            await asyncio.sleep(seconds + 30)

    asyncio.run(main())


def start_feed(rate: int, seconds: float) -> tuple[mp.Process, str]:
    q: mp.Queue = mp.Queue()
    proc = mp.Process(target=feed, args=(q, rate, seconds), daemon=True)
    proc.start()
    return proc, f"ws://127.0.0.1:{q.get(timeout=30)}/"


async def baseline(url: str) -> list[int]:
    import websockets

    lat: list[int] = []
    async with websockets.connect(url, max_size=1 << 20) as ws:
        try:
            async for message in ws:
                now = time.monotonic_ns()
                lat.append(now - int(orjson.loads(message)["data"]["comment"]))
        except websockets.ConnectionClosed:
            pass
    return lat


class TimedSink:
    """The JSONL sink, and the latency of each action right after it is written."""

    name = "timed-jsonl"

    def __init__(self, path: Path) -> None:
        from bot.sinks import JsonlSink

        self.inner = JsonlSink(path)
        self.lat: list[int] = []

    async def send(self, actions) -> None:
        await self.inner.send(actions)
        now = time.monotonic_ns()
        self.lat.extend(now - int(a.text) for a in actions if a.rule == "echo")

    async def close(self) -> None:
        await self.inner.close()


async def livebot(url: str, out: Path) -> list[int]:
    from bot.actions.dispatcher import Dispatcher
    from bot.engine.core import Engine
    from bot.engine.loader import load_rules_text
    from bot.live import LiveRunner
    from bot.sources.websocket import WebSocketSource

    sink = TimedSink(out)
    runner = LiveRunner([WebSocketSource(url)], Engine(load_rules_text(RULES)), Dispatcher([sink]))
    await runner.run()
    await sink.close()
    return sink.lat


def pct(values: list[int], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1e6


def report(name: str, lat: list[int], expected: int) -> dict:
    row = {"name": name, "n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) / 1e6,
           "mean": statistics.fmean(lat) / 1e6}
    print(f"{name:<9} {row['n']:>7}/{expected} events   p50 {row['p50']:7.3f} ms   p99 {row['p99']:7.3f} ms   "
          f"max {row['max']:8.3f} ms")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=2000, help="events per second (default 2000)")
    ap.add_argument("--seconds", type=float, default=60, help="how long each receiver is fed (default 60)")
    args = ap.parse_args()
    expected = int(args.rate * args.seconds)
    import structlog
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from bot.runner import tune_gc

    tune_gc()
    print(f"{args.rate} events/s for {args.seconds:g} s each; python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    proc, url = start_feed(args.rate, args.seconds)
    base = report("baseline", asyncio.run(baseline(url)), expected)
    proc.join(timeout=5)
    proc.kill()
    proc, url = start_feed(args.rate, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        live = report("livebot", asyncio.run(livebot(url, Path(tmp) / "actions.jsonl")), expected)
    proc.kill()
    print(f"livebot p99 / baseline p99 = {live['p99'] / base['p99']:.2f}; "
          f"target p99 < 10 ms: {'met' if live['p99'] < 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
