"""The daemon's state in one SQLite file (WAL mode): lifetime totals, the stream in progress, and
the summaries of past streams.

- ``lifetime``: per-viewer totals over every *finished* stream (diamonds, gifts, chats, likes,
  first seen, sessions).
- ``snapshot``: the engine's state for the stream in progress, per room, written every few
  seconds (``bot.engine.snapshot``), so a restart mid-stream keeps the leaderboard, counters
  and cooldowns. A killed process loses at most one interval.
- ``sessions``: one summary per finished stream.

Finishing a stream moves its viewers' totals into ``lifetime``, stores the summary and drops the
snapshot in one transaction: a crash in between can never count a stream twice.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import orjson

from bot.store.jsonfile import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS lifetime (viewer TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (room TEXT PRIMARY KEY, saved_at INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL,
    started INTEGER, ended INTEGER NOT NULL, summary BLOB NOT NULL);
"""


SNAPSHOT_BUSY_MS = 200  # how long a snapshot save waits for another connection's lock


class SqliteStore:
    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000, snapshot_busy_ms: int = SNAPSHOT_BUSY_MS) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.snapshot_busy_ms = snapshot_busy_ms
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the state database: {exc}") from None

    def close(self) -> None:
        self.db.close()

    # -- reading ---------------------------------------------------------------------------

    def lifetime(self) -> dict[str, dict[str, Any]]:
        return {k: orjson.loads(v) for k, v in self.db.execute("SELECT viewer, data FROM lifetime")}

    def load_snapshot(self, room: str) -> tuple[int, dict[str, Any]] | None:
        """(saved at, snapshot) of the room's stream in progress, or None."""
        row = self.db.execute("SELECT saved_at, data FROM snapshot WHERE room = ?", (room,)).fetchone()
        if row is None:
            return None
        try:
            return row[0], orjson.loads(row[1])
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: the snapshot of room {room!r} is damaged: {exc}") from None

    def sessions(self, room: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """The latest finished streams' summaries, newest first."""
        sql = "SELECT summary FROM sessions" + (" WHERE room = ?" if room is not None else "")
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", ((room,) if room is not None else ()) + (limit,))
        return [orjson.loads(r[0]) for r in rows]

    # -- writing ---------------------------------------------------------------------------

    def save_snapshot(self, room: str, snap: dict[str, Any], saved_at: int | None = None) -> None:
        """Replace the room's snapshot. It runs on the bot's event loop every few seconds and the
        next one replaces it, so it waits at most ``snapshot_busy_ms`` for another connection's
        lock, then raises ``sqlite3.OperationalError`` ("database is locked"): a skipped
        snapshot, rather than a bot stalled for the whole busy timeout at every save."""
        blob = orjson.dumps(snap)
        at = int(time.time() * 1000) if saved_at is None else saved_at
        self.db.execute(f"PRAGMA busy_timeout = {int(self.snapshot_busy_ms)}")
        try:
            self.db.execute("INSERT INTO snapshot (room, saved_at, data) VALUES (?, ?, ?) "
                            "ON CONFLICT(room) DO UPDATE SET saved_at = excluded.saved_at, data = excluded.data",
                            (room, at, blob))
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")

    def finish_session(self, room: str, lifetime: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
        """Fold a finished stream in: the viewers' new lifetime totals, its summary, no snapshot."""
        with self._transaction():
            self.db.executemany("INSERT INTO lifetime (viewer, data) VALUES (?, ?) "
                                "ON CONFLICT(viewer) DO UPDATE SET data = excluded.data",
                                [(k, orjson.dumps(v)) for k, v in lifetime.items()])
            self.db.execute("INSERT INTO sessions (room, started, ended, summary) VALUES (?, ?, ?, ?)",
                            (room, summary.get("started"), summary.get("ended", 0), orjson.dumps(summary)))
            self.db.execute("DELETE FROM snapshot WHERE room = ?", (room,))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
