"""Giveaways: a rule opens one (``- giveaway: {...}``), viewers type ``!join`` while it is open,
and when it closes the engine draws the winners — by a seeded draw that is the same in every
replay (the seed is the rule's id and the time it opened), optionally weighted by loyalty points,
with eligibility (follower, subscriber, minimum points) and earlier winners left out::

    - id: giveaway
      command: "!giveaway"
      permission: moderator
      do:
        - giveaway:
            text: "🎁 Giveaway! Type !join in the next 2 minutes"
            duration: 2m
            join: "!join"            # the line to type (case ignored)
            who: follower            # everyone | follower | subscriber (moderators always may)
            min_points: 100          # needs settings: points
            weight: points           # none (default: one chance each) | points (chances ∝ points)
            winners: 1
            exclude: stream          # earlier winners left out: stream (default) | lifetime | none
            announce: "🎉 {{ winners }} won the giveaway! ({{ entrants }} joined)"

The opening line goes out as the action's kind ``giveaway`` (the overlay shows it); at the close a
``giveaway_result`` action (``data``: ``winners`` [{unique_id, nickname}], ``entrants``,
``weighted``) for the overlay and the report, and the ``announce`` line as a ``say``. An open
giveaway survives a restart (the engine snapshot) like a poll.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from bot.actions.model import Action
from bot.engine.templates import Text

WHO = ("everyone", "follower", "subscriber")
WEIGHTS = ("none", "points")
EXCLUDE = ("stream", "lifetime", "none")
GIVEAWAY_KEYS = ("text", "duration", "join", "who", "min_points", "weight", "winners", "exclude", "announce", "data")
LIFETIME_KEY = "@livebot:giveaways"
DEFAULT_ANNOUNCE = "🎉 {{ winners }} won the giveaway! ({{ entrants }} joined)"
MAX_ENTRANTS = 100_000


@dataclass
class Giveaway:
    rule: str
    opened: int
    ends: int
    join: str
    who: str = "everyone"
    min_points: int = 0
    weight: str = "none"
    winners: int = 1
    exclude: str = "stream"
    announce: str = DEFAULT_ANNOUNCE  # template source
    entrants: dict[str, list[Any]] = field(default_factory=dict)  # key → [unique_id, nickname, is_mod, follow, sub]

    def eligible(self, user: Any) -> bool:
        if user.is_moderator or self.who == "everyone":
            return True
        if self.who == "follower":
            return user.follow_role >= 1 or user.is_subscriber
        return bool(user.is_subscriber)

    def draw(self, points: Any, excluded: set[str]) -> list[str]:
        """The winners' keys: a seeded draw without replacement (weighted by points if asked)."""
        pool = []
        for key in self.entrants:
            if key in excluded:
                continue
            have = points.balance(key) if points is not None else 0
            if have < self.min_points:
                continue
            pool.append((key, max(1, have) if self.weight == "points" else 1))
        seed = hashlib.blake2b(f"{self.rule}:{self.opened}".encode(), digest_size=8).digest()
        rng = random.Random(int.from_bytes(seed, "big"))
        chosen: list[str] = []
        while pool and len(chosen) < self.winners:
            total = sum(w for _, w in pool)
            x = rng.random() * total
            for i, (key, w) in enumerate(pool):
                x -= w
                if x < 0 or i == len(pool) - 1:
                    chosen.append(key)
                    del pool[i]
                    break
        return chosen

    def snapshot(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("rule", "opened", "ends", "join", "who", "min_points", "weight", "winners",
                                              "exclude", "announce", "entrants")}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Giveaway:
        g = cls(**{k: data[k] for k in ("rule", "opened", "ends", "join", "who", "min_points", "weight", "winners",
                                        "exclude", "announce")})
        g.opened, g.ends, g.winners, g.min_points = int(g.opened), int(g.ends), int(g.winners), int(g.min_points)
        g.entrants = {str(k): list(v) for k, v in data["entrants"].items()}
        if g.who not in WHO or g.weight not in WEIGHTS or g.exclude not in EXCLUDE:
            raise ValueError("a damaged giveaway")
        return g


