"""Waiting in tests: on a condition, never a fixed sleep, with hang guards that scale.

The machines that run the suite are shared: a test that needs a quiet machine is a broken test.
Guards are generous (a guard only stops a bug from hanging the suite; it never measures), and
``LIVEBOT_TEST_TIME_SCALE`` (default 1) multiplies them on a slow or very busy machine."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable

SCALE = max(1.0, float(os.environ.get("LIVEBOT_TEST_TIME_SCALE", "1") or 1))


def guard(seconds: float) -> float:
    """A hang guard of ``seconds``, scaled for the machine."""
    return seconds * SCALE


async def until(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.02) -> Any:
    """Wait until ``check()`` (a function, or one returning an awaitable) is truthy; returns its
    value. Fails with ``what`` after ``guard(timeout)`` seconds of wall time."""
    deadline = time.monotonic() + guard(timeout)
    while True:
        got = check()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)
