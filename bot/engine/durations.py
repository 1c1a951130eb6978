"""Durations as creators write them: ``90s``, ``10m``, ``1h30m``, ``500ms`` or a number of seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
MAX_MS = 100 * 365 * 86_400_000  # longer than any stream: a typo, refused rather than overflowing
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(value: object) -> int:
    """Return milliseconds, or raise ValueError with a message a creator understands."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s or 10m, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        if not value * 1000 < MAX_MS:
            raise ValueError(f"a duration must be under 100 years, got {str(value)[:40]}")
        return int(value * 1000)
    if not isinstance(value, str):
        shown = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else \
            "null" if value is None else "something else"
        raise ValueError(f"expected a duration such as 30s or 10m, got {shown}")
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"bad duration {value[:60]!r}: use a number with ms, s, m, h or d, e.g. 90s, 10m, 1h30m")
    if not total < MAX_MS:
        raise ValueError(f"a duration must be under 100 years, got {value[:40]!r}")
    return int(total)
