"""Helpers for testing rules and sinks without sockets or sleeps (like ``structlog.testing``).

    from bot.testing import chat, gift, run_events
    actions = run_events([chat(0, "hi", "ana"), gift(1000, "Rose", 1, user="ana")], "rules/")
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from bot.actions.model import Action
from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules, load_rules_text
from bot.engine.rules import RuleSet
from bot.events.model import Event, User

FakeClock = VirtualClock

__all__ = ["CaptureSink", "FakeClock", "ScriptSource", "chat", "event", "gift", "run_events", "run_file", "ruleset",
           "user"]


class ScriptSource:
    """A live source a test drives: events it ``put``s are stamped with the runner's clock, as a
    real source stamps them. ``ready`` is set once the runner started it; it ends at ``done``."""

    name = "script"

    def __init__(self) -> None:
        import asyncio

        self.queue = None
        self.clock = None
        self.ready = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self, queue, clock, stop) -> None:  # type: ignore[no-untyped-def]
        self.queue, self.clock = queue, clock
        self.ready.set()
        await self.done.wait()

    def put(self, ev: Event) -> None:
        from bot.sources.queue import stamp

        ev.received = None
        stamp(self.queue, self.clock, ev)  # type: ignore[arg-type]


class CaptureSink:
    """A sink that keeps every action it is sent, in order."""

    name = "capture"

    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.closed = False

    async def send(self, actions: Sequence[Action]) -> None:
        self.actions.extend(actions)

    async def close(self) -> None:
        self.closed = True


def ruleset(rules: RuleSet | str | Path) -> RuleSet:
    """A RuleSet from a RuleSet, a path, or YAML text (anything containing a newline)."""
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str) and "\n" in rules:
        return load_rules_text(rules)
    return load_rules(rules)


def run_events(events: Iterable[Event], rules: RuleSet | str | Path, *, streak_silence_ms: int = 5000,
               until: int | None = None, engine: Engine | None = None) -> list[Action]:
    """Feed events through the engine on virtual time; return every action, as replay would.

    ``until`` advances the clock after the last event (to let timers and flushes fire).
    """
    engine = engine or Engine(ruleset(rules), streak_silence_ms=streak_silence_ms)
    clock = VirtualClock()
    out: list[Action] = []
    for ev in events:
        out.extend(engine.feed(ev, clock.set(ev.ts if ev.received is None else ev.received)))
    if until is not None:
        out.extend(engine.advance(clock.set(until)))
    out.extend(engine.close())
    return out


def run_file(path: str | Path, rules: RuleSet | str | Path, **kwargs) -> list[Action]:
    """``run_events`` over a session file."""
    from bot.sources.replay import ReplaySource

    return run_events(ReplaySource(path).events(), rules, **kwargs)


def user(name: str, **fields) -> User:
    """A viewer whose id, handle and nickname derive from ``name`` unless given."""
    fields.setdefault("user_id", f"id-{name}")
    fields.setdefault("unique_id", name)
    fields.setdefault("nickname", name)
    return User(**fields)


_msg_ids = iter(range(1, 1 << 62))


def event(type_: str, ts: int, who: str | User | None = None, msg_id: str | None = None, **data) -> Event:
    """Any event; ``who`` is a name (see ``user``) or a User; ``msg_id`` is made unique unless given."""
    u = user(who) if isinstance(who, str) else who
    return Event(type=type_, ts=ts, msg_id=msg_id if msg_id is not None else f"m{next(_msg_ids)}", user=u, data=data)


def chat(ts: int, text: str, who: str | User = "viewer", **kwargs) -> Event:
    return event("chat", ts, who, text=text, **kwargs)


def gift(ts: int, name: str, diamonds: int, count: int = 1, who: str | User = "viewer", *, gift_id: int = 1,
         gift_type: int = 2, streak_end: bool = False, msg_id: str | None = None) -> Event:
    """A gift frame: ``gift_type=1`` makes it streakable (then ``streak_end`` marks the last frame)."""
    return event("gift", ts, who, msg_id=msg_id, gift_id=gift_id, name=name, diamonds=diamonds, count=count,
                 gift_type=gift_type, streak_end=streak_end)
