"""Replay throughput of this tree against another (e.g. main), interleaved in one run.

    git archive main | tar -x -C /tmp/livebot-main      # the baseline tree
    python bench/ab_replay.py --baseline /tmp/livebot-main --events 200000 --rounds 5

Runs ``bench/bench_replay.py --child MODE`` of each tree alternately (baseline, this, baseline, ...)
over the same generated session file, and reports per tree the median events/s by wall clock and by
CPU time (the child's user + system seconds). On a shared, busy machine the wall-clock figures swing
with the neighbours' load; CPU time is steadier, and alternating the trees spreads the load over both.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_child(tree: Path, mode: str, path: Path, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, str(tree / "bench" / "bench_replay.py"), "--child", mode, "--file", str(path),
           "--rules", str(tree / "rules"), "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tree)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["cpu_eps"] = result["events"] / cpu if cpu > 0 else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the other tree (its bench/ and rules/)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default="decode,pipeline")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_replay import DATA, session_file

    path = session_file(args.events, args.seed)
    trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    modes = args.modes.split(",")
    runs: dict[tuple[str, str], list[dict]] = {(t, m): [] for t in trees for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            for name, tree in trees.items():
                runs[(name, mode)].append(run_child(tree, mode, path, DATA / f"ab-{name}-actions.jsonl"))
    print(f"session: {path.name}; median of {args.rounds} interleaved round(s); baseline: {trees['baseline']}")
    print(f"{'mode':<10} {'tree':<9} {'events/s (wall)':>16} {'events/s (cpu)':>15}")
    for mode in modes:
        med = {}
        for name in trees:
            r = runs[(name, mode)]
            med[name] = (statistics.median(x["eps"] for x in r), statistics.median(x["cpu_eps"] for x in r))
            print(f"{mode:<10} {name:<9} {med[name][0]:>16,.0f} {med[name][1]:>15,.0f}")
        print(f"{mode:<10} {'ratio':<9} {med['this'][0] / med['baseline'][0]:>16.3f} "
              f"{med['this'][1] / med['baseline'][1]:>15.3f}")


if __name__ == "__main__":
    main()
