"""Loyalty points: earned from gifts, likes, chat, follows, shares, subscriptions and watch time,
kept over every stream, shown by rank, spent on perks.

Configured in the rule pack's ``settings:``::

    settings:
      points:
        diamond: 1          # points per diamond gifted
        like: 0.1           # per like
        chat: 2             # per chat line, at most once per chat_gap
        chat_gap: 30s
        follow: 50
        share: 10
        subscribe: 200
        watch: 5            # per watch_every in which the viewer was there (did anything: TikTok does not
        watch_every: 10m    #  say when someone leaves, so a silent viewer earns nothing)
        ranks: { Newcomer: 0, Regular: 500, Legend: 5000 }
        perks:
          - { name: shoutout, cost: 500 }
          - { name: song request, cost: 1500 }

Rules read ``points`` (``points.balance`` and ``points.rank`` of the event's viewer,
``points.top`` — ``[{rank, nickname, unique_id, points}]`` — and ``points.top_text``,
``points.perks`` and ``points.perks_text``) and spend them with ``- redeem: "{{ args | join(' ') }}"``: a perk by name,
if the viewer has the points — a ``perk`` action for the creator to fulfil (``data``: perk, cost,
balance, user key) and a chat line saying so, or a chat line saying why not. A perk can be given
back (``points_control`` events: the daemon's ``POST /points/adjust``). Points are whole numbers
when shown; fractions (a tenth of a point a like) add up.

Balances persist with the lifetime totals (the row ``LIFETIME_KEY``: viewer key → [points,
unique_id, nickname]); this stream's earnings and spendings are in the engine snapshot.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from bot.actions.model import Action
from bot.events.model import CHAT, FOLLOW, GIFT, LIKE, SHARE, SUBSCRIBE, Event
from bot.engine.goals import event_int as _int

LIFETIME_KEY = "@livebot:points"
RATE_KEYS = ("diamond", "like", "chat", "follow", "share", "subscribe", "watch")
POINTS_KEYS = RATE_KEYS + ("chat_gap", "watch_every", "ranks", "perks")
MAX_PERKS = 50


@dataclass
class PointsSpec:
    rates: dict[str, float] = field(default_factory=dict)
    chat_gap_ms: int = 0
    watch_every_ms: int = 600_000
    ranks: list[tuple[float, str]] = field(default_factory=list)  # (min, name), ascending
    perks: dict[str, tuple[str, int]] = field(default_factory=dict)  # lower-case name → (name, cost)


class Points:
    def __init__(self, spec: PointsSpec, lifetime_row: Any = None) -> None:
        self.spec = spec
        self.base: dict[str, float] = {}
        self.names: dict[str, tuple[str, str]] = {}  # key → (unique_id, nickname)
        if isinstance(lifetime_row, dict):
            for key, value in lifetime_row.items():
                if isinstance(value, list) and len(value) == 3 and isinstance(value[0], (int, float)):
                    self.base[str(key)] = float(value[0])
                    self.names[str(key)] = (str(value[1]), str(value[2]))
        self.stream: dict[str, float] = {}  # earned (and spent) this stream
        self._last_chat: dict[str, int] = {}
        self._window: dict[str, int] = {}  # key → the last watch window credited
        self.start: int | None = None

    def balance(self, key: str) -> int:
        return math.floor(self.base.get(key, 0.0) + self.stream.get(key, 0.0) + 1e-9)

    def rank(self, key: str) -> str:
        points = self.balance(key)
        name = ""
        for low, rank in self.spec.ranks:
            if points >= low:
                name = rank
        return name

    def _add(self, key: str, n: float) -> None:
        if n:
            self.stream[key] = self.stream.get(key, 0.0) + n

    def on_event(self, ev: Event, now: int) -> None:
        if self.start is None:
            self.start = now
        u = ev.user
        if u is None:
            return
        key = u.key
        self.names[key] = (u.unique_id, u.nickname)
        r = self.spec.rates
        kind = ev.type
        if kind == GIFT:
            self._add(key, r.get("diamond", 0) * max(_int(ev.data.get("diamonds", 0)), 0)
                      * max(_int(ev.data.get("count", 1)), 0))
        elif kind == LIKE:
            self._add(key, r.get("like", 0) * max(_int(ev.data.get("count", 0)), 0))
        elif kind == CHAT and r.get("chat"):
            last = self._last_chat.get(key)
            if last is None or now - last >= self.spec.chat_gap_ms:
                self._last_chat[key] = now
                self._add(key, r["chat"])
        elif kind == FOLLOW:
            self._add(key, r.get("follow", 0))
        elif kind == SHARE:
            self._add(key, r.get("share", 0))
        elif kind == SUBSCRIBE:
            self._add(key, r.get("subscribe", 0))
        if r.get("watch") and self.spec.watch_every_ms:
            window = (now - self.start) // self.spec.watch_every_ms
            if self._window.get(key, -1) < window:
                self._window[key] = window
                self._add(key, r["watch"])

    def adjust(self, key: str, amount: int) -> None:
        self._add(key, amount)

    def redeem(self, key: str, who: tuple[str, str], asked: str, now: int, rule: str, event_id: str | None
               ) -> list[Action]:
        """Spend points on a perk: a ``perk`` action and a chat line, or a chat line saying why not."""
        nickname = who[1] or who[0]
        perks = self.spec.perks
        found = perks.get(asked.strip().lower())
        if found is None:  # what they typed is not repeated: the bot never says a viewer's free text
            names = ", ".join(f"{n} ({c:,})" for n, c in perks.values()) or "none"
            return [Action(now, "say", f"@{nickname} no such perk. Perks: {names}", rule,
                           who[0], event_id, {"perk": None})]
        name, cost = found
        have = self.balance(key)
        if have < cost:
            return [Action(now, "say", f"@{nickname} {name} costs {cost:,} points; you have {have:,}.", rule, who[0],
                           event_id, {"perk": name, "cost": cost, "balance": have, "refused": True})]
        self._add(key, -cost)
        left = self.balance(key)
        data = {"perk": name, "cost": cost, "balance": left, "user_key": key}
        return [Action(now, "perk", f"{nickname} redeemed {name} ({cost:,} points)", rule, who[0], event_id, data),
                Action(now, "say", f"@{nickname} redeemed {name} for {cost:,} points ({left:,} left)!", rule, who[0],
                       event_id, dict(data))]

    # -- views, lifetime, snapshots, CSV ------------------------------------------------------------

    def table(self) -> list[dict[str, Any]]:
        """Every viewer with points, most first (ties by name)."""
        keys = set(self.base) | set(self.stream)
        rows = [{"user_key": k, "unique_id": self.names.get(k, ("", ""))[0], "nickname": self.names.get(k, ("", ""))[1],
                 "points": self.balance(k), "rank": self.rank(k)} for k in keys]
        rows.sort(key=lambda r: (-r["points"], r["unique_id"], r["user_key"]))
        return rows

    def view(self, key: str | None) -> dict[str, Any]:
        top = [{"rank": i, "nickname": r["nickname"], "unique_id": r["unique_id"], "points": r["points"]}
               for i, r in enumerate(self.table()[:10], 1)]
        return {"balance": self.balance(key) if key else 0, "rank": self.rank(key) if key else "",
                "top": top, "top_text": " · ".join(f"{t['rank']}. {t['nickname']} ({t['points']:,})" for t in top[:5]),
                "perks": [{"name": n, "cost": c} for n, c in self.spec.perks.values()],
                "perks_text": ", ".join(f"{n} ({c:,})" for n, c in self.spec.perks.values())}

    def lifetime(self) -> dict[str, list[Any]]:
        keys = set(self.base) | set(self.stream)
        return {k: [round(self.base.get(k, 0.0) + self.stream.get(k, 0.0), 3), *self.names.get(k, ("", ""))]
                for k in keys}

    def snapshot(self) -> dict[str, Any]:
        return {"stream": self.stream, "last_chat": self._last_chat, "window": self._window, "start": self.start,
                "names": {k: list(v) for k, v in self.names.items() if k in self.stream}}

    def restore(self, data: dict[str, Any]) -> None:
        self.stream = {str(k): float(v) for k, v in data["stream"].items()}
        self._last_chat = {str(k): int(v) for k, v in data["last_chat"].items()}
        self._window = {str(k): int(v) for k, v in data["window"].items()}
        self.start = None if data["start"] is None else int(data["start"])
        for k, (uid, nick) in data["names"].items():
            self.names[str(k)] = (str(uid), str(nick))


def points_csv(rows: list[dict[str, Any]]) -> str:
    """The points table as CSV. A cell that a spreadsheet would run as a formula (=, +, -, @ ...) is
    quoted with a leading apostrophe: nicknames are viewer text."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["rank", "user_key", "unique_id", "nickname", "points", "level"])

    def safe(text: str) -> str:
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    for i, r in enumerate(rows, 1):
        w.writerow([i, safe(r["user_key"]), safe(r["unique_id"]), safe(r["nickname"]), r["points"], safe(r["rank"])])
    return out.getvalue()


