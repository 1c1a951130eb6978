"""Record every live event to a session file that ``livebot replay`` reads back as it was.

One file per stream (a new one after each ``live_end``), named ``<room>-<UTC start>.jsonl``, in
our normalized JSONL with the payload as received and the receive time. Writes are buffered and
flushed at least once a second; the live runner also flushes each batch before its actions are
sent, so a killed process's recording holds every event it sent a thank-you for (unless the
write itself failed: a full disk is counted and logged, and the bot goes on).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import orjson
import structlog

from bot.appendfile import end_cut_line
from bot.events.model import LIVE_END, Event

log = structlog.get_logger("bot.recorder")


def file_stem(room: str) -> str:
    """``room`` as a file name's start: letters, digits, ``-_.``; anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in room) or "live"


class Recorder:
    def __init__(self, folder: str | Path, room: str = "live", flush_every_s: float = 1.0) -> None:
        self.folder = Path(folder)
        self.room = file_stem(room)
        self.flush_every_s = flush_every_s
        self.path: Path | None = None
        self.files: list[Path] = []
        self.written = 0
        self.failed = 0  # writes and flushes that raised (a full disk: OSError ENOSPC)
        self.lost = 0  # events not recorded because their write raised
        self._failing = False  # since the last failure, nothing has reached the disk
        self._file: BinaryIO | None = None
        self._dirty = False
        self._flushed_at = time.monotonic()
        self._resume: Path | None = None

    def resume(self, path: str | Path | None) -> bool:
        """The stream goes on after a restart: its next events go on in ``path`` (a file of this
        recorder's folder, as a state snapshot names it) rather than in a new file, so the
        stream stays one recording and a later restart catches up with all of it. False (and a
        new file as usual) when ``path`` is not a recording of this folder."""
        if path is None:  # (that stream ended after all: the next one gets a file of its own)
            self._resume = None
            return False
        path = Path(path)
        try:
            ok = path.is_file() and path.resolve().parent == self.folder.resolve()
        except OSError:
            ok = False
        self._resume = path if ok else None
        return ok

    @property
    def is_open(self) -> bool:
        """A stream's file is open (between its first event and its live_end or close)."""
        return self._file is not None

    def write(self, ev: Event) -> None:
        """Append one event; never raises (a full disk is logged and counted, the bot goes on)."""
        try:
            if self._file is None:
                self._open(ev)
            self._file.write(orjson.dumps(ev.to_dict()) + b"\n")  # type: ignore[union-attr]
            self.written += 1
            self._dirty = True
            if ev.type == LIVE_END:
                self.close()  # the next stream gets a file of its own
            else:
                self.tick()
        except (OSError, TypeError) as exc:
            self.lost += 1
            self._failed("record_failed", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        """Count a failed write or flush; log the first few, then every 1000th (a full disk fails
        at every event); the recording resumes by itself when the disk has room again (the
        buffer keeps what it could not write, and the file stays open)."""
        self.failed += 1
        self._failing = True
        if self.failed <= 5 or self.failed % 1000 == 0:
            log.error(what, path=str(self.path), failed=self.failed, lost=self.lost, error=str(exc))

    def position(self) -> tuple[str, int] | None:
        """(file, byte offset) just past the last event written, flushed first; None when no
        stream's file is open. A state snapshot keeps it: after a crash, what the file holds past
        it is what the snapshot does not know (``LiveRunner`` feeds it again at start)."""
        if self._file is None or self.path is None:
            return None
        self.flush()
        try:
            return str(self.path.resolve()), self._file.tell()
        except OSError:
            return None

    def tick(self) -> None:
        """Flush if a second has passed since the last flush (call it often)."""
        if self._dirty and time.monotonic() - self._flushed_at >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        if self._file is not None and self._dirty:
            try:
                self._file.flush()
            except OSError as exc:
                self._failed("record_flush_failed", exc)
            else:
                if self._failing:
                    self._failing = False
                    log.warning("record_resumed", path=str(self.path), failed=self.failed, lost=self.lost)
        self._dirty = False
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.error("record_close_failed", path=str(self.path), error=str(exc))
            self._file = None

    def _open(self, ev: Event) -> None:
        if self._resume is not None:
            path, self._resume = self._resume, None
            end_cut_line(path)
            self._file = open(path, "ab")  # noqa: SIM115 - closed in close()
            self.path = path
            self.files.append(path)
            log.info("recording_resumed", path=str(path))
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp((ev.received or ev.ts) / 1000, tz=timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"{self.room}-{stamp}.jsonl"
        n = 1
        while path.exists():
            n += 1
            path = self.folder / f"{self.room}-{stamp}-{n}.jsonl"
        self._file = open(path, "ab")  # noqa: SIM115 - closed in close()
        self.path = path
        self.files.append(path)  # (only once it opened: a failing open is tried again at the next event)
        log.info("recording", path=str(path))

