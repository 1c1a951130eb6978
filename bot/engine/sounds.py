"""Per-gift sounds from the rule pack's settings: a ``sound`` action (rule ``sounds``) for each
(folded) gift whose name or id is listed, so a streak of 99 roses is one sound::

    settings:
      sounds:
        gifts: { Rose: rose.mp3, Lion: lion.mp3, "5655": universe.mp3 }

Per tier or per rule: a ``- sound: big.mp3`` action in a tier's or a rule's ``do``. The overlay
sink plays them from ``sinks.overlay.sounds.folder`` within its limits (bot/sinks/overlay/sounds.py).
"""

from __future__ import annotations

from typing import Any

from bot.actions.model import Action
from bot.events.model import GIFT, Event


SOUND_NAME_PROBLEM = ("a sound is a plain file name in the sounds folder with an audio extension "
                      "(.mp3, .ogg, .wav, ...), e.g. rose.mp3: no folders, no '..'")


def sound_name_ok(text: str) -> bool:
    """A sound's file name as written in a rule or in settings: plain (as the overlay serves them), or a
    template (checked when it runs)."""
    from bot.sinks.overlay.sounds import plain_name

    return "{{" in text or "{%" in text or plain_name(text.strip())


def parse_sounds(loader: Any, raw: Any, pos: Any) -> dict[str, str]:
    from bot.engine.yamlfile import YMap

    if not isinstance(raw, YMap):
        loader._problem(pos, "'sounds' is a mapping: gifts: {gift name or id: file}")
        return {}
    loader._keys(raw, ("gifts",), "sounds key")
    gifts = raw.get("gifts")
    if gifts is None:
        return {}
    if not isinstance(gifts, YMap):
        loader._problem(raw.value_pos["gifts"], "'gifts' maps a gift's name or id to a sound file, e.g. Rose: rose.mp3")
        return {}
    out = {}
    for name, file in gifts.items():
        if not isinstance(file, str) or "{" in file or not sound_name_ok(file):
            loader._problem(gifts.value_pos[name], SOUND_NAME_PROBLEM)
            continue
        out[str(name).strip().lower()] = file.strip()
    return out


SOUNDS_RULE = "sounds"  # the rule name of the engine's per-gift sounds: not a rule's firing (report, console)


def gift_sound(sounds: dict[str, str], ev: Event, now: int) -> Action | None:
    if ev.type != GIFT or not sounds:
        return None
    file = sounds.get(str(ev.data.get("name", "")).strip().lower()) or sounds.get(str(ev.data.get("gift_id", "")))
    if file is None:
        return None
    user = ev.user.unique_id if ev.user is not None else None
    return Action(now, "sound", file, SOUNDS_RULE, user, ev.msg_id or None, {"gift": str(ev.data.get("name", ""))})
