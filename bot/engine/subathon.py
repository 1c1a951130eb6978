"""The countdown (subathon) timer: it starts with the stream, gifts, follows, shares and
subscriptions add time, it can be paused, resumed or changed, and when it reaches zero the
engine makes a ``subathon_end`` event for rules.

Pure: every method takes ``now`` (engine ms). While running the timer holds the time it ends
(``ends``), so it keeps running while the bot is down and a restart shows the right value; a
paused timer holds the time it has left (``left``).

Configured in the rule pack's ``settings:``::

    settings:
      subathon:
        start: 1h          # on the clock when the stream starts
        max: 12h           # never more than this left (optional)
        add:
          follow: 30s
          share: 10s
          subscribe: 5m
          diamond: 2s      # per diamond of a gift
          gifts: { Rose: 10s }   # per unit of these gifts, instead of the per-diamond time

Pause, resume and add are ``subathon_control`` events (``data.op``: pause | resume | add,
``data.ms`` for add, negative to take time off): the daemon's ``POST /subathon/pause`` (and
``resume``, ``add?ms=``) puts one into the event queue, so it is recorded and a replay of the
recording does the same; a rule's ``- subathon: pause`` action does it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.events.model import FOLLOW, GIFT, SHARE, SUBSCRIBE, Event
from bot.engine.goals import event_int as _int

ADD_KEYS = ("follow", "share", "subscribe", "diamond", "gifts")
SUBATHON_KEYS = ("start", "max", "add")
OPS = ("pause", "resume", "add")


@dataclass(slots=True)
class SubathonSpec:
    start_ms: int
    max_ms: int = 0  # 0: no cap
    follow_ms: int = 0
    share_ms: int = 0
    subscribe_ms: int = 0
    diamond_ms: int = 0
    gifts_ms: dict[str, int] = field(default_factory=dict)  # gift name (lower-case) or id → ms per unit

    def amount(self, ev: Event) -> int:
        """How much ``ev`` adds (ms)."""
        kind = ev.type
        if kind == FOLLOW:
            return self.follow_ms
        if kind == SHARE:
            return self.share_ms
        if kind == SUBSCRIBE:
            return self.subscribe_ms
        if kind != GIFT:
            return 0
        count = max(_int(ev.data.get("count", 1)), 0)
        if self.gifts_ms:
            per = self.gifts_ms.get(str(ev.data.get("name", "")).strip().lower())
            if per is None:
                per = self.gifts_ms.get(str(ev.data.get("gift_id", "")))
            if per is not None:
                return per * count
        return self.diamond_ms * max(_int(ev.data.get("diamonds", 0)), 0) * count


class Subathon:
    def __init__(self, spec: SubathonSpec) -> None:
        self.spec = spec
        self.started = False
        self.paused = False
        self.ended = False
        self.ends = 0  # running: when it reaches zero (engine ms)
        self.left = 0  # paused: what it has left (ms)
        self.added = 0  # ms added this stream (events and controls)

    def remaining(self, now: int) -> int:
        if not self.started:
            return self.spec.start_ms
        if self.ended:
            return 0
        return self.left if self.paused else max(0, self.ends - now)

    def start(self, now: int) -> None:
        self.started = True
        self.ends = now + self.spec.start_ms

    def add(self, ms: int, now: int) -> int:
        """Add ``ms`` (may be negative); what was actually added after the cap and zero."""
        if not self.started or self.ended or not ms:
            return 0
        before = self.remaining(now)
        after = max(0, before + ms)
        if self.spec.max_ms:
            after = min(after, max(before, self.spec.max_ms))  # the cap stops additions, never takes time off
        if self.paused:
            self.left = after
        else:
            self.ends = now + after
        self.added += after - before
        return after - before

    def pause(self, now: int) -> bool:
        if not self.started or self.ended or self.paused:
            return False
        self.left = self.remaining(now)
        self.paused = True
        return True

    def resume(self, now: int) -> bool:
        if not self.started or self.ended or not self.paused:
            return False
        self.ends = now + self.left
        self.paused = False
        return True

    def next_due(self) -> int | None:
        return self.ends if self.started and not self.paused and not self.ended else None

    def view(self, now: int) -> dict[str, Any]:
        return {"remaining_ms": self.remaining(now), "paused": self.paused, "ended": self.ended,
                "added_ms": self.added}

    # -- a restart -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"started": self.started, "paused": self.paused, "ended": self.ended, "ends": self.ends,
                "left": self.left, "added": self.added}

    def restore(self, data: dict[str, Any]) -> None:
        self.started, self.paused, self.ended = bool(data["started"]), bool(data["paused"]), bool(data["ended"])
        self.ends, self.left, self.added = int(data["ends"]), int(data["left"]), int(data["added"])


def clock_text(ms: int) -> str:
    """``3723000`` → ``1:02:03``; under an hour ``12:05``."""
    s = max(0, ms) // 1000
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def parse_subathon(loader: Any, raw: Any, pos: Any) -> SubathonSpec | None:
    """``settings: subathon:`` → a spec; problems go through the rule loader (``file:line:col``)."""
    from bot.engine.yamlfile import YMap

    if not isinstance(raw, YMap):
        loader._problem(pos, "'subathon' is a mapping: start, max, add")
        return None
    before = len(loader.problems)
    loader._keys(raw, SUBATHON_KEYS, "subathon key")
    if "start" not in raw:
        loader._problem(raw.pos, "'subathon' needs 'start': the time on the clock when the stream starts, e.g. 1h")
        return None
    spec = SubathonSpec(start_ms=loader._duration(raw, "start", None) or 0)
    if "max" in raw:
        spec.max_ms = loader._duration(raw, "max", None) or 0
    add = raw.get("add")
    if isinstance(add, YMap):
        loader._keys(add, ADD_KEYS, "subathon add key")
        for key in ("follow", "share", "subscribe", "diamond"):
            if key in add:
                setattr(spec, f"{key}_ms", loader._duration(add, key, None) or 0)
        gifts = add.get("gifts")
        if isinstance(gifts, YMap):
            for name in gifts:
                ms = loader._duration(gifts, name, None)
                if ms is not None:
                    spec.gifts_ms[str(name).strip().lower()] = ms
        elif gifts is not None:
            loader._problem(add.value_pos["gifts"], "'gifts' maps a gift's name (or id) to the time each one adds")
    elif add is not None:
        loader._problem(raw.value_pos["add"], "'add' is a mapping: follow, share, subscribe, diamond, gifts")
    return None if len(loader.problems) > before else spec


def parse_subathon_action(loader: Any, value: Any, pos: Any, rid: str | None) -> Any:
    """A rule's ``- subathon: pause``, ``- subathon: resume``, ``- subathon: {add: 5m}`` or
    ``- subathon: {remove: 5m}`` → an ActionSpec (kind ``subathon``, ``options`` op and ms)."""
    from bot.engine.rules import ActionSpec
    from bot.engine.templates import Text
    from bot.engine.yamlfile import YMap

    usage = "'subathon' is pause, resume, {add: 5m} or {remove: 5m}"
    loader.__dict__.setdefault("_subathon_uses", []).append((pos, rid))  # needs settings: subathon (finish)
    if value in ("pause", "resume"):
        return ActionSpec(kind="subathon", text=Text(""), options={"op": value, "ms": 0})
    if isinstance(value, YMap) and len(value) == 1 and next(iter(value)) in ("add", "remove"):
        key = next(iter(value))
        ms = loader._duration(value, key, rid)
        if ms is None:
            return None
        return ActionSpec(kind="subathon", text=Text(""), options={"op": "add", "ms": ms if key == "add" else -ms})
    loader._problem(pos, usage, rid)
    return None
