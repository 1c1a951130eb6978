"""Replay a recorded session file (JSONL in any supported wire format, optionally gzipped)."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import AsyncIterator, Iterator

import structlog

from bot.events.model import Event
from bot.events.wire import DecodeError, decode_line

log = structlog.get_logger("bot.replay")
BATCH = 128  # small enough that a batch is still in the CPU cache when the engine reads it
LOGGED_MALFORMED = 20  # log the first ones in full, then only count


def not_a_session(source: "ReplaySource") -> str | None:
    """Why a file that was read gave no event at all (binary, another kind of file, or empty), or
    None when it gave events."""
    if sum(source.read.values()):
        return None
    if source.malformed:
        return (f"{source.path}: not a session recording: none of its {source.lines:,} line(s) is an event "
                f"(first: {source.first_error})")
    return f"{source.path}: no events in this file"


class ReplaySource:
    """Reads a session file; a malformed line is logged with its number, counted and skipped."""

    name = "replay"

    def __init__(self, path: str | Path, room_id: str = "") -> None:
        self.path = Path(path)
        self.room_id = room_id
        self.malformed = 0
        self.lines = 0
        self.read: Counter[str] = Counter()  # decoded events by type
        self.first_error: str | None = None  # "line N: what is wrong", of the first malformed line

    def _open(self):
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")  # noqa: SIM115 - closed by the with in events()

    def events(self) -> Iterator[Event]:
        """Every event of the file, in file order (synchronous: for tests and benchmarks)."""
        last_ts = 0
        read = self.read
        with self._open() as f:
            number = 0
            for number, line in enumerate(f, 1):  # noqa: B007 - kept for the count below
                if len(line) < 8 and not line.strip():
                    continue
                try:
                    decoded = decode_line(line, fallback_ts=last_ts, room_id=self.room_id)
                except DecodeError as exc:
                    self.lines = number
                    self.malformed += 1
                    if self.first_error is None:
                        self.first_error = f"line {number}: {exc}"
                    if self.malformed <= LOGGED_MALFORMED:
                        log.warning("malformed_line", file=str(self.path), line=number, error=str(exc))
                    continue
                for ev in decoded:
                    read[ev.type] += 1
                    last_ts = ev.ts
                    yield ev
            self.lines = number

    def lines_from(self, offset: int = 0) -> Iterator[tuple[list[Event], int]]:
        """From byte ``offset`` on: each line's events, with the byte offset just past the line (a
        catch-up after a restart, ``LiveRunner._catch_up``, must know how far it fed). Malformed lines
        (a line a kill cut) are logged with their number counted from ``offset``, counted and skipped."""
        last_ts = 0
        with self._open() as f:
            f.seek(offset)
            pos = offset
            for number, line in enumerate(f, 1):
                pos += len(line)
                if not line.strip():
                    continue
                try:
                    decoded = decode_line(line, fallback_ts=last_ts, room_id=self.room_id)
                except DecodeError as exc:
                    self.malformed += 1
                    if self.malformed <= LOGGED_MALFORMED:
                        log.warning("malformed_line", file=str(self.path), line=number, from_offset=offset,
                                    error=str(exc))
                    continue
                for ev in decoded:
                    self.read[ev.type] += 1
                    last_ts = ev.ts
                yield decoded, pos

    async def batches(self) -> AsyncIterator[list[Event]]:
        batch: list[Event] = []
        for ev in self.events():
            batch.append(ev)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
