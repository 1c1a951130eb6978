"""Ingest's spill files (``bot.scale.ingest``): where a room's events go when Redis does not take
them. ``spill_folder`` / ``spill_file`` name ``{redis.spill}/{room}.jsonl``; ``SpillFile`` is the
part of ``RoomPump`` that writes events there (flushed to disk; what cannot be written is logged
whole), finds a file left by an earlier run, appends it back in order before any newer event,
sets aside lines that are not events (``{room}.jsonl.rejected``, reported as ``file:line``),
compacts what was appended and deletes the file once all of it is. Its methods run on a
``RoomPump`` and use the state ``RoomPump.__init__`` sets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import structlog

from bot.appendfile import end_cut_line
from bot.config import Config
from bot.events.model import Event
from bot.scale.keys import check_room
from bot.scale.streams import decode_value, encode_event

log = structlog.get_logger("bot.ingest")
SPILL_SUFFIX = ".jsonl"  # {spill}/{room}.jsonl: a room's events Redis did not take
REJECTED_SUFFIX = ".jsonl.rejected"  # {spill}/{room}.jsonl.rejected: its lines that were not events


def spill_folder(cfg: Config) -> Path:
    """Where ingest spills the events Redis did not take: ``redis.spill``, else ``spill`` inside
    ``record.folder``, else ``spill`` in the working directory."""
    if cfg.redis.spill is not None:
        return cfg.redis.spill
    if cfg.record is not None:
        return cfg.record / "spill"
    return Path("spill")


def spill_file(folder: Path, room: str) -> Path:
    """A room's spill file: ``{folder}/{room}.jsonl``."""
    return folder / f"{check_room(room)}{SPILL_SUFFIX}"


