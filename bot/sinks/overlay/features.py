"""What the overlay shows of goals and the subathon timer (``goal`` and ``timer`` actions from
``bot.engine.features``): kept here so a page that (re)connects gets the bars and the clock.

Messages::

    {"t": "goal", "id", "title", "progress", "target", "step", "steps", "done", "reached"}
    {"t": "timer", "remaining_ms", "paused", "ended"}
    {"t": "credits", "title", "sections": [{"title", "names": [...]}]}    the end-of-stream roll

``highlight`` actions (a first-time chatter, ``bot/engine/credits.py``) are alerts with their own look.

Every field is plain data: text as text, numbers as numbers (anything else becomes 0 or ""); the
page shows them with ``textContent`` only.
"""

from __future__ import annotations

from typing import Any, Callable

from bot.actions.model import Action

FEATURE_KINDS = frozenset({"goal", "timer", "credits", "sound"})
ALERT_LIKE_KINDS = frozenset({"highlight", "giveaway", "giveaway_result", "perk"})  # shown as alerts (kind-...)
MAX_SECTIONS, MAX_NAMES = 8, 200
MAX_GOALS = 20  # a rule emitting 'goal' actions with ever new ids cannot grow the page without bound


def _num(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return int(max(min(value, 2**53 - 1), -(2**53 - 1)))


class FeatureView:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        # Where the state comes from when nothing was shown yet (the daemon: the engine's current
        # goals and timer, so a restarted bot's page shows them at once): a list of actions.
        self.fallback: Callable[[], list[Action]] | None = None
        self.goals: dict[str, dict[str, Any]] = {}
        self.timer: dict[str, Any] | None = None
        self._timer_at = 0.0

    def apply(self, action: Action) -> dict[str, Any] | None:
        d = action.data
        if action.kind == "sound":  # (checked and limited by the sink first: sounds.py)
            from bot.sinks.overlay.sounds import sound_message

            return sound_message(action)
        if action.kind == "credits":
            sections = []
            for sec in (d.get("sections") if isinstance(d.get("sections"), list) else [])[:MAX_SECTIONS]:
                if isinstance(sec, dict) and isinstance(sec.get("names"), list):
                    sections.append({"title": str(sec.get("title", ""))[:80],
                                     "names": [str(n)[:80] for n in sec["names"][:MAX_NAMES]]})
            return {"t": "credits", "title": action.text, "sections": sections}
        if action.kind == "goal":
            gid = str(d.get("id", ""))[:64]
            if not gid or (gid not in self.goals and len(self.goals) >= MAX_GOALS):
                return None
            target = d.get("target")
            reached = d.get("reached")
            msg = {"t": "goal", "id": gid, "title": str(d.get("title", gid)), "progress": _num(d.get("progress")),
                   "target": None if target is None else _num(target), "step": _num(d.get("step")),
                   "steps": _num(d.get("steps")), "done": d.get("done") is True,
                   "reached": None if reached is None else _num(reached)}
            self.goals[gid] = {**msg, "reached": None}  # (a reconnecting page shows the bar, not the flash)
            return msg
        self.timer = {"t": "timer", "remaining_ms": max(0, _num(d.get("remaining_ms"))),
                      "paused": d.get("paused") is True, "ended": d.get("ended") is True}
        self._timer_at = self.clock()
        return self.timer

    def snapshot(self) -> dict[str, Any]:
        if self.fallback is not None and not self.goals and self.timer is None:
            for action in self.fallback():
                self.apply(action)
        timer = self.timer
        if timer is not None and not timer["paused"] and not timer["ended"]:
            gone = int((self.clock() - self._timer_at) * 1000)
            timer = {**timer, "remaining_ms": max(0, timer["remaining_ms"] - gone)}
        return {"goals": list(self.goals.values()), "timer": timer}
