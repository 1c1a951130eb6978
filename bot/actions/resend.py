"""``livebot resend DEAD_LETTER_FILE -c config.yaml``: send dead-lettered actions again, once the
sink is back (the parser is in bot/cli.py).

Each line goes to the sink it was dead-lettered from, and only there, built as ``livebot run``
builds it (``bot.daemon.build_sinks``): ``sinks.jsonl`` and the ``sinks.webhooks``, by name. The
console and the overlay only make sense live, and the chat sink drops lines over its per-minute
cap rather than queueing them: their lines are kept, never sent.

Sending: one ``LiveDispatcher`` per sink, so the daemon's batching (the sink's ``max_batch``),
retries with backoff (``sinks.attempts``) and permanent errors apply unchanged. A sink is handed
one batch at a time, in file order; once a batch is out of retries (the receiver is still down),
the sink gets nothing more in this run and its other lines are kept untried.

The file is read in chunks (memory stays bounded whatever its size) and rewritten: what is left
goes to ``FILE.resend`` as it goes, in the file's order — a send that failed again as a fresh
dead-letter record (the new error), every other line (not tried, not selected, a sink the config
lacks, malformed) byte for byte — and ``FILE.resend`` then replaces FILE atomically. Running it
again sends only what is still there. ``FILE.resend`` is also the lock that keeps a second resend
of the same file from starting. A bot may keep appending to FILE meanwhile: what it adds is
copied over under the file's ``flock`` just before the replace, and ``DeadLetter`` notices the
new file and appends to it. Interrupted (Ctrl-C, SIGTERM), it stops sending and still rewrites
the file, keeping everything not known to be delivered.

Here: the run (``Resend``: send, read, rewrite, summary) and ``run_resend``; a line and its outcomes
are in ``bot.actions.resend_lines``, the sinks sent to in ``bot.actions.resend_sinks``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, Sequence

from bot.actions.delivery import RetryPolicy, lock_file, names_file, unlock_file
from bot.actions.dispatcher import LiveDispatcher
from bot.actions.resend_lines import (FAILED_AGAIN, INTERRUPTED, MALFORMED, NOT_COUNTED_AS_LEFT, NOT_SELECTED,
                                      NOT_TRIED, REFUSED, SENT, WOULD_SEND, _Line, parse_line)
from bot.actions.resend_sinks import _built_in_sinks, _Caught, _Target, build_target, configured_names
from bot.config import Config, ConfigError, load_config
from bot.sinks.base import is_live_only

CHUNK_LINES = 1000  # lines read, sent and written out per round
CHUNK_BYTES = 8 << 20
MAX_LINE = 1 << 20  # a longer line is malformed; it is copied over in pieces, never held whole
MAX_PROBLEMS = 50  # malformed lines reported one by one, then only counted

Sleep = Callable[[float], Awaitable[Any]]


class Usage(Exception):
    """A problem with the command line or the config: exit 2."""


class Resend:
    """One run over one dead-letter file. ``sinks``/``reasons``: only those lines (None: all).
    ``sleep``: the dispatchers' backoff sleep (tests pass a fast one)."""

    def __init__(self, path: Path, cfg: Config, *, config_name: str = "the config", sinks: Sequence[str] | None = None,
                 reasons: Sequence[str] | None = None, dry_run: bool = False, sleep: Sleep | None = None) -> None:
        self.path = path
        self.cfg = cfg
        self.config_name = config_name
        self.only_sinks = set(sinks) if sinks else None
        self.only_reasons = set(reasons) if reasons else None
        self.dry_run = dry_run
        self.sleep = sleep
        self.retry = RetryPolicy(max_attempts=max(1, cfg.sink_attempts))  # as bot.daemon.build_dispatcher
        self.targets: dict[str, _Target] = {}
        self.missing: dict[str, str] = {}  # sink name -> why it cannot be sent to
        self.caught = _Caught(self.targets)
        self.dispatchers: dict[str, LiveDispatcher] = {}
        self.sinks_closed = False
        self.down: set[str] = set()  # sinks that failed again: nothing more goes to them
        self.in_flight: dict[str, tuple[list[_Line], int]] = {}  # sink -> (batch, its ``sent`` before)
        self.rows: Counter[tuple[str, str, str]] = Counter()  # (sink, reason, outcome) -> lines
        self.problems = 0
        self.added = 0  # lines a bot appended while this ran (kept for the next run)
        self.tmp = path.with_name(path.name + ".resend")
        self.src: IO[bytes] | None = None
        self.out: IO[bytes] | None = None
        self.lineno = 0
        self.consumed = 0  # bytes of the file read into chunks (whole lines)
        self.eof = False
        self.torn_at: int | None = None  # line number of a last line without its newline

    # -- the run ---------------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            await self._check_selected_sinks()
            self.src = open(self.path, "rb")  # noqa: SIM115 - closed below
        except Usage as exc:
            await self._close_sinks()
            print(f"livebot resend: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            await self._close_sinks()
            print(f"livebot resend: cannot read {self.path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        try:
            if not self.dry_run:
                try:
                    self.out = self._open_tmp()
                except FileExistsError:
                    print(f"livebot resend: {self.tmp} exists: another resend of {self.path} is running, or one "
                          f"was killed (then remove {self.tmp}; the file itself is unchanged)", file=sys.stderr)
                    await self._close_sinks()
                    return 2
            interrupted = False
            try:
                interrupted = await self._send_all()
                if self.out is not None:
                    self._commit()
            except _Moved:
                self._report(interrupted)
                print(f"livebot resend: {self.path} was moved or replaced during the resend; what was not sent "
                      f"is in {self.tmp} (move it back to send it later)", file=sys.stderr)
                return 1
            except OSError as exc:
                self._report(False)
                print(f"livebot resend: cannot write {self.tmp} or replace {self.path} with it ({exc}); "
                      f"{self.path} is unchanged, so what was sent this time will be sent again next time",
                      file=sys.stderr)
                return 1
            if self.dry_run and self.torn_at is not None:
                self._torn(self.torn_at)
        finally:
            self._abandon_tmp()
            self.src.close()
        self._report(interrupted)
        if interrupted:
            return 130
        return 1 if self._left() else 0

    def _left(self) -> int:
        """Lines left in the file that this run should have sent (not counting those not selected)."""
        left = sum(n for (_, _, outcome), n in self.rows.items() if outcome not in NOT_COUNTED_AS_LEFT)
        return left + self.added + (self.torn_at is not None)

    async def _send_all(self) -> bool:
        """Read, send and write out chunk after chunk; True if cancelled (Ctrl-C, SIGTERM) midway."""
        chunk: list[_Line] = []
        try:
            while not self.eof:
                chunk = self._read_chunk()
                await self._process(chunk)
                self._write(chunk)
                chunk = []
            return False
        except asyncio.CancelledError:
            await self._close_sinks(timeout=0)  # a send under way is cut short
            for name, (batch, sent_before) in self.in_flight.items():
                if self.dispatchers[name].stats[name].sent >= sent_before + len(batch):
                    for line in batch:  # delivered just before the interruption
                        line.outcome = SENT
            for line in chunk:
                if line.outcome is None:
                    line.outcome = INTERRUPTED
            self._write(chunk)
            return True
        finally:
            await self._close_sinks()

    async def _process(self, chunk: list[_Line]) -> None:
        groups: dict[str, list[_Line]] = {}
        for line in chunk:
            if line.action is None:
                continue  # malformed: its outcome is set
            assert line.sink is not None
            if (self.only_sinks is not None and line.sink not in self.only_sinks
                    or self.only_reasons is not None and line.reason not in self.only_reasons):
                line.outcome = NOT_SELECTED
            elif (why := self._not_a_target(line.sink)) is not None:
                line.outcome = f"kept: not a resend target ({why})"
            elif line.sink in self.down:
                line.outcome = NOT_TRIED
            elif await self._target(line.sink) is None:
                line.outcome = f"kept: {self.missing[line.sink]}"
            elif self.dry_run:
                line.outcome = WOULD_SEND
            else:
                groups.setdefault(line.sink, []).append(line)
        if groups:
            await asyncio.gather(*(self._feed(name, lines) for name, lines in groups.items()))

    async def _feed(self, name: str, lines: list[_Line]) -> None:
        """Hand ``lines`` to the sink's dispatcher a batch at a time, each once it has settled."""
        dispatcher = self.dispatchers[name]
        stats = dispatcher.stats[name]
        target = self.targets[name]
        step = dispatcher.lanes[name].max_batch
        for i in range(0, len(lines), step):
            batch = lines[i:i + step]
            if name in self.down:
                for line in batch:
                    line.outcome = NOT_TRIED
                continue
            self.in_flight[name] = (batch, stats.sent)
            await dispatcher.dispatch([line.action for line in batch if line.action is not None])
            while stats.sent + stats.dead_lettered < stats.dispatched:  # sent, or out of retries
                target.done.clear()
                await target.done.wait()
            del self.in_flight[name]
            for line in batch:
                caught = self.caught.records.pop(id(line.action), None)
                if caught is None:
                    line.outcome = SENT
                    continue
                reason, record = caught
                if reason in ("failed", "permanent"):
                    line.outcome, line.record = (FAILED_AGAIN if reason == "failed" else REFUSED), record
                    if reason == "failed":
                        self.down.add(name)
                else:  # cut short (cannot happen one batch at a time, but never lose it): keep the line
                    line.outcome = INTERRUPTED

    def _not_a_target(self, name: str) -> str | None:
        """Why a live-only sink (its class says ``live_only``: the console, overlay, chat) is not sent
        to; None for any other, and for a sink the config names so (a webhook called ``overlay``)."""
        if name in configured_names(self.cfg):
            return None
        cls = next((c for c in _built_in_sinks() if c.name == name), None)
        if cls is not None and is_live_only(cls):
            return getattr(cls, "live_only_why", "its actions only make sense live")
        return None

    async def _target(self, name: str) -> _Target | None:
        if name in self.targets:
            return self.targets[name]
        if name in self.missing:
            return None
        try:
            sink = await build_target(self.cfg, name)
        except (ImportError, ValueError, OSError) as exc:
            self.missing[name] = f"cannot build the sink ({type(exc).__name__}: {exc})"
            return None
        if sink is None:
            self.missing[name] = f"no such sink in {self.config_name}"
            return None
        target = self.targets[name] = _Target(sink)
        if not self.dry_run:
            self.dispatchers[name] = LiveDispatcher(
                [target], dead_letter=self.caught, retry=self.retry, max_queue=max(target.max_batch or 0, 50),
                drain_timeout=1.0, sleep=self.sleep)
        return target

    async def _check_selected_sinks(self) -> None:
        for name in sorted(self.only_sinks or ()):
            if (why := self._not_a_target(name)) is not None:
                raise Usage(f"--sink {name}: not a sink resend sends to ({why})")
            if await self._target(name) is None:
                raise Usage(f"--sink {name}: {self.missing[name]} (resend sends to sinks.jsonl as 'jsonl' and to "
                            f"sinks.webhooks by name)")

    async def _close_sinks(self, timeout: float | None = None) -> None:
        """Close the dispatchers (each closes its sink) and the sinks built without one (dry run)."""
        if self.sinks_closed:
            return
        self.sinks_closed = True
        for name, target in self.targets.items():
            dispatcher = self.dispatchers.get(name)
            await (dispatcher.close(timeout) if dispatcher is not None else target.close())

    # -- reading ---------------------------------------------------------------------------------

    def _read_chunk(self) -> list[_Line]:
        assert self.src is not None
        src = self.src
        src.seek(self.consumed)
        lines: list[_Line] = []
        size = 0
        while len(lines) < CHUNK_LINES and size < CHUNK_BYTES:
            raw = src.readline(MAX_LINE + 1)
            if not raw.endswith(b"\n"):
                if len(raw) <= MAX_LINE:  # the end (mid-line: a line being written, or torn)
                    self.eof = True
                    if raw:
                        self.torn_at = self.lineno + 1
                    break
                end = self._end_of_line(self.consumed + len(raw))
                if end is None:  # an over-long last line without its newline
                    self.eof = True
                    self.torn_at = self.lineno + 1
                    break
                src.seek(end)
                line = _Line(self.lineno + 1, None, (self.consumed, end))
                self._problem(line, f"longer than {MAX_LINE} bytes: not a dead-letter line")
            else:
                end = self.consumed + len(raw)
                if not raw.strip():  # a blank line carries nothing: dropped
                    self.lineno += 1
                    self.consumed = end
                    continue
                line = _Line(self.lineno + 1, raw)
                try:
                    line.sink, line.reason, line.action = parse_line(raw)
                except ValueError as exc:
                    self._problem(line, str(exc))
            self.lineno += 1
            size += end - self.consumed
            self.consumed = end
            lines.append(line)
        return lines

    def _end_of_line(self, pos: int) -> int | None:
        """The offset just past the newline that ends the line going on at ``pos``; None at EOF."""
        assert self.src is not None
        self.src.seek(pos)
        while piece := self.src.read(1 << 16):
            if (nl := piece.find(b"\n")) >= 0:
                return pos + nl + 1
            pos += len(piece)
        return None

    def _problem(self, line: _Line, what: str) -> None:
        line.outcome = MALFORMED
        self.problems += 1
        if self.problems <= MAX_PROBLEMS:
            print(f"{self.path}:{line.lineno}: {what[:200]}", file=sys.stderr)
        elif self.problems == MAX_PROBLEMS + 1:
            print(f"{self.path}: more malformed lines; only counted from here on", file=sys.stderr)

    # -- writing ---------------------------------------------------------------------------------

    def _open_tmp(self) -> IO[bytes]:
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, os.stat(self.path).st_mode & 0o777)  # the file's own permissions
        except OSError:
            pass
        return os.fdopen(fd, "wb")

    def _write(self, chunk: list[_Line]) -> None:
        for line in chunk:
            self.rows[(line.sink or "-", line.reason or "-", line.outcome or INTERRUPTED)] += 1
            if self.out is None or line.outcome == SENT:
                continue
            if line.record is not None:
                self.out.write(line.record)
            elif line.raw is not None:
                self.out.write(line.raw)
            else:
                assert line.span is not None
                self._copy(*line.span)

    def _copy(self, start: int, end: int | None) -> tuple[int, bytes]:
        """Copy bytes ``start`` to ``end`` (None: the end) of the file to the new one, in pieces;
        returns how many newlines that was and the last byte."""
        assert self.src is not None and self.out is not None
        self.src.seek(start)
        newlines, last = 0, b""
        while end is None or start < end:
            piece = self.src.read(1 << 16 if end is None else min(1 << 16, end - start))
            if not piece:
                break
            self.out.write(piece)
            start += len(piece)
            newlines += piece.count(b"\n")
            last = piece[-1:]
        return newlines, last

    def _commit(self) -> None:
        """Copy what was appended meanwhile (under the file's lock, so no bot is mid-line), then
        put the new file in place of the old."""
        assert self.src is not None and self.out is not None
        self.out.flush()
        os.fsync(self.out.fileno())  # most of it, before a bot may have to wait for the lock
        lock_file(self.src)
        try:
            if not names_file(self.path, self.src):
                self.out.close()
                self.out = None
                raise _Moved
            self.added, last = self._copy(self.consumed, None)  # what a bot appended while this ran
            self.torn_at = None
            if last not in (b"", b"\n"):  # a torn last line: end it, so that the next append starts afresh
                self.out.write(b"\n")
                self._torn(self.lineno + self.added + 1)
            self.out.flush()
            os.fsync(self.out.fileno())
            self.out.close()
            self.out = None
            os.replace(self.tmp, self.path)
        finally:
            unlock_file(self.src)
        try:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass

    def _torn(self, lineno: int) -> None:
        self.torn_at = lineno
        print(f"{self.path}:{lineno}: the last line has no newline (a bot killed while writing it?): kept",
              file=sys.stderr)

    def _abandon_tmp(self) -> None:
        """Unless it replaced the file (or was kept on purpose), remove the new file: it is the lock."""
        if self.out is not None:
            self.out.close()
            self.out = None
            self.tmp.unlink(missing_ok=True)

    # -- the summary -----------------------------------------------------------------------------

    def _report(self, interrupted: bool) -> None:
        first = {sink: i for i, (sink, _, _) in reversed(list(enumerate(self.rows)))}  # each sink's first row
        rows = sorted(((sink, reason, str(n), outcome) for (sink, reason, outcome), n in self.rows.items()),
                      key=lambda row: (row[0] == "-", first[row[0]]))  # by sink, malformed lines last
        read = sum(self.rows.values())
        head = f"{self.path}: {read} line(s) read"
        if self.dry_run:
            head += " (dry run: nothing is sent, the file is not changed)"
        print(head)
        if rows:
            table = [("SINK", "REASON", "LINES", "OUTCOME"), *rows]
            widths = [max(len(r[i]) for r in table) for i in range(3)]
            for sink, reason, n, outcome in table:
                print(f"  {sink:<{widths[0]}}  {reason:<{widths[1]}}  {n:>{widths[2]}}  {outcome}")
        for sink, (reason, error, attempts) in self.caught.errors.items():
            what = "failed again" if reason == "failed" else "refused it"
            print(f"livebot resend: sink {sink!r} {what} after {attempts} attempt(s): {error}", file=sys.stderr)
        if interrupted:
            print(f"livebot resend: interrupted; what was not sent is still in {self.path}", file=sys.stderr)
        sent = sum(n for (_, _, outcome), n in self.rows.items() if outcome in (SENT, WOULD_SEND))
        unselected = sum(n for (_, _, outcome), n in self.rows.items() if outcome == NOT_SELECTED)
        if self.added:
            print(f"{self.added} line(s) were added to {self.path} while this ran: kept for the next resend")
        where = f"line(s) {'would stay' if self.dry_run else 'left'} in {self.path}"
        print(f"{'would send' if self.dry_run else 'sent'} {sent} action(s); {self._left() + unselected} {where}"
              + (f" ({unselected} not selected)" if unselected else ""))


class _Moved(Exception):
    pass


def run_resend(args: Any) -> int:
    """``livebot resend`` from its parsed arguments (bot/cli.py)."""
    if not args.dead_letter.is_file():
        print(f"livebot resend: no such dead-letter file: {args.dead_letter}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    resend = Resend(args.dead_letter, cfg, config_name=str(args.config), sinks=args.sink, reasons=args.reason,
                    dry_run=args.dry_run)

    async def go() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # stop sending, keep what is left
        try:
            return await resend.run()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(go())
