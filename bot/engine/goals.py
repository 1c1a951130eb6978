"""Goals: likes, follows, shares, subscribers, diamonds or one gift by name, counted per stream or
over every stream (lifetime), with stepped targets (the next one once one is reached).

Pure and synchronous like the rest of the engine: ``Goals.count(event)`` says which goals moved
and which targets were crossed; the engine (``bot.engine.features``) turns that into ``goal``
actions for the overlay and ``goal_reached`` events for rules.

Configured in the rule pack's ``settings:`` (so a replay and ``livebot test`` see them)::

    settings:
      goals:
        - id: likes                   # a name: letters, digits, '_', '-'
          type: likes                 # likes | follows | shares | subscribers | diamonds | gift
          title: "Like goal"          # shown on the overlay (default: the id)
          steps: [1000, 5000, 10000]  # targets, reached one after another
          then: 10000                 # optional: after the last step, a new target every 10,000 more
          scope: stream               # stream (default) | lifetime (over every stream, with the state)
        - {id: roses, type: gift, gift: Rose, steps: [100]}   # one gift by name (or by id: gift: 5655)
        - {id: live-goal, type: tiktok, title: "LIVE Goal"}   # TikTok's own LIVE Goal (goal_update
          # events: its progress and target as TikTok counts them; 'gift:' picks one goal_id; 'steps' optional)

A lifetime goal's count from earlier streams is kept with the lifetime totals (the state
database's ``lifetime`` table, or ``replay --state``), under the key ``LIFETIME_KEY``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.events.model import FOLLOW, GIFT, LIKE, SHARE, SUBSCRIBE, Event

GOAL_TYPES = ("likes", "follows", "shares", "subscribers", "diamonds", "gift", "tiktok")
GOAL_UPDATE = "goal_update"  # TikTok's own LIVE Goal progress (issue 13's decoder; EVENTS-SPEC)
COUNTS = {"likes": LIKE, "follows": FOLLOW, "shares": SHARE, "subscribers": SUBSCRIBE, "diamonds": GIFT,
          "gift": GIFT, "tiktok": GOAL_UPDATE}  # the event type each goal type counts
SCOPES = ("stream", "lifetime")
GOAL_KEYS = ("id", "type", "title", "steps", "then", "scope", "gift")
LIFETIME_KEY = "@livebot:goals"  # a row of the lifetime totals that is not a viewer
MAX_STEPS = 100
MAX_REACHED_PER_EVENT = 20  # a repeating goal crossed many times by one huge gift: this many events at most
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_BIG = 2**53 - 1


@dataclass(frozen=True, slots=True)
class GoalSpec:
    id: str
    type: str
    steps: tuple[int, ...]
    title: str = ""
    then: int = 0
    scope: str = "stream"
    gift: str = ""  # type gift: the gift's name (lower-case) or its id as text

    def target(self, value: int) -> int | None:
        """The target after ``value``: the first step above it; past the last, the next ``then``
        multiple; None when every step is reached and there is no ``then``."""
        for step in self.steps:
            if step > value:
                return step
        if not self.then or not self.steps:
            return None
        last = self.steps[-1]
        return last + ((value - last) // self.then + 1) * self.then

    def crossed(self, before: int, after: int) -> list[int]:
        """Targets reached by going from ``before`` to ``after``, lowest first."""
        out = []
        target = self.target(before)
        while target is not None and target <= after and len(out) < MAX_REACHED_PER_EVENT:
            out.append(target)
            target = self.target(target)
        return out

    def step_of(self, value: int) -> int:
        """How many targets ``value`` has reached."""
        done = sum(1 for s in self.steps if s <= value)
        if done == len(self.steps) and self.then and self.steps:
            done += (value - self.steps[-1]) // self.then
        return done

    def amount(self, ev: Event) -> int:
        """How much ``ev`` adds to this goal."""
        t = self.type
        kind = ev.type
        if t == "likes":
            return _int(ev.data.get("count", 0)) if kind == LIKE else 0
        if t == "follows":
            return 1 if kind == FOLLOW else 0
        if t == "shares":
            return 1 if kind == SHARE else 0
        if t == "subscribers":
            return 1 if kind == SUBSCRIBE else 0
        if kind != GIFT:
            return 0
        count = max(_int(ev.data.get("count", 1)), 0)
        if t == "diamonds":
            return max(_int(ev.data.get("diamonds", 0)), 0) * count
        name = str(ev.data.get("name", "")).strip().lower()
        return count if self.gift in (name, str(ev.data.get("gift_id", ""))) else 0


def event_int(value: Any) -> int:
    """A whole number from an event's data (goals, points, the subathon timer): 0 when it is not one
    or is beyond what JSON keeps exact."""
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return n if -_BIG <= n <= _BIG else 0


_int = event_int


@dataclass
class Goals:
    """The goals' counts. ``stream`` is this stream's count; ``base`` what lifetime goals had
    before it (from the lifetime totals)."""

    specs: list[GoalSpec]
    base: dict[str, int] = field(default_factory=dict)
    stream: dict[str, int] = field(default_factory=dict)
    _index: tuple[Any, dict[str, list[GoalSpec]]] = (None, {})  # (the specs it was built for, by event type)
    tiktok_target: dict[str, int] = field(default_factory=dict)  # type tiktok: TikTok's own target

    def value(self, spec: GoalSpec) -> int:
        own = self.stream.get(spec.id, 0)
        return own + self.base.get(spec.id, 0) if spec.scope == "lifetime" else own

    def count(self, ev: Event) -> list[tuple[GoalSpec, int, int, list[int]]]:
        """Add ``ev`` to every goal it counts for: ``(goal, before, after, targets crossed)`` each."""
        specs, index = self._index
        if specs is not self.specs:  # (new specs: a rules reload)
            index = {}
            for spec in self.specs:
                index.setdefault(COUNTS[spec.type], []).append(spec)
            self._index = (self.specs, index)
        out = []
        for spec in index.get(ev.type, ()):
            if spec.type == "tiktok":  # TikTok's LIVE Goal: its progress as TikTok counts it, not added up
                if spec.gift and spec.gift != str(ev.data.get("goal_id", "")):
                    continue
                before = self.value(spec)
                after = max(_int(ev.data.get("progress", 0)), 0)
                target = max(_int(ev.data.get("target", 0)), 0)
                self.stream[spec.id] = after
                if not spec.steps:
                    self.tiktok_target[spec.id] = target
                crossed = spec.crossed(before, after) if spec.steps else (
                    [target] if target and before < target <= after else [])
                out.append((spec, before, after, crossed))
                continue
            n = spec.amount(ev)
            if n <= 0:
                continue
            before = self.value(spec)
            self.stream[spec.id] = self.stream.get(spec.id, 0) + n
            after = self.value(spec)
            out.append((spec, before, after, spec.crossed(before, after)))
        return out

    def view(self, spec: GoalSpec) -> dict[str, Any]:
        """A goal as the overlay and templates see it."""
        value = self.value(spec)
        target = spec.target(value)
        if spec.type == "tiktok" and not spec.steps:  # TikTok's own target: done once reached
            own = self.tiktok_target.get(spec.id)
            target = own if own and value < own else None
        return {"id": spec.id, "title": spec.title or spec.id, "type": spec.type, "scope": spec.scope,
                "progress": value, "target": target, "step": spec.step_of(value), "steps": len(spec.steps),
                "done": target is None}

    def lifetime(self) -> dict[str, int]:
        """The lifetime goals' counts to keep for the next stream (others start again at 0)."""
        out = {k: v for k, v in self.base.items()}
        for spec in self.specs:
            if spec.scope == "lifetime":
                out[spec.id] = self.value(spec)
        return out


