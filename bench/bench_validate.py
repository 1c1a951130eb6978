"""Validating and loading large rule files (issue 14, item 10).

    python bench/bench_validate.py                 # 1,000 rules; then 50,000 (refused)
    python bench/bench_validate.py --rules 5000 --no-big

Writes a rule file of N distinct rules (each a `when:` condition, a cooldown and a templated
`say:`), then times, in this process (CPU time, best of --repeat):

- baseline: PyYAML's C loader reading the same file (``yaml.load(text, CSafeLoader)``): the
  least any validator that reads YAML must spend;
- validate: ``livebot validate``'s load (every check, positions, no code generation);
- load: ``load_rules`` as ``livebot run`` does it (templates compiled to Python).

and prints each with its ratio to the baseline. Then a file of 50,000 rules through validate: the
message it gives and how long it took (it must name the rule limit, not aliases).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.engine.loader import RuleLoadError, load_rules  # noqa: E402
from bot.engine.templates import check_only  # noqa: E402


def write_rules(path: Path, n: int) -> None:
    out = ["rules:"]
    for i in range(n):
        out.append(f"  - id: r{i}\n    on: chat\n    when: \"event.text == 'w{i}' and user.chats > 1\"\n"
                   f"    cooldown: 30s\n    do: [{{say: \"hi {{{{ user.nickname }}}} #{i}\"}}]")
    path.write_text("\n".join(out) + "\n")


def cpu(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def validate(path: Path) -> None:
    with check_only():
        load_rules(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-big", action="store_true", help="skip the 50,000-rule file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        write_rules(path, args.rules)
        text = path.read_text()
        base = cpu(lambda: yaml.load(text, Loader=yaml.CSafeLoader), args.repeat)
        val = cpu(lambda: validate(path), args.repeat)
        full = cpu(lambda: load_rules(path), args.repeat)
        print(f"{args.rules:,} rules ({len(text):,} bytes), CPU seconds, best of {args.repeat}:")
        print(f"  baseline yaml.load (C):  {base:.3f} s")
        print(f"  validate (check only):   {val:.3f} s   {val / base:.1f}x the baseline")
        print(f"  load (compiled, as run): {full:.3f} s   {full / base:.1f}x the baseline")
        if not args.no_big:
            big = Path(tmp) / "big.yaml"
            write_rules(big, 50_000)
            t = time.process_time()
            try:
                validate(big)
                message = "accepted"
            except RuleLoadError as exc:
                message = exc.problems[0]
            print(f"50,000 rules: {time.process_time() - t:.1f} s CPU: {message.split(': ', 1)[1]}")


if __name__ == "__main__":
    main()
