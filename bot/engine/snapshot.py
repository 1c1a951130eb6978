"""What of an engine survives a restart mid-stream, as plain JSON-able data.

Kept: session statistics, per-viewer counters and variables, the leaderboard, cooldowns, "once"
sets, hourly caps, milestones reached, rule firing counts, the most recent message ids (so a
reconnect backlog after a restart is still dropped) and the open poll and quiz. Not kept: open
gift streaks, the chat budget and timers: ``full_snapshot`` (below) adds them, for a Redis worker's
takeover and the daemon's restart after a crash.

Open poll and quiz (key ``"polls"``: ``{"poll": {...} | null, "quiz": {...} | null}``): the
question, the options (a quiz: its normalized answers and the answer it shows), the votes by
viewer key (last vote counts, so a viewer who votes again after a restart changes their vote, as
before it), the rule id, the open time and the close deadline (engine time, ms), the result
texts as template source, and the opening rule's context (the values the result text reads;
``vars`` and ``user.vars`` are written as links, ``"links"``, and joined again to the restored
variables, so the result sees the variables as they are at the close, as without a restart),
and when live counts (``poll_update``) were last sent; whether they are sent at all is the
restored engine's ``poll_update_ms``. After ``restore`` the engine's ``next_deadline`` includes
the deadline, and ``advance`` closes the poll with the same ``poll_result`` (a quiz: the same
timeout line) as if the process had kept running; a deadline passed while the bot was down
closes it at the first ``advance``.

A poll or quiz closes with the texts it was opened with, under its rule id, even if the rules
changed meanwhile, and also if its rule is gone (logged as ``poll_rule_gone``): what a rules
reload without a restart does too (``Engine.replace_rules`` keeps open polls). The viewers were
told to vote; they hear the result. (A gone rule is stood in for by its id: a quiz's lines then
go through the chat budget with priority 0 and no merge text.)

On-stream features (``"features"``, optional, ``bot/engine/features.py``): goals' counts this
stream, the subathon timer, credits names, points earned this stream, the open giveaway, voices.

Format: ``VERSION`` stays 1, ``"polls"`` is optional: a snapshot written before it (no
``"polls"``) restores with no open poll, and an older bot reading a newer snapshot ignores it.
A damaged ``"polls"`` entry makes ``restore`` raise ValueError, like any damaged part.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Any

import structlog

from bot.actions.model import Action
from bot.engine.budget import _Waiting
from bot.engine.polls import Poll, Quiz
from bot.engine.rules import Rule
from bot.engine.state import ViewerStats
from bot.engine.templates import Text
from bot.engine.yamlfile import Pos
from bot.engine.timers import Timers
from bot.events.model import Event, User
from bot.events.streaks import _Streak
from bot.events.wire import decode_obj

if TYPE_CHECKING:
    from bot.engine.core import Engine

log = structlog.get_logger("bot.state")

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
        "polls": {"poll": _poll(engine), "quiz": _quiz(engine)},
        # -- h17 on-stream features (bot/engine/features.py): goals' counts, the subathon timer --
        "features": engine.features.snapshot(),
        "policy": engine.policy.snapshot(),  # moderation strikes and mutes, the guard's counts
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
        _restore_polls(engine, snap.get("polls"))
        # -- h17 on-stream features (optional: older snapshots have none) --
        if snap.get("features") is not None:
            engine.features.restore(snap["features"])
            if (due := engine.features.next_due()) is not None:
                engine._lower_floor(due)
        engine.policy.restore(snap.get("policy"))  # (absent from snapshots before the policy guard)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"a damaged engine snapshot: {type(exc).__name__}: {exc}") from None


# -- the open poll and quiz ----------------------------------------------------------------------

_MAX_INT = 2**63 - 1


def _plain(value: Any) -> Any:
    """A copy made of JSON types only (anything else as its text): a snapshot must always save."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -_MAX_INT <= value <= _MAX_INT else str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _context(engine: Any, context: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The opening rule's context as data, and the links to live variables it held."""
    st = engine.state
    ctx = dict(context)
    links: dict[str, Any] = {}
    if "vars" in ctx and ctx["vars"] is st.vars:
        del ctx["vars"]
        links["vars"] = True
    user = ctx.get("user")
    if isinstance(user, dict) and "vars" in user:
        key = user.get("user_id") or user.get("unique_id")  # ``User.key``
        if isinstance(key, str) and key in st.user_vars and st.user_vars[key] is user["vars"]:
            ctx["user"] = {k: v for k, v in user.items() if k != "vars"}
            links["user_vars"] = key
    return _plain(ctx), links


