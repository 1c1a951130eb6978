"""The lines of a dead-letter file as ``livebot resend`` (``bot.actions.resend``) reads them:
``parse_line`` turns one line into ``(sink, reason, action)`` or says what is wrong with it,
``_Line`` carries one line and what became of it, and the outcome strings (``SENT``,
``NOT_TRIED``, ...) are what the summary table counts and what decides whether a line stays.
"""

from __future__ import annotations

import orjson

from bot.actions.model import Action


SENT = "sent"
WOULD_SEND = "would send"
NOT_SELECTED = "kept: not selected (--sink, --reason)"
NOT_TRIED = "kept: not tried (the sink failed again earlier in this run)"
FAILED_AGAIN = "kept: failed again"
REFUSED = "kept: refused by the sink"
INTERRUPTED = "kept: interrupted"
MALFORMED = "kept: malformed"
NOT_COUNTED_AS_LEFT = (SENT, WOULD_SEND, NOT_SELECTED)


def parse_line(raw: bytes) -> tuple[str, str, Action]:
    """``(sink, reason, action)`` of one dead-letter line; ``ValueError`` says what is wrong."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(record, dict) or "sink" not in record or "action" not in record:
        raise ValueError("not a dead-letter record (a JSON object with 'sink' and 'action')")
    sink, reason, action = record["sink"], record.get("reason", ""), record["action"]
    if not isinstance(sink, str) or not sink:
        raise ValueError("'sink' is not a non-empty string")
    if not isinstance(reason, str):
        raise ValueError("'reason' is not a string")
    if not isinstance(action, dict):
        raise ValueError("'action' is not a JSON object")
    try:
        return sink, reason, Action.from_dict(action)
    except KeyError as exc:
        raise ValueError(f"'action' has no {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"'action' is not an action ({exc})") from None


class _Line:
    """One line of the file and what became of it (``outcome`` None: not decided yet)."""

    __slots__ = ("action", "lineno", "outcome", "raw", "reason", "record", "sink", "span")

    def __init__(self, lineno: int, raw: bytes | None, span: tuple[int, int] | None = None) -> None:
        self.lineno = lineno
        self.raw = raw  # the line as read (None for an over-long line: ``span`` in the file)
        self.span = span
        self.sink: str | None = None
        self.reason: str | None = None
        self.action: Action | None = None
        self.outcome: str | None = None
        self.record: bytes | None = None  # a fresh dead-letter record: the send failed again
