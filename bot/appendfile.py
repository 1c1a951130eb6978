"""Appending lines to a file that a killed process may have left with half a line at its end."""

from __future__ import annotations

import os
from pathlib import Path


def end_cut_line(path: str | Path) -> bool:
    """If ``path`` ends inside a line (a write cut by a kill), end that line, so the next line
    appended stays whole and the cut one is a malformed line of its own. True if it had to.
    A missing or empty file is fine as it is, and so is anything but a regular file (a pipe,
    /dev/stdout)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb+") as f:
            if not f.seek(0, os.SEEK_END):
                return False
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return False
            f.write(b"\n")
            return True
    except FileNotFoundError:
        return False
