"""Checks made before a command starts work: can it write where it was told to, and can it listen
where it was told to. Each failure is one line naming the path or port and where it was set
(a flag or a config key); the commands print it and exit 2, never a traceback.

Paths, two kinds:
- an output file given on the command line (``--out``, ``--html``) is written where the shell
  would write it: its folder must already exist (no folders are created for a typo);
- a path from the config file (``sinks.jsonl``, ``sinks.dead_letter``, ``state.database``,
  ``state.journal``, ``record.folder``, ``report.folder``) is the bot's own place: missing
  folders are created, as they always were, but only if that can succeed.

Writability is tested by writing (a temporary file in the folder, which is removed at once), not by
``os.access``: that answers yes to root for a read-only mount or ``/proc``.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path


class StartupError(Exception):
    """One line to print before exiting with status 2."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _probe_folder(folder: Path, what: str) -> None:
    """Raise StartupError unless a file can be created in ``folder`` (which exists)."""
    if not folder.is_dir():
        raise StartupError(f"{what}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".livebot-probe-"):
            pass
    except OSError as exc:
        raise StartupError(f"{what}: cannot write in {folder}: {_reason(exc)}") from None


def check_output_file(path: Path, what: str, *, create_folders: bool) -> None:
    """``path`` is a file that will be written (created or appended to)."""
    if path.is_dir():
        raise StartupError(f"{what}: {path} is a folder, not a file")
    folder = path.parent
    if not folder.exists():
        if not create_folders:
            raise StartupError(f"{what}: cannot write {path}: the folder {folder} does not exist")
        check_folder(folder, what)
    else:
        _probe_folder(folder, what)
    if path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise StartupError(f"{what}: cannot write {path}: {_reason(exc)}") from None


def check_folder(folder: Path, what: str) -> None:
    """``folder`` will hold files the bot writes: created if missing, and writable."""
    if folder.exists() and not folder.is_dir():
        raise StartupError(f"{what}: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"{what}: cannot create the folder {folder}: {_reason(exc)}") from None
    _probe_folder(folder, what)


def check_run_paths(cfg, out: Path | None = None) -> None:
    """Everything ``livebot run`` will write, checked before it starts."""
    if out is not None:
        check_output_file(out, "--out", create_folders=False)
    elif cfg.jsonl is not None:
        check_output_file(cfg.jsonl, "sinks.jsonl", create_folders=True)
    if cfg.dead_letter is not None:
        check_output_file(cfg.dead_letter, "sinks.dead_letter", create_folders=True)
    if cfg.state_db is not None and not cfg.state_redis:
        check_output_file(cfg.state_db, "state.database", create_folders=True)
    if cfg.state_journal is not None:
        check_output_file(cfg.state_journal, "state.journal", create_folders=True)
    if cfg.record is not None:
        check_folder(cfg.record, "record.folder")
    if cfg.report_folder is not None:
        check_folder(cfg.report_folder, "report.folder")


def listen_error(exc: OSError, host: str, port: int, key: str) -> StartupError:
    """The one line for a server that could not listen on ``host:port`` (set by config ``key``)."""
    if exc.errno == errno.EADDRINUSE:
        why = "the port is in use by another program"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = f"{host} is not an address of this machine"
    else:
        why = _reason(exc)
    return StartupError(f"cannot listen on {host}:{port} ({key}): {why}; set another {key} in the config")


__all__ = ["StartupError", "check_folder", "check_output_file", "check_run_paths", "listen_error"]
