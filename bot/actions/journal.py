"""Which actions each sink has delivered, on disk, so a restart after a crash does not deliver them again.

The state snapshot (``bot.store.keeper``) is saved every few seconds. A process killed between two
saves comes back with a state that does not know the gifts it handled after the last save; the
source replays them as a reconnect backlog (and the runner re-reads them from the recording), so
they go through the rules again. Their actions must not reach the viewers twice: each sink's
worker appends what it delivered to this journal (one unbuffered ``write`` per delivered batch,
which survives a SIGKILL), and at the next start an action already in the journal for that sink
is not sent again.

An action is known by ``(event_id, rule, kind)``; an action of no event (a timer, a poll result,
a merged chat line) by its time and text instead (``@<ts>#<crc32 of the text>``): the engine, its
state restored and fed the same events, fires it again at the same time with the same words. A
sink's dead-lettered actions are journaled too (settled: ``livebot resend`` has them). Each line
is a JSON list ``[sink, key, rule, kind]``; a partial last line (the write a kill cut) is skipped.

The journal only needs what was delivered since the last saved snapshot, which knows the rest by
message id: ``rotate()`` (called after each successful save) starts a new file and keeps one
previous file; a file that grows past ``max_bytes`` (saves failing for a long time) is rotated
too.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Sequence

import orjson
import structlog

from bot.actions.model import Action
from bot.appendfile import end_cut_line

log = structlog.get_logger("bot.journal")

MAX_BYTES = 64 * 1024 * 1024
REOPEN_S = 5.0  # a journal that could not be opened is tried again at most this often

Key = tuple[str, str, str]


def action_key(action: Action) -> Key:
    """What identifies an action across a restart."""
    if action.event_id is not None:
        return (str(action.event_id), action.rule, action.kind)
    return (f"@{action.ts}#{zlib.crc32(action.text.encode('utf-8', 'replace'))}", action.rule, action.kind)


class DeliveryJournal:
    def __init__(self, path: str | Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = Path(path)
        self.previous = self.path.with_name(self.path.name + ".prev")
        self.max_bytes = max_bytes
        self.before: dict[str, set[Key]] = {}  # by sink: delivered before this process started
        self.skipped_lines = 0
        for file in (self.previous, self.path):
            self._load(file)
        self.suppressed = 0  # actions not sent again: they were in ``before``
        self.written = 0
        self.failures = 0
        self._size = 0
        self._fd: int | None = None
        self._closed = False
        self._open_tried = 0.0
        self._open()

    def _load(self, file: Path) -> None:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("journal_unreadable", path=str(file), error=str(exc))
            return
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                sink, event_id, rule, kind = orjson.loads(line)
                self.before.setdefault(str(sink), set()).add((str(event_id), str(rule), str(kind)))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                self.skipped_lines += 1  # the partial line of a killed write

    def _open(self) -> None:
        self._open_tried = time.monotonic()
        fd = None
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            end_cut_line(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._fd, self._size = fd, os.fstat(fd).st_size
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            self._fd = None
            self.failures += 1
            if self.failures <= 5 or self.failures % 1000 == 0:
                log.error("journal_open_failed", path=str(self.path), failures=self.failures, error=str(exc))

    @property
    def resuming(self) -> int:
        """How many delivered actions the previous process left in the journal."""
        return sum(len(keys) for keys in self.before.values())

    def already_delivered(self, sink: str, action: Action) -> bool:
        """Whether ``sink`` delivered ``action`` before this process started (counted when so)."""
        if not self.before:
            return False
        keys = self.before.get(sink)
        if not keys:
            return False
        if action_key(action) in keys:
            self.suppressed += 1
            return True
        return False

    def delivered(self, sink: str, actions: Sequence[Action]) -> None:
        """Note what ``sink`` has just delivered. Never raises (a failing disk is logged and counted:
        the bot goes on, and a crash then may repeat some thanks)."""
        lines = [orjson.dumps([sink, *action_key(a)]) + b"\n" for a in actions]
        if not lines:
            return
        if self._fd is None:
            if self._closed or time.monotonic() - self._open_tried < REOPEN_S:
                self.failures += 1
                return
            self._open()
            if self._fd is None:
                return
        data = b"".join(lines)
        try:
            os.write(self._fd, data)
        except OSError as exc:
            self.failures += 1
            if self.failures <= 5 or self.failures % 1000 == 0:
                log.error("journal_write_failed", path=str(self.path), failures=self.failures, error=str(exc))
            return
        self.written += len(lines)
        self._size += len(data)
        if self._size > self.max_bytes:
            log.warning("journal_rotated_by_size", path=str(self.path), bytes=self._size)
            self.rotate()

    def rotate(self) -> None:
        """A snapshot covering everything delivered so far was saved: start a new file, keep one
        previous file (what was delivered between the last two saves)."""
        reopen = self._fd is not None or not self._closed
        self._close_fd()
        try:
            if self.path.exists():
                os.replace(self.path, self.previous)
        except OSError as exc:
            self.failures += 1
            log.error("journal_rotate_failed", path=str(self.path), error=str(exc))
        if reopen:
            self._open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def close(self) -> None:
        self._closed = True
        self._close_fd()

    def stats(self) -> dict[str, int]:
        return {"written": self.written, "suppressed": self.suppressed, "failures": self.failures,
                "resumed_with": self.resuming}

