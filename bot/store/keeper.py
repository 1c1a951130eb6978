"""Keeps the running engine's state in the store: resume at start, a snapshot every few seconds,
the stream folded into lifetime totals when it ends.

Beside the engine's state a snapshot keeps what a crash right after it would need (``LiveRunner``
supplies both): where the recording stood (what was handled after the save is fed again at
start) and the actions the sinks had yet to deliver (queued again at start). Together with the
delivery journal (``bot.actions.journal``, rotated after each save) a killed process neither
forgets nor repeats a thank-you.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import structlog

from bot.engine.core import Engine
from bot.engine.snapshot import RECENT_IDS, full_restore, full_snapshot
from bot.store.sqlite import SqliteStore

log = structlog.get_logger("bot.state")


def session_summary(engine: Engine, room: str, ended: int, actions: Counter[str] | None = None) -> dict[str, Any]:
    """A finished (or running) stream in numbers."""
    st = engine.state
    return {
        "room": room, "started": st.started, "ended": ended,
        "events": {k: v for k, v in st.counts.items() if v},
        "diamonds": st.diamonds, "likes": st.likes, "peak_viewers": st.peak_viewers,
        "viewers": len(st.viewers_by_key), "top_gifters": engine.board.top(10),
        "actions": dict(actions or engine.fired),
    }


class StateKeeper:
    def __init__(self, store: SqliteStore, room: str, *, every_ms: int = 5000,
                 resume_within_ms: int = 30 * 60_000) -> None:
        self.store = store
        self.room = room
        self.every_ms = every_ms
        self.resume_within_ms = resume_within_ms
        self._saved_at: int | None = None
        self._unfolded: set[str] = set()  # viewers of a stream whose fold-in failed: with the next one
        self.on_saved: list[Callable[[], None]] = []  # called after each snapshot written
        self.resume_recording: tuple[str, int] | None = None  # set by open(): the recording past the snapshot
        self.resume_pending: dict[str, list[Any]] = {}  # set by open(): actions the sinks had yet to deliver
        self.stale_pending: dict[str, list[Any]] = {}  # the same, of a stream too old to resume
        self.stale_actions: list[Any] = []  # what closing that stream's open streaks and polls said
        self.saves = 0
        self.failures = 0

    def open(self, engine: Engine, now: int) -> Engine:
        """The engine to run: a fresh one with lifetime totals, resuming the stream in progress if
        its snapshot is recent; an old snapshot is a stream that never ended cleanly: finished first."""
        engine = engine.fresh(self.store.lifetime())
        found = self.store.load_snapshot(self.room)
        if found is None:
            return engine
        saved_at, snap = found
        try:
            full_restore(engine, snap)
        except ValueError as exc:
            log.error("snapshot_unusable", room=self.room, error=str(exc))
            return engine.fresh(self.store.lifetime())
        if now - saved_at <= self.resume_within_ms:
            rec = snap.get("recording")
            if (isinstance(rec, list) and len(rec) == 2 and isinstance(rec[0], str) and "\0" not in rec[0]
                    and type(rec[1]) is int and 0 <= rec[1] < 2**62):
                self.resume_recording = (rec[0], rec[1])
            elif rec is not None:
                log.error("snapshot_recording_unusable", room=self.room, recording=str(rec)[:200])
            pending = snap.get("pending")
            if isinstance(pending, dict):
                self.resume_pending = {str(k): v for k, v in pending.items() if isinstance(v, list)}
            log.info("resumed", room=self.room, saved_ms_ago=now - saved_at, viewers=len(engine.state.viewers_by_key),
                     diamonds=engine.state.diamonds)
            self._saved_at = now
            return engine
        log.info("finishing_stale_stream", room=self.room, saved_ms_ago=now - saved_at)
        pending = snap.get("pending")
        if isinstance(pending, dict):
            self.stale_pending = {str(k): v for k, v in pending.items() if isinstance(v, list)}
        # What the stream left open (streaks, polls, waiting chat lines) ends here, counted in the
        # totals; its actions are too late to send, and are kept (``LiveRunner`` dead-letters them).
        self.stale_actions = engine.close()
        return self.finish(engine, saved_at)

    def due(self, now: int) -> bool:
        """Whether ``tick(engine, now)`` would save."""
        return self._saved_at is not None and now - self._saved_at >= self.every_ms

    def tick(self, engine: Engine, now: int, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        if self._saved_at is None:
            self._saved_at = now
        elif now - self._saved_at >= self.every_ms:
            self.save(engine, now, extra() if extra is not None else None)

    def save(self, engine: Engine, now: int, extra: dict[str, Any] | None = None) -> bool:
        """Write the stream in progress; whether it was written (never raises: a locked or full
        database is logged and counted).
        ``extra``: kept beside the engine's state: ``recording`` ([file, offset] just past the last
        event handled) and ``pending`` (per sink, the actions it had yet to deliver)."""
        self._saved_at = now
        if engine.state.started is None:
            return False
        snap = full_snapshot(engine, RECENT_IDS)
        for key, value in (extra or {}).items():
            if value is not None:
                snap[key] = list(value) if isinstance(value, tuple) else value
        try:
            self.store.save_snapshot(self.room, snap, now)
            self.saves += 1
        except Exception as exc:  # sqlite3.Error, OSError
            self.failures += 1
            log.error("state_save_failed", error=f"{type(exc).__name__}: {exc}", failures=self.failures)
            return False
        for saved in self.on_saved:
            saved()
        return True

    def finish(self, engine: Engine, now: int, actions: Counter[str] | None = None) -> Engine:
        """The stream ended: fold it into lifetime totals; return a fresh engine for the next one."""
        lifetime = engine.state.lifetime_snapshot()
        if engine.state.started is not None:
            keys = self._unfolded | set(engine.state.viewers_by_key) | set(engine.features.lifetime())  # (+ lifetime goals)
            changed = {k: lifetime[k] for k in keys if k in lifetime}
            try:
                self.store.finish_session(self.room, changed, session_summary(engine, self.room, now, actions))
                self._unfolded.clear()
            except Exception as exc:
                self.failures += 1
                self._unfolded.update(changed)  # their totals are in memory (below): written at the next end
                log.error("state_finish_failed", error=f"{type(exc).__name__}: {exc}", viewers=len(changed))
        return engine.fresh(lifetime)
