"""What the fuzz tests share: hypothesis settings, the one-line-problem pattern, YAML line mutations."""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("LIVEBOT_FUZZ_EXAMPLES", "0"))
PROBLEM = re.compile(r"^[^:\n]+:\d+:\d+: [^\n]+$")  # file:line:col: what is wrong


def fuzz(default: int) -> settings:
    """``default`` examples in the normal run; LIVEBOT_FUZZ_EXAMPLES overrides for long runs."""
    return settings(max_examples=EXAMPLES or default, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


def mutate_lines(draw: Any, text: str, ops: Sequence[str], tokens: st.SearchStrategy[str]) -> str:
    """One to five edits of ``text``'s lines, each one of ``ops``: delete, duplicate, indent,
    dedent, insert (a token or a few characters), uncomment, splice (a line's head with another
    line), truncate (the file ends inside a line), swap."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 5))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        op = draw(st.sampled_from(list(ops)))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "indent":
            lines[i] = "  " + line
        elif op == "dedent":
            lines[i] = line[2:] if line.startswith("  ") else line
        elif op == "insert":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(tokens | st.text(max_size=4)) + line[at:]
        elif op == "uncomment":
            lines[i] = line.replace("# ", "", 1)
        elif op == "splice":
            lines[i] = line[:draw(st.integers(0, len(line)))] + lines[draw(st.integers(0, len(lines) - 1))]
        elif op == "truncate":
            lines = lines[:i] + [line[:draw(st.integers(0, len(line)))]]
        else:  # swap
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)
