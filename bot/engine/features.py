"""On-stream features the engine keeps beside the rules: goals (``goals.py``), the subathon timer
(``subathon.py``), first-time chatters and the credits (``credits.py``), per-gift sounds
(``sounds.py``), loyalty points (``points.py``), giveaways (``giveaways.py``) and TTS voices
(``voices.py``). One object, so the engine's hooks stay small:

    features.on_event(ev, now, out, made)   # count an event; ``made``: events for rules (goal_reached, first_chat)
    features.next_due()                      # a coalesced overlay update, the timer reaching zero, a giveaway's draw
    features.run_due(due, out, made)
    features.control(op, ms, now, out)       # pause / resume / add time to the subathon timer
    features.act(engine, action, ...)        # a rule's redeem, giveaway, voice, credits or tts action

Actions (for the overlay; the console does not print them):

- ``goal`` (rule ``goals``): ``data`` = ``{id, title, type, scope, progress, target, step, steps,
  done, reached}``; ``target`` is None once every step is reached; ``reached`` is the target
  just reached, else None. Sent when a target is reached, otherwise at most once a second per goal
  (``UPDATE_MS``: a flood of likes is one update a second, and the last count always goes out).
- ``timer`` (rule ``subathon``): ``data`` = ``{remaining_ms, paused, ended, added_ms}``; text
  ``1:02:03`` (or ``paused 1:02:03``). Sent when it starts, pauses, resumes or ends at once, and
  after additions at most once a second.

Events for rules: ``goal_reached`` (``event.goal_id``, ``title``, ``target``, ``progress``,
``step``, ``steps``, ``scope``, ``goal_type``; ``user`` is who pushed it over) and
``subathon_end``. Everything here takes ``now``: replays fire the same actions at any speed.
"""

from __future__ import annotations

from typing import Any

from bot.actions.model import Action
from bot.engine.credits import Credits
from bot.engine.giveaways import LIFETIME_KEY as GIVEAWAYS_KEY
from bot.engine.giveaways import Giveaways
from bot.engine.goals import LIFETIME_KEY, Goals, GoalSpec
from bot.engine.points import LIFETIME_KEY as POINTS_KEY
from bot.engine.points import Points
from bot.engine.sounds import gift_sound
from bot.engine.voices import LIFETIME_KEY as VOICES_KEY
from bot.engine.voices import Voices
from bot.engine.subathon import Subathon, clock_text
from bot.events.model import CHAT, FIRST_CHAT, GOAL_REACHED, POINTS_CONTROL, SUBATHON_CONTROL, SUBATHON_END, Event

UPDATE_MS = 1000
FEATURE_ACTIONS = frozenset({"redeem", "giveaway", "voice", "credits"})  # handled by ``Features.act``
_TIMER = "timer"


