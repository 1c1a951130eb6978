"""Battles and envelopes for ``livebot report``: what each battle ended as, and the diamonds our
room received while it ran; how many envelopes (treasure chests) dropped, worth how much.

A battle runs from its ``battle_start`` to its ``battle_end`` (matched by ``battle_id``; an update
or end without one, as Euler v1's armies messages come, belongs to the battle running, or within a
minute after one ended to that one, and a message of a battle that has ended starts nothing). A
gift counts for every battle open when the report counts it: as everywhere in the report, a gift
streak counts once, when it ends (or is flushed). A battle we only saw part of is still counted:
one whose start came before the recording began opens at its first update (``seen_start`` false),
and one whose end never came is ``unfinished`` (not won, lost or a draw). The winner is the end's
``winner`` ("us", "them" or "draw"); when a source gave none, the final scores decide. Kept per
battle: one small row (a session has a few dozen battles at most; more than ``MAX_BATTLES`` are
added up but not listed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

BATTLE_START, BATTLE_UPDATE, BATTLE_END, BATTLE_ARMIES = "battle_start", "battle_update", "battle_end", "battle_armies"
ENVELOPE = "envelope"
KINDS = frozenset({BATTLE_START, BATTLE_UPDATE, BATTLE_END, BATTLE_ARMIES, ENVELOPE})
OUTCOMES = ("us", "them", "draw")
MAX_BATTLES = 1_000  # rows kept for the tables; the counts go on beyond
LATE_MS = 60_000  # a message without a battle id this soon after a battle ended is that battle's


@dataclass(slots=True)
class Battle:
    battle_id: str
    started: int  # the clock at its start (or at the first sign of it)
    seen_start: bool = True
    opponents: list[str] = field(default_factory=list)  # nicknames (else @handles) of the other side
    ended: int | None = None
    our_score: int = 0
    their_score: int = 0
    winner: str | None = None  # "us" | "them" | "draw"; None: no end seen
    mvp: str = ""  # the top contributor's nickname, when the end named one
    mvp_score: int = 0
    diamonds: int = 0  # received by our room while the battle ran
    gifts: int = 0

    @property
    def outcome(self) -> str:
        return {"us": "won", "them": "lost", "draw": "draw"}.get(self.winner or "", "unfinished")


@dataclass
class CollabStats:
    battles: list[Battle] = field(default_factory=list)  # in the order they began (the first MAX_BATTLES)
    battle_count: int = 0
    won: int = 0
    lost: int = 0
    draws: int = 0
    battle_diamonds: int = 0  # received during battles (a gift during two overlapping battles once)
    envelopes: int = 0
    envelope_coins: int = 0
    envelope_diamonds: int = 0
    _open: dict[str, Battle] = field(default_factory=dict)  # by battle_id
    _ended: deque[Battle] = field(default_factory=lambda: deque(maxlen=8))  # the last battles ended

    def add(self, kind: str, data: dict[str, Any], now: int) -> None:
        """Count one battle or envelope event (``kind`` in ``KINDS``) at clock ``now``."""
        if kind == ENVELOPE:
            self.envelopes += 1
            self.envelope_coins += _int(data.get("coins"))
            self.envelope_diamonds += _int(data.get("diamonds"))
            return
        bid = str(data.get("battle_id") or "")
        battle = self._open.get(bid)
        if battle is None and not bid and kind != BATTLE_START and self._open:
            battle = next(reversed(self._open.values()))  # no id (Euler v1's armies): the battle running
        if kind == BATTLE_START:
            if battle is not None:  # a repeated start of a running battle (a reconnect's backlog)
                _opponents(battle, data)
                return
            battle = self._begin(bid, now, True)
            _opponents(battle, data)
            return
        if battle is None:
            if self._ended_already(bid, now):
                return  # a late or repeated message of a battle that has ended (TikTok repeats the end)
            battle = self._begin(bid, now, False)
        if "our_score" in data or "their_score" in data:
            battle.our_score = _int(data.get("our_score"))
            battle.their_score = _int(data.get("their_score"))
        if kind == BATTLE_END:
            self._end(battle, data, now)

    def gift(self, diamonds: int) -> None:
        """A gift our room received (its diamonds), counted for the battles running."""
        if self._open:
            self.battle_diamonds += diamonds
            for battle in self._open.values():
                battle.diamonds += diamonds
                battle.gifts += 1

    def _ended_already(self, bid: str, now: int) -> bool:
        """A battle of this id has ended (without an id: one ended within ``LATE_MS``)."""
        if bid:
            return any(b.battle_id == bid for b in self._ended)
        return any(b.ended is not None and now - b.ended <= LATE_MS for b in self._ended)

    def _begin(self, bid: str, now: int, seen_start: bool) -> Battle:
        battle = Battle(bid, now, seen_start)
        self._open[bid] = battle
        self.battle_count += 1
        if len(self.battles) < MAX_BATTLES:
            self.battles.append(battle)
        return battle

    def _end(self, battle: Battle, data: dict[str, Any], now: int) -> None:
        self._open.pop(battle.battle_id, None)
        battle.ended = now
        self._ended.append(battle)
        winner = data.get("winner")
        if winner not in OUTCOMES:
            a, b = battle.our_score, battle.their_score
            winner = "us" if a > b else "them" if b > a else "draw"
        battle.winner = winner
        if winner == "us":
            self.won += 1
        elif winner == "them":
            self.lost += 1
        else:
            self.draws += 1
        mvp = data.get("mvp")
        if isinstance(mvp, dict):
            battle.mvp = str(mvp.get("nickname") or mvp.get("unique_id") or "")
            battle.mvp_score = _int(mvp.get("score"))

    @property
    def unfinished(self) -> int:
        return self.battle_count - self.won - self.lost - self.draws

    def battle_rows(self, session_start: int | None) -> list[dict[str, Any]]:
        """One row per battle, in the order they began (times as offsets from the session's start)."""
        start = session_start or 0
        return [{"n": i, "offset": b.started - start, "at": b.started, "seen_start": b.seen_start,
                 "opponents": ", ".join(b.opponents) or "–", "outcome": b.outcome, "our_score": b.our_score,
                 "their_score": b.their_score, "diamonds": b.diamonds, "gifts": b.gifts, "mvp": b.mvp,
                 "mvp_score": b.mvp_score} for i, b in enumerate(self.battles, 1)]


def _opponents(battle: Battle, data: dict[str, Any]) -> None:
    found = data.get("opponents")
    if isinstance(found, list):
        names = [str(o.get("nickname") or o.get("unique_id") or "") for o in found if isinstance(o, dict)]
        battle.opponents = [n for n in names if n][:8]


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def compare_rows(a: CollabStats, b: CollabStats) -> list[dict[str, Any]]:
    """Rows for ``livebot report A B`` (as ``fmt.compare_rows`` makes them), when either session
    had battles or envelopes; none otherwise."""
    from bot.report import fmt

    if not (a.battle_count or b.battle_count or a.envelopes or b.envelopes):
        return []
    rows = []
    for label, key in (("Battles", "battle_count"), ("Battles won", "won"), ("Battles lost", "lost"),
                       ("Diamonds during battles", "battle_diamonds"), ("Envelopes", "envelopes")):
        x, y = getattr(a, key), getattr(b, key)
        up = None if x == y else (y > x if key != "lost" else y < x)
        rows.append({"label": label, "a": fmt.num(x), "b": fmt.num(y), "change": fmt.change(x, y, fmt.num), "up": up})
    return rows