class SpillFile:
    """``RoomPump``'s spill file: written when Redis fails, appended back first when it takes appends."""

    def _spill_found(self) -> bool:
        """True if a spill file (of an earlier run, or this one) waits to be appended."""
        try:
            size = self.spill_path.stat().st_size
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("spill_unreadable", room=self.room, path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}")
            return False
        if size <= self._spill_offset:
            if not size:  # made, but nothing written to it before a crash
                with contextlib.suppress(OSError):
                    self.spill_path.unlink()
            return False
        log.warning("spill_found", room=self.room, path=str(self.spill_path), bytes=size - self._spill_offset)
        return True

    def _write_spill(self, events: list[Event]) -> bool:
        """Append events to the spill file (flushed to disk); False, logged, if that failed."""
        data = b"".join(encode_event(ev, self.keep_raw) + b"\n" for ev in events)
        try:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            if not self._tail_ok:  # a line cut short by a crash must not swallow the next event
                end_cut_line(self.spill_path)
            self._tail_ok = False
            with open(self.spill_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._tail_ok = True
        except OSError as exc:
            log.error("spill_failed", room=self.room, events=len(events), path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}")
            return False
        self.spilled += len(events)
        self._spill_waiting = True
        return True

    def _spill_held(self) -> None:
        """While running: what waits in memory goes to the spill file (kept in memory if it cannot)."""
        events = self._pending + self._prepared(self.queue.get_nowait(limit=len(self.queue)))
        if not events:
            return
        if self._write_spill(events):
            self._pending = []
            log.warning("events_spilled", room=self.room, events=len(events), path=str(self.spill_path),
                        reason="redis failing", spilled=self.spilled)
        else:
            self._pending = events  # in order: tried again (or spilled) later

    def _spill_all(self, reason: str) -> None:
        """At the end: everything not appended to the spill file; whatever cannot be written there
        is logged whole (the last place left), never dropped silently."""
        events = self._pending + self._prepared(self.queue.get_nowait(limit=len(self.queue)))
        self._pending = []
        if events:
            if self._write_spill(events):
                log.warning("events_spilled", room=self.room, events=len(events), path=str(self.spill_path),
                            reason=reason, spilled=self.spilled)
            else:
                self.unsaved += len(events)
                log.error("events_not_spilled", room=self.room, events=len(events), path=str(self.spill_path),
                          reason=reason, lines=[encode_event(ev, self.keep_raw).decode() for ev in events])
        if self._spill_offset:
            self._compact()

    def _compact(self) -> None:
        """Drop the part of the spill file appended already, so the next start does not append it
        again (replaced atomically; if this fails, those events are appended twice: duplicates)."""
        tmp = self.spill_path.with_name(self.spill_path.name + ".tmp")
        try:
            with open(self.spill_path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(self._spill_offset)
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.spill_path)
        except OSError as exc:
            log.warning("spill_compact_failed", room=self.room, path=str(self.spill_path),
                        error=f"{type(exc).__name__}: {exc}", appended_again_at_start=self._spill_run)
            return
        self._spill_offset = self._spill_line = self._rejected_upto = 0

    def _read_spill(self, limit: int) -> tuple[list[Event], int, int, bool]:
        """Up to ``limit`` events from the spill file's unappended part: (events, offset and line
        after them, at the end of the file). Lines that are not events are set aside."""
        events: list[Event] = []
        offset, lineno = self._spill_offset, self._spill_line
        with open(self.spill_path, "rb") as f:
            f.seek(offset)
            while len(events) < limit:
                line = f.readline()
                if not line:
                    return events, offset, lineno, True
                offset += len(line)
                lineno += 1
                text = line.strip()
                if not text:
                    continue
                try:
                    ev = decode_value(text)
                except Exception as exc:  # anything that is not one of our events
                    self._reject(line, lineno, exc)
                    continue
                events.append(ev)
            return events, offset, lineno, not f.read(1)

    def _reject(self, line: bytes, lineno: int, exc: Exception) -> None:
        if lineno <= self._rejected_upto:  # read again after a failed append: set aside already
            return
        self._rejected_upto = lineno
        self.rejected += 1
        where = f"{self.spill_path}:{lineno}"
        try:
            with open(self.rejected_path, "ab") as f:
                f.write(line if line.endswith(b"\n") else line + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            log.error("spill_line_rejected", where=where, room=self.room, error=f"{type(exc).__name__}: {exc}",
                      kept=None, keep_error=f"{type(err).__name__}: {err}", line=line.decode("utf-8", "replace"))
            return
        log.error("spill_line_rejected", where=where, room=self.room, error=f"{type(exc).__name__}: {exc}",
                  kept=str(self.rejected_path))

    async def _unspill(self) -> bool:
        """Append the next batch of the spill file; delete the file once all of it is appended.
        Redis errors propagate (the batch is tried again); False if the file cannot be read."""
        try:
            events, offset, lineno, at_end = self._read_spill(self.batch)
        except OSError as exc:
            log.error("spill_unreadable", room=self.room, path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}", left_in_place=True)
            self._spill_waiting = False  # go on with live events; the file stays for the operator
            return False
        if events:
            for ev in events:
                if not ev.room_id:
                    ev.room_id = self.room
            await self._append(events)
            self.appended += len(events)
            self.unspilled += len(events)
            self._spill_run += len(events)
        self._spill_offset, self._spill_line = offset, lineno
        if at_end:
            self._spill_done()
        return True

    def _spill_done(self) -> None:
        """Everything in the spill file is appended: delete it."""
        self._spill_waiting = False
        try:
            self.spill_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # keep the offset: later spills go after it, and are appended from there
            log.error("spill_not_deleted", room=self.room, path=str(self.spill_path),
                      error=f"{type(exc).__name__}: {exc}", appended_again_at_start=self._spill_offset)
            return
        log.info("spill_replayed", room=self.room, events=self._spill_run, rejected=self.rejected,
                 path=str(self.spill_path))
        self._spill_offset = self._spill_line = self._rejected_upto = self._spill_run = 0
        self._tail_ok = False


def _other_spills(folder: Path, ours: set[Path]) -> None:
    """Spill files of rooms this ingest does not serve are left alone, but said."""
    try:
        others = sorted(str(f) for f in folder.glob(f"*{SPILL_SUFFIX}") if f not in ours)
    except OSError:
        return
    if others:
        log.warning("spill_other_rooms", files=others, hint="add their rooms to ingest.rooms to append them")
