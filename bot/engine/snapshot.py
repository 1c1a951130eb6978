"""What of an engine survives a restart mid-stream, as plain JSON-able data.

Kept: session statistics, per-viewer counters and variables, the leaderboard, cooldowns, "once"
sets, hourly caps, milestones reached, rule firing counts and the most recent message ids (so a
reconnect backlog after a restart is still dropped). Not kept: open gift streaks, polls and quizzes
(they end with the process) and timers (they start again from the restart).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from bot.engine.state import ViewerStats
from bot.events.model import User

VERSION = 1
RECENT_IDS = 20_000  # message ids kept: more than a reconnect backlog


def snapshot(engine: Any) -> dict[str, Any]:
    st = engine.state
    board = engine.board
    return {
        "version": VERSION,
        "state": {
            "counts": st.counts, "diamonds": st.diamonds, "likes": st.likes, "viewers": st.viewers,
            "peak_viewers": st.peak_viewers, "started": st.started, "vars": st.vars, "user_vars": st.user_vars,
            "viewers_by_key": {k: [v.first_seen, v.chats, v.gifts, v.diamonds, v.likes, v.last_thanked]
                               for k, v in st.viewers_by_key.items()},
        },
        "board": [[key, -neg, seq, *board._who[key]] for neg, seq, key in board._order],
        "fired": dict(engine.fired),
        "counters": dict(engine.counters),
        "last_fire": engine._last_fire,
        "user_fire": engine._user_fire,
        "once": {r: sorted(keys) for r, keys in engine._once.items()},
        "hour": {r: list(times) for r, times in engine._hour.items()},
        "chat_at_fire": engine._chat_at_fire,
        "milestones": [[r, u, v] for (r, u), v in engine._milestone_seen.items()],
        "recent_ids": engine.dedup.recent(RECENT_IDS),
    }


def restore(engine: Any, snap: dict[str, Any]) -> None:
    """Load a ``snapshot`` into a fresh engine (lifetime totals from earlier sessions stay as given).

    Raises ValueError for a snapshot of another version or shape."""
    if not isinstance(snap, dict) or snap.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} engine snapshot")
    try:
        s = snap["state"]
        st = engine.state
        st.counts.update({k: int(v) for k, v in s["counts"].items() if k in st.counts})
        st.diamonds, st.likes = int(s["diamonds"]), int(s["likes"])
        st.viewers, st.peak_viewers, st.started = int(s["viewers"]), int(s["peak_viewers"]), s["started"]
        st.vars, st.user_vars = dict(s["vars"]), {k: dict(v) for k, v in s["user_vars"].items()}
        st.viewers_by_key = {k: ViewerStats(first_seen=v[0], chats=v[1], gifts=v[2], diamonds=v[3], likes=v[4],
                                            last_thanked=v[5]) for k, v in s["viewers_by_key"].items()}
        for key, diamonds, _seq, unique_id, nickname in snap["board"]:  # best first: replaying keeps ties' order
            engine.board.add(User(user_id=key, unique_id=unique_id, nickname=nickname), int(diamonds))
        engine.fired.update(snap["fired"])
        engine.counters.update(snap["counters"])
        engine._last_fire = {r: int(t) for r, t in snap["last_fire"].items()}
        engine._user_fire = {r: {u: int(t) for u, t in m.items()} for r, m in snap["user_fire"].items()}
        engine._once = {r: set(keys) for r, keys in snap["once"].items()}
        engine._hour = {r: deque(int(t) for t in times) for r, times in snap["hour"].items()}
        engine._chat_at_fire = {r: int(n) for r, n in snap["chat_at_fire"].items()}
        engine._milestone_seen = {(r, u): float(v) for r, u, v in snap["milestones"]}
        for msg_id in snap["recent_ids"]:
            engine.dedup.is_duplicate(msg_id)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"a damaged engine snapshot: {type(exc).__name__}: {exc}") from None
