"""The policy guard's cost per action, beside the same action path without it, in one run.

    python bench/bench_policy.py                 # 100,000 events, 3 rounds
    python bench/bench_policy.py --events 30000 --rounds 1

A generated session (bench/sessiongen.py, TikFinity format) goes through the starter rule pack
twice per round, interleaved: ``off`` (settings ``policy: {packs: []}``: no guard) and ``on``
(the default ``tiktok-live`` pack: viewer values cleaned before rendering, every action screened,
chat moderated). ``hostile`` is ``on`` over the same session with one viewer in five renamed to a
disguised link or payment handle (unique per viewer, so no cache hides the cost) and one comment
in ten carrying one. For each event that produced actions, the engine's time for that event is
divided by its actions: the action path's cost per action, whose p50 and p99 are reported; and
the time spent inside the guard's own calls for that event (cleaning, marking, screening,
moderating), divided the same way: the guard's cost per action ("guard p50/p99"), taken from a
separate timed run of the same mode in the same round (the timing wrapper costs time itself, so
the untimed runs give the throughput and the path's cost). Medians of the rounds; ratios from the same run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

DISGUISES = ["bit.ly/{n}", "ｂｉｔ．ｌｙ/{n}", "{n} dot com", "раураl.me/{n}", "c a s h a p p ${n}", "free{n}[.]xyz",
             "f u c k {n}", "venmo @{n}"]


def events(count: int, seed: int, hostile: bool) -> list:
    from sessiongen import generate

    from bot.events.wire import decode_line

    out = []
    rng = random.Random(seed + 1)
    renamed: dict[str, str] = {}
    for line in generate(minutes=100_000, seed=seed, max_events=count):
        for ev in decode_line(line) or ():
            if hostile and ev.user is not None:
                key = ev.user.key
                if key not in renamed:
                    renamed[key] = rng.choice(DISGUISES).format(n=f"x{len(renamed)}") if rng.random() < 0.2 else ""
                if renamed[key]:  # a copy: the decoder may share one User between events
                    ev.user = dataclasses.replace(ev.user, nickname=renamed[key])
                if ev.type == "chat" and rng.random() < 0.1:
                    ev.data["text"] = "join " + rng.choice(DISGUISES).format(n=f"c{rng.randrange(10**6)}")
            out.append(ev)
    return out


def run(mode: str, evs: list, rules_dir: Path, timed: bool = False) -> dict:
    from bot.engine.core import Engine
    from bot.engine.loader import load_rules
    from bot.policy.checks import PolicySettings
    from bot.policy.guard import Policy

    evs = copy.deepcopy(evs)  # the engine folds streaks into its events: each run gets its own
    rules = load_rules(rules_dir)
    if mode == "off":
        rules.policy = Policy(PolicySettings(packs=()))
    engine = Engine(rules)
    guard_ns = [0]
    if timed:  # time the guard's own calls (a separate run: the timing wrapper costs time itself)
        engine.policy = _Timed(engine.policy, guard_ns)
    per_action: list[float] = []
    guard_per_action: list[float] = []
    actions = 0
    gc.collect()
    gc.freeze()  # the pre-built events are not garbage to scan (a live stream holds one at a time)
    start = time.perf_counter()
    clock = time.perf_counter_ns
    for ev in evs:
        guard_ns[0] = 0
        t0 = clock()
        out = engine.feed(ev, ev.ts)
        dt = clock() - t0
        if out:
            actions += len(out)
            per_action.extend([dt / len(out) / 1000] * len(out))
            guard_per_action.extend([guard_ns[0] / len(out) / 1000] * len(out))
    actions += len(engine.close())
    total = time.perf_counter() - start
    gc.unfreeze()
    per_action.sort()
    q = statistics.quantiles(per_action, n=100)
    g = statistics.quantiles(sorted(guard_per_action), n=100) if guard_per_action else [0.0] * 99
    return {"mode": mode, "events_per_s": len(evs) / total, "actions": actions, "p50_us": q[49], "p99_us": q[98],
            "guard_p50_us": g[49], "guard_p99_us": g[98], "stats": engine.policy.stats()}


class _Timed:
    """The engine's PolicyRuntime with the time of each call added up (for the event in hand)."""

    def __init__(self, inner, acc) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._acc = inner, acc

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        attr = getattr(self._inner, name)
        if name not in ("screen", "guard_context", "mark", "moderate", "user_fields"):
            return attr

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter_ns()
            try:
                return attr(*args, **kwargs)
            finally:
                self._acc[0] += time.perf_counter_ns() - t0
        return timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rules", type=Path, default=ROOT / "rules")
    a = ap.parse_args()
    from bot.runner import tune_gc

    tune_gc()
    plain = events(a.events, a.seed, hostile=False)
    hostile = events(a.events, a.seed, hostile=True)
    results: dict[str, list[dict]] = {"off": [], "on": [], "hostile": []}
    guard: dict[str, list[dict]] = {"on": [], "hostile": []}
    for _ in range(a.rounds):
        results["off"].append(run("off", plain, a.rules))
        results["on"].append(run("on", plain, a.rules))
        results["hostile"].append(run("hostile", hostile, a.rules))
        guard["on"].append(run("on", plain, a.rules, timed=True))
        guard["hostile"].append(run("hostile", hostile, a.rules, timed=True))
    for m, rs in guard.items():  # the guard's own share comes from the timed runs
        for r, g in zip(results[m], rs):
            r["guard_p50_us"], r["guard_p99_us"] = g["guard_p50_us"], g["guard_p99_us"]
    keys = ("events_per_s", "p50_us", "p99_us", "actions", "guard_p50_us", "guard_p99_us")
    med = {m: {k: statistics.median(r[k] for r in rs) for k in keys} for m, rs in results.items()}
    print(f"{a.events:,} events, {a.rounds} round(s), medians; per action = engine time of its event / its actions")
    print(f"{'mode':8} {'events/s':>10} {'actions':>8} {'p50 µs/action':>14} {'p99 µs/action':>14} "
          f"{'guard p50':>10} {'guard p99':>10}")
    for m in ("off", "on", "hostile"):
        r = med[m]
        print(f"{m:8} {r['events_per_s']:>10,.0f} {r['actions']:>8,.0f} {r['p50_us']:>14.1f} {r['p99_us']:>14.1f} "
              f"{r['guard_p50_us']:>10.1f} {r['guard_p99_us']:>10.1f}")
    off = med["off"]
    for m in ("on", "hostile"):
        r = med[m]
        print(f"{m} vs off: p99 {r['p99_us'] / off['p99_us']:.2f}x (+{r['p99_us'] - off['p99_us']:.1f} µs), "
              f"p50 +{r['p50_us'] - off['p50_us']:.1f} µs, throughput {r['events_per_s'] / off['events_per_s']:.2f}x")
    print("guard counts (hostile, last round):", results["hostile"][-1]["stats"])


if __name__ == "__main__":
    main()
