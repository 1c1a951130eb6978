"""Viewer text as another tool may show or say it (an OBS text source, a Streamer.bot action's
arguments): control characters (but line breaks; a tab becomes a space) and the bidi controls that
would turn the rest of a line around removed, cut at ``MAX_TEXT`` characters."""

from __future__ import annotations

import re

MAX_TEXT = 500  # characters
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown_text(text: str) -> str:
    text = _HIDDEN.sub("", text.replace("\t", " "))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
