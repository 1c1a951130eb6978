"""The engine snapshot a takeover or a crash needs: ``bot.engine.snapshot`` plus what it leaves out.

A room moving to another worker, or the daemon restarting after a crash, replays events the
saved state does not know (unacknowledged entries; the recording past the snapshot), and
de-duplication of the actions (markers; the delivery journal) only works if that replay fires the
*same* actions. So the parts of the engine that decide what fires next are kept too, under the
key ``"scale"`` (``bot.engine.snapshot.restore`` ignores it). Both Redis workers and the daemon's
``StateKeeper`` use it:

- open gift streaks and recently flushed ones (a late end frame is still absorbed, not thanked);
- the chat budget: tokens, waiting lines (with their merge text, found again by rule id), the
  dedup memory of sent lines;
- timers' schedules; ``since`` marks; recent chat times (the chat-rate statistic).

An open poll or quiz is kept by ``restore`` itself (``bot.engine.snapshot``), as for a daemon restart.

This reads private attributes of ``StreakFolder``, ``ChatBudget``, ``Timers`` and ``Engine``;
``tests/test_redis_units.py`` checks that a restored engine fires exactly what the original
fires, so a change there shows up as a failing test. It belongs in ``bot/engine/snapshot.py``.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

import structlog

from bot.actions.model import Action
from bot.engine.budget import _Waiting
from bot.engine.core import Engine
from bot.engine.snapshot import restore, snapshot
from bot.engine.timers import Timers
from bot.events.model import Event
from bot.events.streaks import _Streak
from bot.events.wire import decode_obj

log = structlog.get_logger("bot.scale")


RECENT_IDS = 5000  # message ids kept for a takeover (the daemon's snapshot keeps 20,000)


def full_snapshot(engine: Engine, recent_ids: int = RECENT_IDS) -> dict[str, Any]:
    """``snapshot`` plus the extras. A worker writes one per busy room every checkpoint, so it is
    kept small: the last ``recent_ids`` message ids (enough for a reconnect backlog; the running
    engine keeps its whole window)."""
    snap = snapshot(engine)
    snap["recent_ids"] = snap["recent_ids"][-recent_ids:] if recent_ids else []
    snap["scale"] = {
        "streaks": _streaks(engine),
        "budget": _budget(engine),
        "timers": _timers(engine),
        "since": engine._since,
        "recent_chats": list(engine.state._recent_chats),  # (the last minute only: the state trims as it goes)
    }
    return snap


def full_restore(engine: Engine, snap: dict[str, Any]) -> None:
    """``restore`` plus the extras; a damaged extra part is logged and left out (the engine
    then behaves as after a daemon restart). Raises ValueError like ``restore``."""
    restore(engine, snap)
    extra = snap.get("scale")
    if isinstance(extra, dict):
        for name, fn in (("streaks", _restore_streaks), ("budget", _restore_budget), ("timers", _restore_timers),
                         ("since", _restore_since), ("recent_chats", _restore_chats)):
            if name in extra:
                try:
                    fn(engine, extra[name])
                except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                    log.error("snapshot_part_unusable", part=name, error=f"{type(exc).__name__}: {exc}")
    engine._due_floor = 0  # recompute what is due at the next feed


# -- streaks -------------------------------------------------------------------------------------

def _event(ev: Event) -> dict[str, Any]:
    return ev.to_dict(with_raw=False)


def _streaks(engine: Engine) -> dict[str, Any]:
    f = engine.streaks
    return {
        "open": [[_event(s.last), s.last_seen] for s in f._open.values()],
        "flushed": [[list(k), c, at] for k, (c, at) in f._flushed.items()],
        "counts": [f.flushed, f.late_frames],
    }


def _restore_streaks(engine: Engine, data: dict[str, Any]) -> None:
    f = engine.streaks
    for d, last_seen in data["open"]:
        [ev] = decode_obj(d)
        key = f._key(ev)
        f._open[key] = _Streak(ev, int(last_seen))
        f._seq += 1
        heapq.heappush(f._deadlines, (int(last_seen) + f.silence_ms, f._seq, key))
    f._flushed = {tuple(k): (c, int(at)) for k, c, at in data["flushed"]}
    f.flushed, f.late_frames = (int(x) for x in data["counts"])


# -- chat budget ---------------------------------------------------------------------------------

def _budget(engine: Engine) -> dict[str, Any]:
    b = engine.budget
    return {
        "tokens": b._tokens, "refilled": b._refilled, "seq": b._seq, "sent_at": b._sent_at,
        "lead": getattr(b, "_lead", {}), "counters": dict(b.counters),
        "queue": [[list(w.sort_key), w.action.to_dict(), w.nickname, w.merge is not None] for w in b._queue],
    }


def _restore_budget(engine: Engine, data: dict[str, Any]) -> None:
    b = engine.budget
    b._tokens = float(data["tokens"])
    b._refilled = None if data["refilled"] is None else int(data["refilled"])
    b._seq = int(data["seq"])
    b._sent_at = {str(k): int(v) for k, v in data["sent_at"].items()}
    if hasattr(b, "_lead"):
        b._lead = {str(k): float(v) for k, v in data["lead"].items()}
    b.counters.update(data["counters"])
    queue = []
    for key, action, nickname, merged in data["queue"]:
        a = Action.from_dict(action)
        rule = engine.rules.get(a.rule)
        queue.append(_Waiting(tuple(key), a, nickname, rule.merge if merged and rule is not None else None))
    heapq.heapify(queue)
    b._queue = queue


# -- timers, since marks, chat times ---------------------------------------------------------------

def _timers(engine: Engine) -> dict[str, Any] | None:
    t = engine.timers
    if t is None:
        return None
    return {"start": t.start, "heap": [list(x) for x in t._heap], "silence": t._silence}


def _restore_timers(engine: Engine, data: dict[str, Any] | None) -> None:
    if data is None:
        return
    t = Timers(engine.rules.timers, int(data["start"]))
    known = set(t._rules)
    kept = {rule_id for _, _, rule_id, _ in (tuple(x) for x in data["heap"]) if rule_id in known}
    heap = [h for h in t._heap if h[2] not in kept]
    heap += [(int(due), int(order), str(rule_id), int(n)) for due, order, rule_id, n in data["heap"] if rule_id in known]
    heapq.heapify(heap)
    t._heap = heap
    for rule_id, due in data["silence"].items():
        if rule_id in t._silence:
            t._silence[rule_id] = None if due is None else int(due)
    engine.timers = t


def _restore_since(engine: Engine, data: dict[str, Any]) -> None:
    engine._since = {str(r): {str(k): int(v) for k, v in m.items()} for r, m in data.items()}


def _restore_chats(engine: Engine, data: list[int]) -> None:
    engine.state._recent_chats = deque(int(t) for t in data)