def _fmt(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


class Features:
    def __init__(self, settings: Any, lifetime: dict[str, Any] | None = None, state: Any = None,
                 rule_types: Any = ()) -> None:
        self._lifetime = lifetime or {}  # as the stream started: a reload that turns points or voices on reads it
        base = (lifetime or {}).get(LIFETIME_KEY) or {}
        base = {str(k): int(v) for k, v in base.items() if isinstance(v, int) and not isinstance(v, bool)} \
            if isinstance(base, dict) else {}
        self.goals = Goals(list(getattr(settings, "goals", []) or []), base=base)
        spec = getattr(settings, "subathon", None)
        self.subathon: Subathon | None = Subathon(spec) if spec is not None else None
        self.update_ms = UPDATE_MS
        self._dirty: dict[str, int] = {}  # "goal:<id>" or "timer" → when its coalesced update is due
        self._sent: dict[str, int] = {}  # ... → when one was last sent
        # First-time chatters and the credits roll (credits.py): followed only when a rule uses them.
        self.credits = Credits(state)
        self._credits_on = bool(getattr(settings, "credits", False)) or FIRST_CHAT in rule_types
        self.sounds: dict[str, str] = dict(getattr(settings, "sounds", {}) or {})  # per-gift sounds (sounds.py)
        spec = getattr(settings, "points", None)  # loyalty points (points.py)
        self.points: Points | None = Points(spec, (lifetime or {}).get(POINTS_KEY)) if spec is not None else None
        self.giveaways = Giveaways((lifetime or {}).get(GIVEAWAYS_KEY))  # giveaways.py
        tts = getattr(settings, "tts", None)  # TTS voices per viewer (voices.py)
        self.voices: Voices | None = Voices(tts, (lifetime or {}).get(VOICES_KEY)) if tts is not None else None
        self.active = self._is_active()

    def _is_active(self) -> bool:
        return (bool(self.goals.specs) or self.subathon is not None or self._credits_on or bool(self.sounds)
                or self.points is not None or self.giveaways.open is not None)

    def replace(self, settings: Any, rule_types: Any = ()) -> None:
        """Reloaded rules: the new goal definitions and timer settings; counts and the timer's state stay."""
        self.goals.specs = list(getattr(settings, "goals", []) or [])
        spec = getattr(settings, "subathon", None)
        if spec is None:
            self.subathon = None
        elif self.subathon is None:
            self.subathon = Subathon(spec)
        else:
            self.subathon.spec = spec
        self._credits_on = bool(getattr(settings, "credits", False)) or FIRST_CHAT in rule_types
        self.sounds = dict(getattr(settings, "sounds", {}) or {})
        tts = getattr(settings, "tts", None)
        if tts is None:
            self.voices = None
        elif self.voices is None:
            self.voices = Voices(tts, self._lifetime.get(VOICES_KEY))
        else:
            self.voices.spec = tts
        points = getattr(settings, "points", None)
        if points is None:
            self.points = None
        elif self.points is None:
            self.points = Points(points, self._lifetime.get(POINTS_KEY))
        else:
            self.points.spec = points
        self.active = self._is_active()

    # -- events --------------------------------------------------------------------------------

    def on_event(self, ev: Event, now: int, out: list[Action], made: list[Event]) -> None:
        if self._credits_on:
            self.credits.on_event(ev, made)
        if ev.type == CHAT and self.giveaways.open is not None:
            self.giveaways.on_chat(ev)
        if self.sounds and (sound := gift_sound(self.sounds, ev, now)) is not None:
            out.append(sound)
        if self.points is not None:
            if ev.type == POINTS_CONTROL:
                amount = ev.data.get("points")
                if isinstance(amount, int) and not isinstance(amount, bool) and ev.data.get("user_key"):
                    self.points.adjust(str(ev.data["user_key"]), amount)
            else:
                self.points.on_event(ev, now)
        sub = self.subathon
        if sub is not None:
            if not sub.started:
                sub.start(now)
                self._timer(now, out)
            if ev.type == SUBATHON_CONTROL:
                op = str(ev.data.get("op", ""))
                ms = ev.data.get("ms", 0)
                self.control(op, ms if isinstance(ms, int) and not isinstance(ms, bool) else 0, now, out)
            elif (ms := sub.spec.amount(ev)) and sub.add(ms, now):
                self._update(_TIMER, now, out)
        if not self.goals.specs:
            return
        for spec, _before, after, crossed in self.goals.count(ev):
            key = "goal:" + spec.id
            if not crossed:
                self._update(key, now, out)
                continue
            self._goal(spec, now, out, reached=crossed[-1])
            for target in crossed:
                made.append(Event(GOAL_REACHED, ev.ts, ev.room_id, f"{ev.msg_id}:goal:{spec.id}:{target}", ev.user,
                                  {"goal_id": spec.id, "title": spec.title or spec.id, "target": target,
                                   "progress": after, "step": spec.step_of(target), "steps": len(spec.steps),
                                   "scope": spec.scope, "goal_type": spec.type}))

    def control(self, op: str, ms: int, now: int, out: list[Action]) -> bool:
        """Pause, resume or add ``ms`` to the subathon timer; whether it changed."""
        sub = self.subathon
        if sub is None:
            return False
        if not sub.started:
            sub.start(now)
        if op == "pause":
            changed = sub.pause(now)
        elif op == "resume":
            changed = sub.resume(now)
        elif op == "add":
            changed = bool(sub.add(ms, now))
        else:
            return False
        if changed:
            self._timer(now, out)
        return changed

    def act(self, engine: Any, action: Action, spec: Any, rule: Any, ev: Event | None, now: int,
            out: list[Action]) -> None:
        """A rule's feature action, rendered: ``redeem`` (points.py), ``giveaway`` (giveaways.py),
        ``voice`` and ``tts`` (voices.py), ``credits`` (credits.py). Chat lines go through the
        engine's chat budget (``engine._emit``)."""
        kind = action.kind
        u = ev.user if ev is not None else None
        if kind == "credits":
            action.data = {**action.data, "sections": self.credits.sections(engine.board)}
            out.append(action)
        elif kind == "giveaway":
            if self.giveaways.start(spec, action, now):
                self.active = True
                engine._lower_floor(action.data["ends"])
                out.append(action)
                engine._emit(Action(now, "say", action.text, rule.id, action.user, action.event_id, {"giveaway": True}),
                             rule, None, now, out)
            else:
                engine.counters["giveaway_busy"] += 1
        elif kind == "redeem" and self.points is not None and u is not None:
            for said in self.points.redeem(u.key, (u.unique_id, u.nickname), action.text, now, rule.id,
                                           action.event_id):
                engine._emit(said, rule, ev, now, out)
        elif kind == "voice" and self.voices is not None and u is not None:
            engine._emit(self.voices.choose(u.key, u.nickname or u.unique_id, action.text, now, rule.id, action.user,
                                            action.event_id), rule, ev, now, out)
        elif kind == "tts":
            vs = engine.state.viewers_by_key.get(u.key) if u is not None else None
            if self.speak(action, ev, vs.diamonds if vs is not None else 0) is not None:
                engine._emit(action, rule, ev, now, out)
            else:
                engine.counters["tts_not_allowed"] += 1

    # -- what is due ---------------------------------------------------------------------------

    def next_due(self, with_timer: bool = True) -> int | None:
        """The next coalesced update, or the timer reaching zero (not at the end of a session:
        ``with_timer=False``, as the engine's ``close`` stops timers)."""
        due = min(self._dirty.values()) if self._dirty else None
        if self.giveaways.open is not None:  # (drawn at the close of a session too, as a poll ends)
            due = self.giveaways.open.ends if due is None else min(due, self.giveaways.open.ends)
        if with_timer and self.subathon is not None and (end := self.subathon.next_due()) is not None:
            due = end if due is None else min(due, end)
        return due

    def run_due(self, due: int, out: list[Action], made: list[Event], with_timer: bool = True) -> None:
        if self.giveaways.open is not None and self.giveaways.open.ends <= due:
            self.giveaways.close(due, self.points, out)
            self.active = self._is_active()
        sub = self.subathon
        if with_timer and sub is not None and (end := sub.next_due()) is not None and end <= due:
            sub.ended = True
            self._timer(due, out)
            made.append(Event(SUBATHON_END, due, "", f"subathon-end:{due}", None, {"added_ms": sub.added}))
        for key, at in sorted(self._dirty.items(), key=lambda kv: (kv[1], kv[0])):
            if at > due:
                continue
            if key == _TIMER:
                self._timer(due, out)
            else:
                spec = next((s for s in self.goals.specs if "goal:" + s.id == key), None)
                if spec is None:
                    self._dirty.pop(key, None)
                else:
                    self._goal(spec, due, out)

    # -- actions -------------------------------------------------------------------------------

    def _update(self, key: str, now: int, out: list[Action]) -> None:
        """A changed count: shown now, or when a second has passed since the last update."""
        last = self._sent.get(key)
        if last is None or now - last >= self.update_ms:
            if key == _TIMER:
                self._timer(now, out)
            else:
                spec = next(s for s in self.goals.specs if "goal:" + s.id == key)
                self._goal(spec, now, out)
        else:
            self._dirty.setdefault(key, last + self.update_ms)

    def _goal(self, spec: GoalSpec, now: int, out: list[Action], reached: int | None = None) -> None:
        key = "goal:" + spec.id
        self._dirty.pop(key, None)
        self._sent[key] = now
        view = self.goals.view(spec)
        view["reached"] = reached
        target = "done" if view["target"] is None else _fmt(view["target"])
        out.append(Action(now, "goal", f"{view['title']}: {_fmt(view['progress'])} / {target}", "goals", None, None,
                          view))

    def _timer(self, now: int, out: list[Action]) -> None:
        sub = self.subathon
        assert sub is not None
        self._dirty.pop(_TIMER, None)
        self._sent[_TIMER] = now
        view = sub.view(now)
        text = "ended" if sub.ended else ("paused " if sub.paused else "") + clock_text(view["remaining_ms"])
        out.append(Action(now, "timer", text, "subathon", None, None, view))

    # -- views for templates, lifetime, snapshots -------------------------------------------------

    def current(self, now: int) -> list[Action]:
        """The goals and the timer as they stand, as actions (for an overlay that starts after the
        engine did, e.g. after a restart); nothing is marked as sent."""
        out: list[Action] = []
        sent, dirty = dict(self._sent), dict(self._dirty)
        for spec in self.goals.specs:
            self._goal(spec, now, out)
        if self.subathon is not None and self.subathon.started:
            self._timer(now, out)
        self._sent, self._dirty = sent, dirty
        return out

    def goals_view(self) -> dict[str, dict[str, Any]]:
        return {s.id: self.goals.view(s) for s in self.goals.specs}

    def lifetime(self) -> dict[str, Any]:
        """Rows to keep with the lifetime totals (empty when no goal counts over streams)."""
        kept = self.goals.lifetime()
        out: dict[str, Any] = {LIFETIME_KEY: kept} if kept else {}
        if self.points is not None:
            out[POINTS_KEY] = self.points.lifetime()
        if self.giveaways.won_stream or self.giveaways.won_before:
            out[GIVEAWAYS_KEY] = self.giveaways.lifetime()
        if self.voices is not None and self.voices.chosen:
            out[VOICES_KEY] = self.voices.snapshot()
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"goals": dict(self.goals.stream), "sent": dict(self._sent), "dirty": dict(self._dirty),
                "subathon": self.subathon.snapshot() if self.subathon is not None else None,
                "credits": self.credits.snapshot(),
                "points": self.points.snapshot() if self.points is not None else None,
                "giveaways": self.giveaways.snapshot(),
                "voices": self.voices.snapshot() if self.voices is not None else None}

    def restore(self, data: dict[str, Any]) -> None:
        """Raises KeyError, TypeError or ValueError on a damaged part (the snapshot is then refused)."""
        self.goals.stream = {str(k): int(v) for k, v in data["goals"].items()}
        self._sent = {str(k): int(v) for k, v in data["sent"].items()}
        self._dirty = {str(k): int(v) for k, v in data["dirty"].items()}
        sub = data.get("subathon")
        if sub is not None and self.subathon is not None:
            self.subathon.restore(sub)
        if data.get("credits") is not None:
            self.credits.restore(data["credits"])
        if data.get("points") is not None and self.points is not None:
            self.points.restore(data["points"])
        if data.get("giveaways") is not None:
            self.giveaways.restore(data["giveaways"])
            self.active = self._is_active()
        if data.get("voices") is not None and self.voices is not None:
            self.voices.chosen.update({str(k): str(v) for k, v in data["voices"].items()})

    def speak(self, action: Action, ev: Event | None, diamonds: int) -> Action | None:
        """A ``tts`` action with its viewer's voice and language, or None: this viewer is not spoken."""
        if self.voices is None or ev is None or ev.user is None:
            return action
        if not self.voices.allowed(ev.user, diamonds):
            return None
        voice = self.voices.voice_of(ev.user.key)
        if voice is not None:
            action.data = {**action.data, "voice": voice[0], **({"lang": voice[1]} if voice[1] else {})}
        return action
    def points_view(self, user: Any) -> dict[str, Any]:
        """``points`` in templates: the viewer's balance and rank, the top, the perks."""
        if self.points is None:
            return {"balance": 0, "rank": "", "top": [], "top_text": "", "perks": [], "perks_text": ""}
        key = (user.get("user_id") or user.get("unique_id")) if isinstance(user, dict) else None
        return self.points.view(key)
