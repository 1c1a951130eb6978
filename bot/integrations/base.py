"""What every integration sink shares: one connection kept open and opened again with backoff, a
time limit on every step, a per-minute cap, pacing, and errors the live dispatcher understands.

An integration is a sink (``bot.sinks.base``) with its own ``kinds``; the dispatcher hands it only
those, one action per ``send`` (``max_batch = 1``), paced by ``pacing`` (one at a time,
``min_gap`` apart, the biggest gift first in a burst). What ``send`` raises decides the action's
fate in the dispatcher:

- ``IntegrationDown`` (not connected: unreachable, timed out, the connection dropped): retried
  with the dispatcher's backoff, then dead-lettered. While the sink waits out its own reconnect
  backoff it raises at once instead of knocking on a closed door for every action.
- ``IntegrationRefused`` (a ``PermanentSinkError``: a wrong password, an unknown scene or action,
  a command not in the allow-list): dead-lettered at once; retrying cannot help.

- ``OverCap`` (a ``PermanentSinkError``): over ``max_per_minute``; not sent, counted (``over_cap``)
  and dead-lettered at once, never journaled as delivered (``livebot resend`` can send it later).

Passwords never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import structlog

from bot.actions.delivery import PermanentSinkError
from bot.actions.model import Action
from bot.actions.pacing import Pacing
from bot.sinks.cap import MinuteCap
from bot.sources.backoff import Backoff

log = structlog.get_logger("bot.integrations")


class IntegrationError(Exception):
    """Something went wrong talking to an integration (retried by the dispatcher)."""


class IntegrationDown(IntegrationError):
    """Not connected (unreachable, timed out, dropped); retried."""


class IntegrationRefused(IntegrationError, PermanentSinkError):
    """The integration (or our own allow-list) refused the action: dead-lettered at once."""


class OverCap(IntegrationError, PermanentSinkError):
    """Over the integration's ``max_per_minute``: not sent, dead-lettered at once."""


class AuthFailed(IntegrationRefused):
    """Wrong or missing password."""


class NotInstalled(IntegrationRefused):
    """The integration's optional client library is not installed."""


@dataclass
class Probe:
    """What ``livebot check`` learned from one connection attempt."""

    name: str
    where: str
    reachable: bool = False
    authenticated: bool = False
    error: str | None = None
    saw: dict[str, list[str]] = field(default_factory=dict)  # e.g. {"scenes": [...]}
    notes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # structured findings (OBS: sources by scene)

    @property
    def ok(self) -> bool:
        return self.reachable and self.authenticated and self.error is None


