"""The policy guard's false positives on ordinary chat (RELIABILITY.md "The policy guard").

    python bench/policy_false_positives.py

Corpora: the demo session's chat lines and nicknames (examples/demo-session.jsonl), the chat of
the shipped rule tests (rules/tests/*.yaml), tests/data/benign-chat.txt (ordinary lines in
several languages, with near-misses such as "Scunthorpe" and "assassin"), and a generated
50,000-event session (bench/sessiongen.py, seed 11). Each line goes through the default pack
(tiktok-live) as the engine runs it: viewer-text masking, and chat moderation (including its caps
and repetition rules, per viewer and time). Every flagged item is printed, so a person can judge
whether it was a true or a false positive.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402

from bot.events.model import Event, User  # noqa: E402
from bot.policy.guard import PolicyRuntime  # noqa: E402
from bot.sources.replay import ReplaySource  # noqa: E402


def measure(name: str, chats: list[tuple[int, str, str]], nicknames: list[str]) -> None:
    guard = PolicyRuntime(None)
    masked_lines = [t for _, _, t in chats if guard.clean(t)[2]]
    masked_nicks = [n for n in nicknames if guard.clean(n)[2]]
    moderated = []
    for ts, who, text in sorted(chats):
        ev = Event("chat", ts, "", "", User(who, who, who), {"text": text})
        if (m := guard.moderate(ev, ts)) is not None:
            moderated.append((m.data["reason"], text))
    n, k = len(chats), len(nicknames)
    print(f"{name}: {n} chat lines, {k} distinct nicknames; masked: {len(masked_lines)} lines "
          f"({100 * len(masked_lines) / max(n, 1):.2f}%), {len(masked_nicks)} nicknames; "
          f"moderation events: {len(moderated)} ({100 * len(moderated) / max(n, 1):.2f}%)")
    for t in masked_lines[:20]:
        print(f"   masked line: {t!r}")
    for t in masked_nicks[:20]:
        print(f"   masked nickname: {t!r}")
    for reason, t in moderated[:20]:
        print(f"   moderated ({reason}): {t!r}")


def main() -> None:
    demo = list(ReplaySource(ROOT / "examples/demo-session.jsonl").events())
    chats = [(e.ts, e.user.key if e.user else "", str(e.data.get("text", ""))) for e in demo if e.type == "chat"]
    nicks = sorted({e.user.nickname for e in demo if e.user is not None and e.user.nickname})
    measure("demo session", chats, nicks)
    tests = []
    for f in sorted((ROOT / "rules/tests").glob("*.yaml")):
        for case in yaml.safe_load(f.read_text(encoding="utf-8")).get("tests", []):
            for e in case.get("events", []):
                if e.get("type") == "chat":
                    tests.append((0, str(e.get("user", "")), str(e.get("text", ""))))
    measure("rule tests", [(i * 60_000, w, t) for i, (_, w, t) in enumerate(tests)], [])
    lines = [ln.strip() for ln in (ROOT / "tests/data/benign-chat.txt").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    measure("benign corpus", [(i * 60_000, f"v{i}", t) for i, t in enumerate(lines)], [])
    from sessiongen import generate

    from bot.events.wire import decode_line

    gen = [ev for line in generate(minutes=100_000, seed=11, max_events=50_000) for ev in decode_line(line) or ()]
    chats = [(e.ts, e.user.key if e.user else "", str(e.data.get("text", ""))) for e in gen if e.type == "chat"]
    nicks = sorted({e.user.nickname for e in gen if e.user is not None and e.user.nickname})
    measure("generated 50k-event session", chats, nicks)


if __name__ == "__main__":
    main()
