"""What the session generators (sessiongen.py, collabgen.py) share: the ``--start`` time and the
writing of their lines, one a line, to ``-o FILE`` or standard output."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Iterable


def iso_to_ms(iso: str) -> int:
    """An ISO time (``--start``) as epoch milliseconds."""
    return int(datetime.fromisoformat(iso).astimezone(timezone.utc).timestamp() * 1000)


def write_lines(lines: Iterable[bytes], output: str | None) -> None:
    """Each line and a newline to the file ``output``, or to standard output when it is None."""
    out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        for b in lines:
            out.write(b + b"\n")
    finally:
        if output:
            out.close()
