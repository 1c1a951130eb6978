"""The sink protocol: anything that takes actions somewhere.

Two optional class attributes say which actions a sink gets; the dispatchers read them once per
sink and filter there (``accepts``), so no sink drops kinds itself and nothing decides by a sink's
name:

- ``kinds``: the action kinds the sink shows (a frozenset), or None for every kind; ``hidden_kinds``
  (a frozenset): kinds it never shows even then (the console leaves out the overlay's vote counts).
- ``live_only``: True for a sink whose actions only make sense live (the console, the overlay, the
  chat): ``livebot resend`` does not send its dead letters, and a clean stop keeps what it had
  queued for the restart instead. ``live_only_why`` says why, for resend's summary.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from bot.actions.model import Action


class Sink(Protocol):
    """A destination for actions. ``send`` gets actions in order, in batches; ``close`` flushes."""

    name: str

    async def send(self, actions: Sequence[Action]) -> None: ...

    async def close(self) -> None: ...


def accepts(sink: object) -> Callable[[Action], bool] | None:
    """The test an action must pass to reach ``sink`` (from its ``kinds`` / ``hidden_kinds``), or
    None when the sink takes every action."""
    kinds = getattr(sink, "kinds", None)
    hidden = getattr(sink, "hidden_kinds", None) or frozenset()
    if kinds is None and not hidden:
        return None
    if kinds is None:
        return lambda a: a.kind not in hidden
    shown = frozenset(kinds) - frozenset(hidden)
    return lambda a: a.kind in shown


def is_live_only(sink: object) -> bool:
    """Whether ``sink`` (an instance or a class) only makes sense live (its ``live_only``)."""
    return getattr(sink, "live_only", False) is True
