"""Text-to-speech voices per viewer, and who may be spoken.

Configured in the rule pack's ``settings:``::

    settings:
      tts:
        voices:                       # the voices viewers may have (the page's speechSynthesis names,
          - { name: "Google US English", lang: en-US }        #  matched by part, case ignored)
          - { name: "Google UK English Female", lang: en-GB }
          - { name: "Google español", lang: es-ES }
        who: everyone                 # everyone | subscribers | gifters (moderators always)
        min_diamonds: 100             # gifters: at least this many diamonds this stream

Each ``tts`` action caused by a viewer gets ``data.voice`` and ``data.lang``: the voice the viewer
chose with ``- voice: "{{ args | join(' ') }}"`` (e.g. behind ``!voice``; kept over streams with
the lifetime totals), else one picked by their user id — stable, the same in every replay and
every stream. A ``tts`` action of a viewer who may not be spoken is dropped (counted as
``tts_not_allowed``). Rate limits stay the overlay's (``sinks.overlay.tts``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bot.actions.model import Action

WHO = ("everyone", "subscribers", "gifters")
TTS_KEYS = ("voices", "who", "min_diamonds")
LIFETIME_KEY = "@livebot:voices"


@dataclass
class VoiceSpec:
    voices: list[tuple[str, str]] = field(default_factory=list)  # (name, lang)
    who: str = "everyone"
    min_diamonds: int = 0


class Voices:
    def __init__(self, spec: VoiceSpec, lifetime_row: Any = None) -> None:
        self.spec = spec
        self.chosen: dict[str, str] = {}  # viewer key → voice name (their own choice)
        if isinstance(lifetime_row, dict):
            self.chosen = {str(k): str(v) for k, v in lifetime_row.items()}

    def voice_of(self, key: str) -> tuple[str, str] | None:
        voices = self.spec.voices
        if not voices:
            return None
        own = self.chosen.get(key)
        if own is not None:
            for name, lang in voices:
                if name == own:
                    return name, lang
        digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
        return voices[int.from_bytes(digest, "big") % len(voices)]

    def allowed(self, user: Any, diamonds: int) -> bool:
        if user.is_moderator or self.spec.who == "everyone":
            return True
        if self.spec.who == "subscribers":
            return bool(user.is_subscriber)
        return diamonds >= max(1, self.spec.min_diamonds)

    def choose(self, key: str, nickname: str, asked: str, now: int, rule: str, user: str | None,
               event_id: str | None) -> Action:
        """A viewer picks a voice (by name or a part of it); the answer as a chat line."""
        want = asked.strip().lower()
        names = [n for n, _ in self.spec.voices]
        match = (next((n for n in names if n.lower() == want), None)  # the name, else one of its words,
                 or next((n for n in names if want in n.lower().split()), None)  # else a part of it
                 or next((n for n in names if want and want in n.lower()), None))
        if match is None:
            return Action(now, "say", f"@{nickname} voices: {', '.join(names)}", rule, user, event_id, {"voice": None})
        self.chosen[key] = match
        return Action(now, "say", f"@{nickname} your voice is now {match}", rule, user, event_id, {"voice": match})

    def snapshot(self) -> dict[str, str]:
        return dict(self.chosen)


def parse_tts(loader: Any, raw: Any, pos: Any) -> VoiceSpec | None:
    from bot.engine.yamlfile import YList, YMap

    if not isinstance(raw, YMap):
        loader._problem(pos, "'tts' is a mapping: voices, who, min_diamonds")
        return None
    before = len(loader.problems)
    loader._keys(raw, TTS_KEYS, "tts key")
    spec = VoiceSpec()
    voices = raw.get("voices")
    if voices is None:
        pass
    elif not isinstance(voices, YList):
        loader._problem(raw.value_pos.get("voices", raw.pos), "'voices' is a list of {name, lang}")
    else:
        for item, ipos in zip(voices, voices.item_pos):
            if isinstance(item, str) and item.strip():
                spec.voices.append((item.strip(), ""))
            elif isinstance(item, YMap) and isinstance(item.get("name"), str) and item["name"].strip():
                loader._keys(item, ("name", "lang"), "voice key")
                lang = item.get("lang", "")
                if not isinstance(lang, str):
                    loader._problem(item.value_pos["lang"], "'lang' is a language tag such as en-US")
                    continue
                spec.voices.append((item["name"].strip(), lang.strip()))
            else:
                loader._problem(ipos, "a voice is a name, or {name: the voice's name, lang: en-US}")
    who = raw.get("who", "everyone")
    if who not in WHO:
        loader._problem(raw.value_pos["who"], "'who' is everyone, subscribers or gifters")
    else:
        spec.who = who
    low = raw.get("min_diamonds", 0)
    if isinstance(low, bool) or not isinstance(low, int) or low < 0:
        loader._problem(raw.value_pos["min_diamonds"], "'min_diamonds' is a whole number")
    else:
        spec.min_diamonds = low
    return None if len(loader.problems) > before else spec
