"""Rules per room for the Redis worker (``bot.scale.worker``): ``RoomRules``, the part of ``Worker``
that picks a room's rule folder (``redis.rules_by_room``/{room}, else the default), loads each
folder once and shares it between its rooms, refuses a folder that does not load until it
changes, and reloads on SIGHUP, on a file change, or when a room's own folder appears or goes.
Its methods run on a ``Worker`` and use the state ``Worker.__init__`` sets.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from bot.control.reload import RuleReloader
from bot.engine.loader import RuleLoadError, load_rules
from bot.engine.rules import RuleSet

log = structlog.get_logger("bot.worker")


class RoomRules:
    """``Worker``'s rule folders, per room, and their hot reload."""

    def _rules_path(self, room: str) -> Path:
        folder = self.rc.rules_by_room
        if folder is not None and (folder / room).is_dir():
            return folder / room
        return self.default_rules

    def _remember_rules(self, path: Path, ruleset: RuleSet) -> None:
        self.rulesets[path] = ruleset
        self.reloaders[path] = RuleReloader(path, ruleset, lambda rs, p=path: self._apply_rules(p, rs),
                                            poll_s=self.cfg.reload_poll_ms / 1000)

    def _ruleset(self, path: Path) -> RuleSet | None:
        if path in self.rulesets:
            return self.rulesets[path]
        from bot.control.reload import fingerprint

        seen = fingerprint(path, [])
        if self._refused.get(path) == seen:
            return None
        try:
            ruleset = load_rules(path)
        except (RuleLoadError, OSError) as exc:
            self._refused[path] = seen
            problems = getattr(exc, "problems", [str(exc)])
            log.error("room_rules_refused", rules=str(path), problems=len(problems))
            for problem in problems:
                log.error("rule_problem", problem=problem)
            return None
        self._refused.pop(path, None)
        self._remember_rules(path, ruleset)
        return ruleset

    def _apply_rules(self, path: Path, ruleset: RuleSet) -> None:
        self.rulesets[path] = ruleset
        for room in self.rooms.values():
            if room.rules_path == path:
                room.engine.replace_rules(ruleset, room.last)

    def _forget_unused_rules(self) -> None:
        used = {r.rules_path for r in self.rooms.values()} | {self.default_rules}
        for path in [p for p in self.rulesets if p not in used]:
            del self.rulesets[path]
            del self.reloaders[path]

    def reload_all(self) -> None:
        for reloader in list(self.reloaders.values()):
            reloader.reload("SIGHUP")

    async def _watch_rules(self) -> None:
        """Hot reload: rule files changing on disk, and a room's own folder appearing or going."""
        if not self.cfg.reload_watch:
            return
        poll = self.cfg.reload_poll_ms / 1000
        while not self.stop.is_set():
            await asyncio.sleep(poll)
            changed = [r for r in list(self.reloaders.values()) if r.changed()]
            if changed:
                await asyncio.sleep(min(0.2, poll))  # a file is often written in several steps
                for reloader in changed:
                    reloader.reload("file changed")
            for room in list(self.rooms.values()):
                path = self._rules_path(room.name)
                if path != room.rules_path:
                    ruleset = self._ruleset(path)
                    if ruleset is not None:
                        room.rules_path = path
                        room.engine.replace_rules(ruleset, room.last)
                        log.info("room_rules_switched", room=room.name, rules=str(path))
