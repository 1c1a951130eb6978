"""Delivery bookkeeping for the live dispatcher: retry policy, per-sink counters, the dead-letter file."""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Sequence

import orjson
import structlog

from bot.actions.model import Action
from bot.appendfile import end_cut_line
from bot.sources.backoff import Backoff

try:
    import fcntl
except ImportError:  # Windows: no locks; a rewritten file is still noticed and reopened
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("bot.dispatcher")

# The ``reason`` of a dead-letter line (see ``DeadLetter``).
DEAD_LETTER_REASONS = ("failed", "permanent", "overflow", "shutdown", "closed", "stale")


class PermanentSinkError(Exception):
    """A sink raises this when retrying cannot help (the webhook sink: HTTP 400, 401, 404...).

    The live dispatcher then dead-letters the batch at once instead of retrying it.
    """


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` sends per batch (the first included); waits between them from ``Backoff``:
    exponential from ``base`` seconds, capped at ``cap``, with jitter."""

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("retry base must be > 0 and cap >= base")

    def backoff(self, rng: random.Random | None = None) -> Backoff:
        return Backoff(self.base, self.cap, rng)


@dataclass(slots=True)
class SinkStats:
    """Counts for one sink, in actions. Plain attributes, for a /metrics endpoint to read.

    ``dispatched == sent + dead_lettered + queue_depth + in_flight`` at any moment between
    dispatcher steps; after ``close()`` the last two are 0. ``failed`` counts every action in every
    send that raised (so a batch failing three times counts three times); ``retried`` the actions
    sent again after a failure; ``overflow`` and ``shutdown`` are the dead-lettered actions that
    never got a try because the queue was full or the drain time ran out. ``already_delivered``
    counts actions not queued at all: the sink delivered them before a restart (``bot.actions.journal``).
    """

    dispatched: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    overflow: int = 0
    shutdown: int = 0
    queue_depth: int = 0
    in_flight: int = 0
    already_delivered: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class DeadLetter:
    """What could not be delivered, one JSON line per action:
    ``{"at", "sink", "reason", "error", "attempts", "action"}`` (``at``: wall time, ms).

    ``reason`` is ``failed`` (retries used up), ``permanent`` (the sink said retrying cannot help),
    ``overflow`` (the sink's queue was full), ``shutdown`` (not delivered before the drain timeout)
    , ``closed`` (dispatched after close) or ``stale`` (still undelivered in a state snapshot too old
    to resume: the stream was over when the bot came back). The file is opened on the first line and appended to.
    With no path the records are logged at error level instead (never dropped silently).

    Each write holds an exclusive ``flock`` on the file and first checks that ``path`` still names
    the file it holds open; if not (``livebot resend`` rewrote it, or it was moved away) it opens
    ``path`` anew. So the file can be rewritten while a bot appends to it, and no line goes to a
    file nobody reads.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.written = 0  # actions recorded (file or log)
        self.write_errors = 0
        self._file: IO[bytes] | None = None
        self._closed = False

    def write(self, sink: str, actions: Sequence[Action], *, reason: str, error: str, attempts: int) -> bool:
        """Keep ``actions``; True when they are in the file (``livebot resend`` can send them),
        False when only the log has them (no file, or the file failed)."""
        if not actions:
            return True
        at = time.time_ns() // 1_000_000
        records = [{"at": at, "sink": sink, "reason": reason, "error": error, "attempts": attempts,
                    "action": a.to_dict()} for a in actions]
        self.written += len(records)
        if self.path is not None:
            try:
                self._append(b"".join(orjson.dumps(r, default=str) + b"\n" for r in records))
                if self._closed and self._file is not None:  # written after close(): do not leave it open
                    self._file.close()
                    self._file = None
                return True
            except (OSError, TypeError) as exc:  # (TypeError: an action orjson cannot write)
                self.write_errors += 1
                log.error("dead_letter_write_failed", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
        for record in records:  # no file, or the file failed: the log keeps them
            log.error("dead_letter", **record)
        return False

    def _append(self, data: bytes) -> None:
        assert self.path is not None
        for _ in range(5):
            if self._file is None:
                if self.path.parent != Path():
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                end_cut_line(self.path)
                self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
            f = self._file
            lock_file(f)
            try:
                if names_file(self.path, f):
                    f.write(data)
                    f.flush()
                    return
            finally:
                unlock_file(f)
            f.close()  # the file was rewritten or moved away: append to the one at path now
            self._file = None
        raise OSError(f"{self.path} keeps being replaced")

    def close(self) -> None:
        """Close the file; a later ``write`` (an action dispatched after close) appends and closes again."""
        self._closed = True
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = None

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path is not None else None, "written": self.written,
                "write_errors": self.write_errors}


def lock_file(f: IO[bytes]) -> None:
    """An exclusive ``flock`` on an open file (blocks; nothing on systems without ``fcntl``)."""
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def unlock_file(f: IO[bytes]) -> None:
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def names_file(path: Path, f: IO[bytes]) -> bool:
    """Whether ``path`` is (still) the file ``f`` has open."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(f.fileno()))
    except FileNotFoundError:
        return False
