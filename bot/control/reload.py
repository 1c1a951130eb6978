"""Hot reload of rule files: on SIGHUP and when a rule file changes on disk.

A reload is atomic: the new files are loaded and compiled completely before anything changes.
A file with errors is refused, every error is logged as ``file:line:col: message``, and the
running rules keep working. Session state, cooldowns, open streaks and polls survive a reload.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import structlog

from bot.engine.loader import RuleLoadError, load_rules, rule_files
from bot.engine.rules import RuleSet

log = structlog.get_logger("bot.reload")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(path: Path, files: list[str]) -> Fingerprint:
    """What the rules on disk look like now: every rule file (and included file) with its mtime and size."""
    try:
        paths = {str(p) for p in rule_files(path)} | set(files)
    except OSError:
        paths = set(files)
    out = []
    for p in sorted(paths):
        try:
            st = Path(p).stat()
            out.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((p, -1, -1))  # gone: a change too
    return tuple(out)


class RuleReloader:
    def __init__(self, path: str | Path, current: RuleSet, apply: Callable[[RuleSet], None],
                 poll_s: float = 1.0) -> None:
        self.path = Path(path)
        self.apply = apply
        self.poll_s = poll_s
        self.files = list(current.files)
        self._seen = fingerprint(self.path, self.files)
        self.reloads = 0
        self.refused = 0
        self.last_problems: list[str] = []

    def reload(self, why: str = "signal") -> bool:
        """Load the rules now; apply them if they load cleanly. Returns whether they were applied."""
        self._seen = fingerprint(self.path, self.files)
        try:
            rules = load_rules(self.path)
        except RuleLoadError as exc:
            self.refused += 1
            self.last_problems = exc.problems
            log.error("reload_refused", why=why, problems=len(exc.problems), kept="the running rules")
            for problem in exc.problems:
                log.error("rule_problem", problem=problem)
            return False
        except OSError as exc:
            self.refused += 1
            self.last_problems = [f"{self.path}:1:1: cannot read: {exc}"]
            log.error("reload_refused", why=why, error=str(exc), kept="the running rules")
            return False
        self.files = list(rules.files)
        self._seen = fingerprint(self.path, self.files)
        self.apply(rules)
        self.reloads += 1
        self.last_problems = []
        log.info("rules_reloaded", why=why, rules=len(rules.rules), files=len(rules.files))
        return True

    def changed(self) -> bool:
        return fingerprint(self.path, self.files) != self._seen

    async def watch(self, stop: asyncio.Event) -> None:
        """Poll the files every ``poll_s`` seconds until ``stop``; reload when they change."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
            if not stop.is_set() and self.changed():
                # A file is often written in several steps: wait until it holds still for a moment.
                await asyncio.sleep(min(0.2, self.poll_s))
                self.reload("file changed")