def _linked(engine: Any, ctx: Any, links: Any) -> dict[str, Any]:
    if not isinstance(ctx, dict) or not isinstance(links, dict):
        raise TypeError("a poll's context and links must be mappings")
    ctx = dict(ctx)
    if links.get("vars"):
        ctx["vars"] = engine.state.vars
    key = links.get("user_vars")
    if key is not None:
        if not isinstance(key, str) or not isinstance(ctx.get("user"), dict):
            raise TypeError("a poll's user link is damaged")
        ctx["user"] = {**ctx["user"], "vars": engine.state.user_vars.setdefault(key, {})}
    return ctx


def _poll(engine: Any) -> dict[str, Any] | None:
    p = engine.poll
    if p is None:
        return None
    ctx, links = _context(engine, p.context)
    return {"rule": p.rule.id, "question": p.question, "options": list(p.options), "opened": p.opened,
            "ends": p.ends, "result": p.result.source, "context": ctx, "links": links, "votes": dict(p.votes),
            "shown_at": p._shown_at, "changed_at": p._changed_at}


def _quiz(engine: Any) -> dict[str, Any] | None:
    q = engine.quiz
    if q is None:
        return None
    ctx, links = _context(engine, q.context)
    return {"rule": q.rule.id, "question": q.question, "answers": sorted(q.answers), "shown_answer": q.shown_answer,
            "opened": q.opened, "ends": q.ends, "win": q.win.source, "timeout": q.timeout.source, "context": ctx,
            "links": links}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _time(value: Any) -> int | None:
    return None if value is None else int(value)


def _rule(engine: Any, rule_id: Any, what: str) -> Rule:
    """The poll's rule; a stand-in with its id if the rules no longer have it."""
    rule = engine.rules.get(_text(rule_id))
    if rule is None:
        log.info("poll_rule_gone", rule=rule_id, open=what)
        rule = Rule(rule_id, Pos("(snapshot)", 1, 1), [])
    return rule


def _restore_polls(engine: Any, data: Any) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise TypeError("'polls' must be a mapping")
    p = data.get("poll")
    if p is not None:
        if not isinstance(p["options"], list):
            raise TypeError("a poll's options must be a list")
        options = [_text(o) for o in p["options"]]
        if not options:
            raise ValueError("a poll without options")
        votes = {_text(k): int(v) for k, v in p["votes"].items()}
        if any(not 0 <= v < len(options) for v in votes.values()):
            raise ValueError("a vote for an option the poll does not have")
        poll = Poll(_rule(engine, p["rule"], "poll"), _text(p["question"]), options, int(p["ends"]),
                    Text(_text(p["result"])), _linked(engine, p["context"], p["links"]), votes=votes,
                    update_ms=engine.poll_update_ms, opened=_time(p["opened"]))
        poll._shown_at, poll._changed_at = _time(p["shown_at"]), _time(p["changed_at"])
        engine.poll = poll
        update = poll.update_due()
        engine._lower_floor(poll.ends if update is None else min(update, poll.ends))
    q = data.get("quiz")
    if q is not None:
        if not isinstance(q["answers"], list):
            raise TypeError("a quiz's answers must be a list")
        answers = {_text(a) for a in q["answers"]}
        if not answers:
            raise ValueError("a quiz without answers")
        engine.quiz = Quiz(_rule(engine, q["rule"], "quiz"), _text(q["question"]), answers,
                           _text(q["shown_answer"]), int(q["ends"]), Text(_text(q["win"])),
                           Text(_text(q["timeout"])), _linked(engine, q["context"], q["links"]),
                           opened=_time(q["opened"]))
        engine._lower_floor(engine.quiz.ends)


# == the full snapshot ============================================================================
#
# What a takeover or a crash needs beyond ``snapshot``. A room moving to another Redis worker, or
# the daemon restarting after a crash, replays events the saved state does not know
# (unacknowledged entries; the recording past the snapshot), and de-duplication of the actions
# (markers; the delivery journal) only works if that replay fires the *same* actions. So the parts
# of the engine that decide what fires next are kept too, under the key ``"scale"`` (``restore``
# ignores it). Both the Redis workers and the daemon's ``StateKeeper`` use it:
#
# - open gift streaks and recently flushed ones (a late end frame is still absorbed, not thanked);
# - the chat budget: tokens, waiting lines (with their merge text, found again by rule id), the
#   dedup memory of sent lines;
# - timers' schedules; ``since`` marks; recent chat times (the chat-rate statistic).
#
# This reads private attributes of ``StreakFolder``, ``ChatBudget``, ``Timers`` and ``Engine``;
# ``tests/test_redis_units.py`` checks that a restored engine fires exactly what the original
# fires, so a change there shows up as a failing test.

TAKEOVER_RECENT_IDS = 5000  # message ids kept in a worker's checkpoint (the daemon's snapshot keeps RECENT_IDS)


def full_snapshot(engine: Engine, recent_ids: int = TAKEOVER_RECENT_IDS) -> dict[str, Any]:
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