class Giveaways:
    """The open giveaway (one at a time) and who won before."""

    def __init__(self, lifetime_row: Any = None) -> None:
        self.open: Giveaway | None = None
        self.won_before: set[str] = set(lifetime_row) if isinstance(lifetime_row, dict) else set()
        self.won_stream: dict[str, int] = {}  # key → times won this stream
        self.busy = 0

    def start(self, spec: Any, action: Action, now: int) -> bool:
        if self.open is not None:
            self.busy += 1
            return False
        o = spec.options
        self.open = Giveaway(action.rule, now, now + o["duration"], o["join"], o["who"], o["min_points"], o["weight"],
                             o["winners"], o["exclude"], o["announce"])
        action.data = {**action.data, "join": o["join"], "ends": now + o["duration"], "duration_ms": o["duration"]}
        return True

    def on_chat(self, ev: Any) -> None:
        g = self.open
        if g is None or ev.user is None:
            return
        if str(ev.data.get("text", "")).strip().lower() != g.join or len(g.entrants) >= MAX_ENTRANTS:
            return
        u = ev.user
        if u.key not in g.entrants and g.eligible(u):
            g.entrants[u.key] = [u.unique_id, u.nickname]

    def close(self, due: int, points: Any, out: list[Action]) -> None:
        g, self.open = self.open, None
        assert g is not None
        excluded = set() if g.exclude == "none" else set(self.won_stream)
        if g.exclude == "lifetime":
            excluded |= self.won_before
        keys = g.draw(points, excluded)
        for key in keys:
            self.won_stream[key] = self.won_stream.get(key, 0) + 1
        winners = [{"unique_id": g.entrants[k][0], "nickname": g.entrants[k][1]} for k in keys]
        names = ", ".join(w["nickname"] or w["unique_id"] for w in winners)
        data = {"winners": winners, "entrants": len(g.entrants), "weighted": g.weight == "points"}
        out.append(Action(due, "giveaway_result", names or "no winner", g.rule, None, None, data))
        try:
            text = Text(g.announce).render({"winners": names or "nobody", "entrants": len(g.entrants),
                                            "count": len(winners)})
        except Exception:  # a damaged text from an old snapshot: a plain line instead
            text = f"Giveaway winner: {names or 'nobody'}"
        out.append(Action(due, "say", text, g.rule, None, None, {"giveaway": True, "winners": winners}))

    def lifetime(self) -> dict[str, int]:
        row = dict.fromkeys(self.won_before, 1)
        for k, n in self.won_stream.items():
            row[k] = row.get(k, 0) + n
        return row

    def snapshot(self) -> dict[str, Any]:
        return {"open": self.open.snapshot() if self.open is not None else None, "won_stream": self.won_stream}

    def restore(self, data: dict[str, Any]) -> None:
        self.open = Giveaway.restore(data["open"]) if data.get("open") is not None else None
        self.won_stream = {str(k): int(v) for k, v in data["won_stream"].items()}


def parse_giveaway(loader: Any, body: Any, spec: Any, rid: str | None, needs: set[str]) -> Any:
    """``- giveaway: {...}`` → ``spec.options``; problems through the loader (``file:line:col``)."""
    before = len(loader.problems)

    def bad(key: str, message: str) -> None:
        loader._problem(body.value_pos.get(key, body.pos), message, rid)

    duration = loader._duration(body, "duration", rid) if "duration" in body else 120_000
    join = body.get("join", "!join")
    if not isinstance(join, str) or not join.strip() or len(join) > 40:
        bad("join", "'join' is the line viewers type to join, e.g. !join")
    who = body.get("who", "everyone")
    if who not in WHO:
        bad("who", "'who' is everyone, follower or subscriber")
    min_points = body.get("min_points", 0)
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 0:
        bad("min_points", "'min_points' is a whole number of points")
    weight = body.get("weight", "none")
    if weight not in WEIGHTS:
        bad("weight", "'weight' is none (one chance each) or points (chances by points)")
    winners = body.get("winners", 1)
    if isinstance(winners, bool) or not isinstance(winners, int) or not 1 <= winners <= 100:
        bad("winners", "'winners' is a whole number from 1 to 100")
    exclude = body.get("exclude", "stream")
    if exclude not in EXCLUDE:
        bad("exclude", "'exclude' is stream (this stream's winners), lifetime (every earlier winner) or none")
    announce = body.get("announce", DEFAULT_ANNOUNCE)
    if not isinstance(announce, str):
        bad("announce", "'announce' is a text")
    elif "{{" in announce or "{%" in announce:
        loader._text(announce, body.value_pos.get("announce", body.pos), rid,
                     frozenset({"winners", "entrants", "count"}), set())
    if (min_points or weight == "points") and not isinstance(min_points, bool):  # points must be configured
        what = "min_points" if min_points else "weight"
        loader.__dict__.setdefault("_points_uses", []).append((body.value_pos.get(what, body.pos), rid, what))
    if len(loader.problems) > before or duration is None:
        return None
    spec.options = {"duration": duration, "join": join.strip().lower(), "who": who, "min_points": min_points,
                    "weight": weight, "winners": winners, "exclude": exclude, "announce": announce}
    return spec
