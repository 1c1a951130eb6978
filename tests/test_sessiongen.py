"""The session simulator behind the demo and the benchmarks: deterministic and realistic."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from sessiongen import generate  # noqa: E402


def lines(**kw):
    return list(generate(kw.pop("minutes", 5), kw.pop("seed", 3), **kw))


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert lines() == lines()
    assert lines() != lines(seed=4)


def test_every_line_is_the_flat_format_except_the_broken_ones():
    broken = 0
    names = Counter()
    for line in lines(minutes=10, malformed=True):
        try:
            obj = orjson.loads(line)
            assert set(obj) == {"event", "data"}
            names[obj["event"]] += 1
            if obj["event"] == "gift" and obj["data"].get("giftId") == "oops":
                broken += 1
        except orjson.JSONDecodeError:
            broken += 1
    assert broken == 2
    assert {"chat", "gift", "like", "member", "social", "roomUser", "streamEnd"} <= set(names)
    assert names["like"] > names["chat"] > names["gift"] / 3


def test_streaks_grow_and_end_once_and_backlogs_repeat_earlier_lines():
    seen: dict[bytes, int] = {}
    repeats = 0
    streaks = defaultdict(list)
    for i, line in enumerate(lines(minutes=20)):
        if line in seen:
            repeats += 1
            continue
        seen[line] = i
        d = orjson.loads(line)["data"]
        if orjson.loads(line)["event"] == "gift" and d["giftType"] == 1:
            streaks[(d["userId"], d["groupId"])].append((d["repeatCount"], d["repeatEnd"]))
    assert repeats >= 10  # a reconnect backlog, same msgIds
    ends = [frames.count((frames[-1][0], True)) for frames in streaks.values()]
    assert all(n <= 1 for n in ends)
    assert all(a[0] <= b[0] for frames in streaks.values() for a, b in zip(frames, frames[1:]))
    assert 0 < ends.count(0) < len(ends) / 5  # a few streaks lose their end frame


def test_event_limit():
    assert len(lines(minutes=1e9, max_events=1234)) == 1234