# -- reading the settings --------------------------------------------------------------------------

def parse_goals(loader: Any, raw: Any, pos: Any) -> list[GoalSpec]:
    """``settings: goals:`` → specs; problems are reported through the rule loader (``file:line:col``)."""
    from bot.engine.yamlfile import YList, YMap, did_you_mean

    if not isinstance(raw, YList):
        loader._problem(pos, "'goals' is a list of goals: {id, type, steps, ...}")
        return []
    out: list[GoalSpec] = []
    seen: set[str] = set()
    for item, ipos in zip(raw, raw.item_pos):
        if not isinstance(item, YMap):
            loader._problem(ipos, "a goal is a mapping: id, type, steps (and title, then, scope, gift)")
            continue
        before = len(loader.problems)
        loader._keys(item, GOAL_KEYS, "goal key")

        def bad(key: str, message: str) -> None:
            loader._problem(item.value_pos.get(key, item.pos), message)

        gid = item.get("id")
        if not isinstance(gid, str) or not _ID.match(gid):
            bad("id", "a goal needs an 'id': up to 40 letters, digits, '_' or '-'")
        elif gid in seen:
            bad("id", f"duplicate goal id '{gid}'")
        else:
            seen.add(gid)
        kind = item.get("type")
        if kind not in GOAL_TYPES:
            bad("type", f"a goal's 'type' is one of {', '.join(GOAL_TYPES)}"
                + (did_you_mean(kind, GOAL_TYPES) if isinstance(kind, str) else ""))
        steps = item.get("steps")
        if isinstance(steps, (int, float)) and not isinstance(steps, bool):
            steps = [steps]
        if kind == "tiktok" and steps is None:
            steps = []  # TikTok's own target
        elif (not isinstance(steps, list) or not steps or len(steps) > MAX_STEPS
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= _BIG for s in steps)):
            bad("steps", f"'steps' is a list of 1 to {MAX_STEPS} whole numbers above 0, e.g. [1000, 5000]")
            steps = None
        elif any(b <= a for a, b in zip(steps, steps[1:])):
            bad("steps", "'steps' must go up: each target bigger than the one before")
        then = item.get("then", 0)
        if isinstance(then, bool) or not isinstance(then, int) or not 0 <= then <= _BIG:
            bad("then", "'then' is a whole number: after the last step, a new target every this much more")
            then = 0
        scope = item.get("scope", "stream")
        if scope not in SCOPES:
            bad("scope", "'scope' is 'stream' (counted again each stream) or 'lifetime' (over every stream)")
        gift = item.get("gift")
        if kind == "tiktok":  # 'gift' names which of TikTok's goals (its goal_id); none: any
            if gift is not None and (isinstance(gift, bool) or not isinstance(gift, (str, int))):
                bad("gift", "for a goal of type 'tiktok', 'gift' is TikTok's goal id (optional)")
            if scope == "lifetime":
                bad("scope", "TikTok's own goal is counted by TikTok: 'scope: lifetime' does not apply")
        elif kind == "gift":
            if isinstance(gift, bool) or not isinstance(gift, (str, int)) or not str(gift).strip():
                bad("gift" if "gift" in item else "type", "a goal of type 'gift' needs 'gift': the gift's name or id")
        elif gift is not None:
            bad("gift", "'gift' goes with 'type: gift'")
        title = item.get("title", "")
        if not isinstance(title, (str, int, float)) or isinstance(title, bool):
            bad("title", "'title' must be text")
            title = ""
        if len(loader.problems) > before:
            continue
        out.append(GoalSpec(id=gid, type=kind, steps=tuple(steps), title=str(title), then=then, scope=scope,
                            gift=str(gift).strip().lower() if kind == "gift" else
                            str(gift).strip() if kind == "tiktok" and gift is not None else ""))
    return out
