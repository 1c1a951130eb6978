"""The ``settings:`` block of a rule file, for the rule loader (bot/engine/loader.py): chat pacing,
leaderboard, snippets, and the hand-off of goals, subathon, sounds, points, tts and policy to their own
parsers (bot/engine/goals.py and the rest, bot/policy/load.py). ``_SettingsParser`` is a mixin of
``_Loader``; ``settings:`` may appear in one file of a rule set only."""

from __future__ import annotations

from typing import Any

from bot.engine.goals import parse_goals
from bot.engine.points import parse_points
from bot.engine.sounds import parse_sounds
from bot.engine.subathon import parse_subathon
from bot.engine.voices import parse_tts
from bot.engine.yamlfile import Pos, YMap
from bot.policy.load import parse_policy

SETTINGS_KEYS = {"": ("chat", "leaderboard", "snippets", "goals", "subathon", "sounds", "points", "tts", "policy"), "chat": ("per_minute", "burst", "dedup", "max_wait"),
                 "leaderboard": ("top",)}


class _SettingsParser:
    def _settings(self, raw: Any, pos: Pos) -> None:
        if self._settings_pos is not None:
            self._problem(pos, f"'settings' may appear in one file only (first at {self._settings_pos})")
            return
        self._settings_pos = pos
        if not isinstance(raw, YMap):
            self._problem(pos, "'settings' must be a mapping")
            return
        self._keys(raw, SETTINGS_KEYS[""], "settings key")
        chat = raw.get("chat")
        if isinstance(chat, YMap):
            self._keys(chat, SETTINGS_KEYS["chat"], "chat setting")
            self.settings.chat_per_minute = self._int(chat, "per_minute", 0, None) or 0
            self.settings.chat_burst = self._int(chat, "burst", 1, None) or self.settings.chat_burst
            if "dedup" in chat:
                self.settings.chat_dedup_ms = self._duration(chat, "dedup", None) or 0
            if "max_wait" in chat:
                self.settings.chat_max_wait_ms = self._duration(chat, "max_wait", None) or 0
        elif chat is not None:
            self._problem(raw.value_pos["chat"], "'chat' must be a mapping: per_minute, burst, dedup")
        board = raw.get("leaderboard")
        if isinstance(board, YMap):
            self._keys(board, SETTINGS_KEYS["leaderboard"], "leaderboard setting")
            self.settings.top_n = self._int(board, "top", 1, None) or self.settings.top_n
        elif board is not None:
            self._problem(raw.value_pos["leaderboard"], "'leaderboard' must be a mapping: top")
        snippets = raw.get("snippets")
        if isinstance(snippets, YMap):
            for name, value in snippets.items():
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    self._problem(snippets.value_pos[name], f"snippet '{name}' must be text")
                else:
                    self.settings.snippets[name] = str(value)
                    self._policy_texts.append((snippets.value_pos[name], "say", f"snippet {name}", str(value)))
                    self._policy_literals.append(str(value))
        elif snippets is not None:
            self._problem(raw.value_pos["snippets"], "'snippets' must be a mapping of name: text")
        if "goals" in raw:  # on-stream features: bot/engine/goals.py, bot/engine/subathon.py
            self.settings.goals = parse_goals(self, raw["goals"], raw.value_pos["goals"])
        if "subathon" in raw:
            self.settings.subathon = parse_subathon(self, raw["subathon"], raw.value_pos["subathon"])
        if "sounds" in raw:
            self.settings.sounds = parse_sounds(self, raw["sounds"], raw.value_pos["sounds"])
        if "points" in raw:
            self.settings.points = parse_points(self, raw["points"], raw.value_pos["points"])
        if "tts" in raw:
            self.settings.tts = parse_tts(self, raw["tts"], raw.value_pos["tts"])
        if "policy" in raw:
            self.settings.policy = parse_policy(raw["policy"], raw.value_pos["policy"], self._problem)
            self._policy_literals += self.settings.policy.allow