def describe(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class IntegrationSink:
    """Subclasses set ``name``, ``kinds`` and write ``_connect``, ``_disconnect``, ``_perform``
    (one action, connected) and ``_look`` (what ``livebot check`` reports)."""

    name = "integration"
    kinds: frozenset[str] = frozenset()
    live_only = False
    max_batch = 1

    def __init__(self, *, name: str | None = None, min_gap_s: float = 0.0, max_per_minute: int = 60,
                 timeout_s: float = 5.0, backoff_base_s: float = 1.0, backoff_cap_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if name is not None:
            self.name = name
        self.pacing = Pacing(min_gap=min_gap_s) if min_gap_s > 0 else None
        self.max_per_minute = max_per_minute
        self.cap = MinuteCap(max_per_minute, clock)
        self.timeout = timeout_s
        self.clock = clock
        self.backoff = Backoff(backoff_base_s, backoff_cap_s)
        self.connected = False
        self._next_try = 0.0
        self._last_error = ""
        self._auth_failed = False
        self._not_installed = False
        self.counters: dict[str, int] = {"sent": 0, "over_cap": 0, "connects": 0, "connect_failures": 0,
                                         "refused": 0}

    # -- subclasses ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """Where it connects (no password, no path or query)."""
        raise NotImplementedError

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _disconnect(self) -> None:
        raise NotImplementedError

    async def _perform(self, action: Action) -> None:
        raise NotImplementedError

    async def _look(self, probe: Probe) -> None:
        """Fill ``probe.saw`` (connected and authenticated)."""

    def _alive(self) -> bool:
        """False when the connection is known to have closed (checked before each action)."""
        return True

    def check_action(self, action: Action) -> None:
        """Refuse (``IntegrationRefused``) an action that can never go through, before connecting."""

    # -- the sink --------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, where={self.where!r})"

    async def send(self, actions: Sequence[Action]) -> None:
        over = 0
        for action in actions:
            try:
                self.check_action(action)
            except IntegrationRefused:
                self.counters["refused"] += 1
                raise
            if not self.cap.allowed():
                over += 1
                self.counters["over_cap"] += 1
                n = self.counters["over_cap"]
                if n <= 5 or n % 100 == 0:
                    log.warning("integration_over_cap", sink=self.name, rule=action.rule, kind=action.kind,
                                over_cap=n, max_per_minute=self.max_per_minute)
                continue
            await self.connect()
            try:
                await asyncio.wait_for(self._perform(action), self.timeout)
            except IntegrationRefused:
                self.counters["refused"] += 1
                raise
            except Exception as exc:  # the connection is in doubt: open a new one next time
                await self._drop(exc)
                raise IntegrationDown(f"{self.name} ({self.where}): {describe(exc)}") from None
            self.cap.took()
            self.counters["sent"] += 1
        if over:  # not sent: dead-lettered, not journaled as delivered
            raise OverCap(f"{self.name}: over its cap (integrations.{self.name}.max_per_minute "
                          f"{self.max_per_minute}); not sent")

    async def connect(self) -> None:
        """Connect (and authenticate) unless connected; raise ``IntegrationDown`` or ``AuthFailed``."""
        if self.connected:
            if self._alive():
                return
            self.connected = False  # closed since the last action (the tool restarted): open it again now
            log.info("integration_connection_closed", sink=self.name, where=self.where)
            await self._quietly_disconnect()
        wait = self._next_try - self.clock()
        if wait > 0:
            if self._auth_failed:  # a wrong password stays wrong until the config changes
                raise AuthFailed(self._last_error)
            if self._not_installed:
                raise NotInstalled(self._last_error)
            raise IntegrationDown(f"{self.name} ({self.where}) is down ({self._last_error}); "
                                  f"next try in {wait:.1f}s")
        try:
            await asyncio.wait_for(self._connect(), self.timeout)
        except (AuthFailed, NotInstalled) as exc:
            await self._failed(exc)
            raise
        except Exception as exc:
            await self._failed(exc)
            raise IntegrationDown(f"{self.name} ({self.where}): cannot connect ({describe(exc)})") from None
        self.connected = True
        self.counters["connects"] += 1
        if self.backoff.attempt:
            log.info("integration_reconnected", sink=self.name, where=self.where)
        self.backoff.reset()

    async def _failed(self, exc: BaseException) -> None:
        self.counters["connect_failures"] += 1
        self._auth_failed = isinstance(exc, AuthFailed)
        self._not_installed = isinstance(exc, NotInstalled)
        self._last_error = describe(exc) if not isinstance(exc, IntegrationError) else str(exc)
        delay = self.backoff.next_delay()
        self._next_try = self.clock() + delay
        if self.counters["connect_failures"] <= 5 or self.counters["connect_failures"] % 100 == 0:
            log.warning("integration_unreachable", sink=self.name, where=self.where, error=self._last_error,
                        retry_in=round(delay, 2))
        await self._quietly_disconnect()

    async def _drop(self, exc: BaseException) -> None:
        self.connected = False
        self._last_error = describe(exc)
        log.warning("integration_dropped", sink=self.name, where=self.where, error=self._last_error)
        await self._quietly_disconnect()

    async def _quietly_disconnect(self) -> None:
        try:
            await asyncio.wait_for(self._disconnect(), self.timeout)
        except Exception:  # closing a broken connection may fail too
            pass

    async def start(self) -> None:
        """Connect at start if it can; an integration that is down is a warning with its name."""
        try:
            await self.connect()
        except IntegrationError as exc:
            log.warning("integration_not_ready", sink=self.name, where=self.where, error=str(exc),
                        hint="actions for it are retried, then dead-lettered, until it is back")

    async def probe(self) -> Probe:
        """Connect once, authenticate, look around, disconnect (``livebot check``)."""
        probe = Probe(self.name, self.where)
        try:
            await asyncio.wait_for(self._connect(), self.timeout)
        except AuthFailed as exc:
            probe.reachable, probe.error = True, str(exc)
            await self._quietly_disconnect()
            return probe
        except NotInstalled as exc:
            probe.error = str(exc)
            return probe
        except Exception as exc:
            probe.error = f"cannot connect ({describe(exc)})"
            await self._quietly_disconnect()
            return probe
        probe.reachable = probe.authenticated = True
        try:
            await asyncio.wait_for(self._look(probe), self.timeout)
        except Exception as exc:
            why = str(exc) if isinstance(exc, IntegrationError) else describe(exc)
            probe.error = f"could not list what it has: {why}"
        await self._quietly_disconnect()
        return probe

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "connected": self.connected}

    async def close(self) -> None:
        self.connected = False
        await self._quietly_disconnect()
