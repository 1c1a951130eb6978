"""Polls opened and closed from outside the rules (the control page's ``POST /api/poll``).

They are ``poll_control`` events, put into the event queue as a source would put an event: the
engine handles them in order with everything else (``Engine.control_poll``), the recorder writes
them, and a replay of the recording opens and closes the same polls at the same times::

    {"op": "open", "question": TEXT, "options": [TEXT, ...], "duration_ms": N}
    {"op": "close"}

``check_poll_control`` says what is wrong with such data (the page answers 400 with it; the
engine logs, counts and skips a recorded one that is wrong). The question and the options are the
creator's text: never compiled as a template.
"""

from __future__ import annotations

from typing import Any

from bot.engine.durations import parse_duration
from bot.engine.rules import ActionSpec, Rule
from bot.engine.templates import Text
from bot.engine.yamlfile import Pos

CONTROL_POLL = "control-poll"  # the rule id of a poll opened from the control page
MAX_QUESTION = 300
MAX_OPTION = 60
MIN_MS, MAX_MS = 5_000, 3_600_000
RESULT = "Poll closed: {{ poll.winner }} wins with {{ poll.top }} vote(s)."


def literal(text: str) -> Text:
    """A text that is only text: never compiled as a template."""
    t = Text.__new__(Text)
    t.source = text
    t._template = None
    return t


def check_poll_control(body: dict[str, Any]) -> dict[str, Any]:
    """The ``poll_control`` data for a request (``op`` or ``action``: open / close), or ValueError
    with what is wrong. ``duration`` may be text ("1m", "30s") or ``duration_ms`` a number."""
    op = body.get("op", body.get("action"))
    if op == "close":
        return {"op": "close"}
    if op != "open":
        raise ValueError("'action' must be open or close")
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' is required (text)")
    question = question.strip()
    if len(question) > MAX_QUESTION:
        raise ValueError(f"'question' is longer than {MAX_QUESTION} characters")
    options = body.get("options")
    if isinstance(options, str):
        options = [o.strip() for o in options.split(",") if o.strip()]
    if not isinstance(options, list) or not 2 <= len(options) <= 9 or not all(
            isinstance(o, str) and o.strip() and len(o) <= MAX_OPTION for o in options):
        raise ValueError(f"'options' must be 2 to 9 answers (text, at most {MAX_OPTION} characters each)")
    duration = body.get("duration_ms")
    if duration is None:
        try:
            duration = parse_duration(str(body.get("duration", "1m")))
        except ValueError as exc:
            raise ValueError(f"'duration': {exc}") from None
    if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_MS <= duration <= MAX_MS:
        raise ValueError("'duration' must be from 5s to 1h")
    return {"op": "open", "question": question, "options": [o.strip() for o in options], "duration_ms": duration}


def control_rule(data: dict[str, Any]) -> tuple[Rule, ActionSpec]:
    """The rule and poll action a checked ``open`` stands for (as if a rule had fired it)."""
    spec = ActionSpec("poll", literal(data["question"]), {}, {"options": list(data["options"]),
                                                             "duration": data["duration_ms"], "result": Text(RESULT)})
    return Rule(CONTROL_POLL, Pos("control page", 1, 1), [spec]), spec