def parse_points(loader: Any, raw: Any, pos: Any) -> PointsSpec | None:
    from bot.engine.yamlfile import YList, YMap

    if not isinstance(raw, YMap):
        loader._problem(pos, "'points' is a mapping: diamond, like, chat, follow, share, subscribe, watch, ranks, perks")
        return None
    before = len(loader.problems)
    loader._keys(raw, POINTS_KEYS, "points key")
    spec = PointsSpec()
    for key in RATE_KEYS:
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1_000_000:
                loader._problem(raw.value_pos[key], f"'{key}' is how many points it earns: a number from 0")
            else:
                spec.rates[key] = float(v)
    if "chat_gap" in raw:
        spec.chat_gap_ms = loader._duration(raw, "chat_gap", None) or 0
    if "watch_every" in raw:
        spec.watch_every_ms = loader._duration(raw, "watch_every", None) or 0
        if spec.watch_every_ms < 60_000:
            loader._problem(raw.value_pos["watch_every"], "'watch_every' must be at least 1m")
    ranks = raw.get("ranks")
    if isinstance(ranks, YMap):
        for name, low in ranks.items():
            if isinstance(low, bool) or not isinstance(low, (int, float)) or low < 0:
                loader._problem(ranks.value_pos[name], f"rank '{name}' needs the points it starts at: a number")
            else:
                spec.ranks.append((float(low), str(name)))
        spec.ranks.sort()
    elif ranks is not None:
        loader._problem(raw.value_pos["ranks"], "'ranks' maps a rank's name to the points it starts at")
    perks = raw.get("perks")
    if isinstance(perks, YList) and len(perks) <= MAX_PERKS:
        for item, ipos in zip(perks, perks.item_pos):
            name, cost = (item.get("name"), item.get("cost")) if isinstance(item, YMap) else (None, None)
            if isinstance(item, YMap):
                loader._keys(item, ("name", "cost"), "perk key")
            if (not isinstance(name, str) or not name.strip() or isinstance(cost, bool) or not isinstance(cost, int)
                    or cost < 1):
                loader._problem(ipos, "a perk is {name: text, cost: whole number of points, at least 1}")
            elif name.strip().lower() in spec.perks:
                loader._problem(ipos, f"two perks called '{name.strip()}'")
            else:
                spec.perks[name.strip().lower()] = (name.strip(), cost)
    elif perks is not None:
        loader._problem(raw.value_pos["perks"], f"'perks' is a list of up to {MAX_PERKS} {{name, cost}}")
    return None if len(loader.problems) > before else spec
