"""The engine: a plain, synchronous core that turns events and time into actions.

It does no I/O and reads no clock: callers pass ``now`` (ms). Live, replay, tests and
benchmarks drive the same object::

    actions = engine.feed(event, now)     # fires anything due by ``now`` first
    actions = engine.advance(now)         # timers, streak flushes, poll ends, queued chat lines
    engine.next_deadline()                # when to call advance() next, or None
    actions = engine.close()              # end of session: flush what is still open
"""

from __future__ import annotations

import re
from collections import Counter, deque
from typing import Any, Callable

import structlog

from bot.actions.model import Action
from bot.engine.budget import CHAT_KINDS, ChatBudget
from bot.engine.features import FEATURE_ACTIONS, Features
from bot.engine.variants import pick_variant
from bot.engine.leaderboard import Leaderboard
from bot.engine.polls import Poll, Quiz, normalize_answer
from bot.engine.rules import ActionSpec, Rule, RuleSet
from bot.engine.state import SessionState
from bot.engine.templates import Text, Value, _fmt_ranked
from bot.engine.timers import Timers
from bot.engine import trace as T
from bot.events.dedup import Deduper
from bot.events.model import CHAT, EVENT_TYPES, GIFT, GIFT_PROGRESS, POLL_CONTROL, TOP_GIFTER, Event
from bot.engine.pollcontrol import check_poll_control, control_rule
from bot.events.streaks import StreakFolder
from bot.policy.guard import PolicyRuntime

log = structlog.get_logger("bot.engine")
LOGGED_ERRORS_PER_RULE = 5
HOUR_MS = 3_600_000
NEVER = 1 << 62
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_command(text: str) -> tuple[str | None, list[str]]:
    """``"!Help me now"`` → ``("help", ["me", "now"])``; not a command → ``(None, [])``."""
    text = text.lstrip()  # " !help": a stray space before the ! is still a command
    if len(text) < 2 or text[0] != "!" or text[1].isspace():
        return None, []
    words = text[1:].split()
    return words[0].lower(), words[1:]


def _coerce(text: str) -> Any:
    """A rendered variable value: a number if it reads as one, else the text."""
    text = text.strip()
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return text


class Engine:
    def __init__(self, rules: RuleSet, *, streak_silence_ms: int = 5000, dedup_window: int = 500_000,
                 lifetime: dict[str, dict[str, Any]] | None = None, poll_update_ms: int = 0,
                 board_size: int = 0) -> None:
        self.rules = rules
        # For live displays (the overlay), off by default: ``poll_update`` actions with the vote
        # counts at most once per ``poll_update_ms``, and a ``leaderboard`` action whenever a gift
        # changes the top ``board_size`` places.
        self.poll_update_ms = poll_update_ms
        self.board_size = board_size
        self.dedup = Deduper(dedup_window)
        self.streaks = StreakFolder(streak_silence_ms)
        self.state = SessionState(lifetime)
        self.board = Leaderboard()
        s = rules.settings
        self.budget = ChatBudget(s.chat_per_minute, s.chat_burst, s.chat_dedup_ms, s.chat_max_wait_ms)
        self.timers: Timers | None = None
        self.poll: Poll | None = None
        self.quiz: Quiz | None = None
        self.counters: Counter[str] = Counter()  # duplicates, rule errors, busy polls (events by type: state.counts)
        self.fired: Counter[str] = Counter()  # firings by rule id
        self.on_rule_error: Callable[[str, str, Exception], None] | None = None  # (rule id, part, error)
        self._last_fire: dict[str, int] = {}
        self._user_fire: dict[str, dict[str, int]] = {}
        self._once: dict[str, set[str]] = {}
        self._since: dict[str, dict[str, int]] = {}
        self._hour: dict[str, deque[int]] = {}
        self._chat_at_fire: dict[str, int] = {}
        self._milestone_seen: dict[tuple[str, str], float] = {}
        self._error_logs: Counter[str] = Counter()
        # On-stream features (bot/engine/features.py: goals, subathon timer, credits, points, giveaways,
        # sounds, voices); their lifetime rows (lifetime goals, points, ...) kept with the lifetime totals.
        self.features = Features(s, self.state.lifetime, self.state, rules.by_type)
        self.state.extra_lifetime = self.features.lifetime
        # The policy guard (bot.policy): viewer text masked before rendering, every action screened
        # on its way out, chat moderated. ``policy.stats()`` counts what it did, by check id.
        self.policy = PolicyRuntime(rules.policy)
        # Nothing is due before this time: a lower bound of the next deadline, so feed() can skip
        # the deadline checks. Lowered wherever something new is scheduled; exact after _run_due.
        self._due_floor = NEVER
        # The trace (bot.engine.trace): a Tracer's append when attached, else None (nothing recorded).
        # Why rules did not fire is counted either way, by (rule id, reason).
        self.tracer: T.Tracer | None = None
        self._trace: Any = None
        self.suppressed: Counter[tuple[str, str]] = Counter()
        self.paused: frozenset[str] = frozenset()  # rule ids paused from the control page
        self._by_type = rules.by_type  # rules.by_type without the paused rules
        self._why: tuple[str, Any] | None = None  # why _choose or a rule error gave nothing
        self._made: list[Action] = []  # the actions of the last firing

    # -- driving ---------------------------------------------------------------------------

    def feed(self, event: Event, now: int) -> list[Action]:
        """Process one event from a source at time ``now`` (after anything already due)."""
        out = self._advance(now) if now >= self._due_floor or self.timers is None else []
        if self.dedup.is_duplicate(event.msg_id):
            self.counters["duplicates"] += 1
            if self._trace is not None:
                self._trace((T.DUPLICATE, now, T.seen(event), None, None, None))
            return self.policy.screen(out)
        if event.type != GIFT:
            self._process(event, now, out)
            return self.policy.screen(out)
        for ev in self.streaks.fold(event, now):
            self._process(ev, now, out)
        self._lower_floor(now + self.streaks.silence_ms)  # a streak frame schedules a flush
        return self.policy.screen(out)

    def advance(self, now: int) -> list[Action]:
        """Fire everything due by ``now``, in time order."""
        return self.policy.screen(self._advance(now))

    def _advance(self, now: int) -> list[Action]:
        if self.timers is None:
            self.timers = Timers(self.rules.timers, now)
        out: list[Action] = []
        self._run_due(now, out, with_timers=True)
        return out

    def _lower_floor(self, due: int) -> None:
        if due < self._due_floor:
            self._due_floor = due

    def next_deadline(self) -> int | None:
        """The next time something is due without new events, or None."""
        due = self._next_due(with_timers=True)
        return None if due is None else due[0]

    def close(self) -> list[Action]:
        """End of session: flush open streaks, end polls and quizzes, send queued chat lines,
        each at its own due time. Timers stop here."""
        out: list[Action] = []
        self._run_due(None, out, with_timers=False)
        return self.policy.screen(out)

    def close_live(self, now: int) -> tuple[list[Action], list[Action]]:
        """A live end of session at ``now`` (a stop, or the stream's end): as ``close``, but the chat
        budget releases only what it allows by ``now``; the lines it still holds are returned apart
        (actions, held), for the caller to dead-letter, instead of all going out at once."""
        out: list[Action] = []
        self._run_due(None, out, with_timers=False, budget_until=now)
        # both through the policy guard: the held lines go to the dead-letter file, and may be re-sent
        return self.policy.screen(out), self.policy.screen(self.budget.take_waiting())

    def fresh(self, lifetime: dict[str, dict[str, Any]] | None = None) -> Engine:
        """A new engine with these rules and settings and no session state (the next stream)."""
        new = Engine(self.rules, streak_silence_ms=self.streaks.silence_ms, dedup_window=self.dedup.window,
                     lifetime=lifetime, poll_update_ms=self.poll_update_ms, board_size=self.board_size)
        new.pause(self.paused)
        new.suppressed = self.suppressed  # counted for the process (/metrics), not per stream
        if self.tracer is not None:
            self.tracer.attach(new)
        return new

    def pause(self, rule_ids: frozenset[str] | set[str]) -> None:
        """Pause these rules (and only these): they are skipped, traced and counted as paused."""
        self.paused = frozenset(rule_ids)
        by_type = self.rules.by_type
        self._by_type = {t: [r for r in rules if r.id not in self.paused] for t, rules in by_type.items()
                         } if self.paused else by_type

    def skip_missed_periods(self, now: int) -> int:
        """Time jumped (live: a stepped clock or a stalled loop): each ``every`` timer fires once
        for the latest period, not once per missed one. Returns the periods skipped. (A replay
        never calls this: it cannot tell a jump from a quiet stream, and catches up instead.)"""
        return self.timers.skip_missed(now) if self.timers is not None else 0

    def replace_rules(self, rules: RuleSet, now: int) -> None:
        """Swap in new rules; session state, cooldowns, open streaks and polls are kept."""
        self.rules = rules
        self.pause(self.paused)
        self.policy.replace(rules.policy)
        if self.timers is not None:
            self.timers.replace(rules.timers, now)
        self._due_floor = now
        s = rules.settings
        b = self.budget
        b.per_minute, b.burst, b.dedup_ms, b.max_wait_ms = s.chat_per_minute, s.chat_burst, s.chat_dedup_ms, s.chat_max_wait_ms
        self.features.replace(s, rules.by_type)

    # -- what is due -------------------------------------------------------------------------

    def _next_due(self, with_timers: bool, budget_until: int | None = None) -> tuple[int, str] | None:
        """The earliest pending deadline and what it is (on a tie, in this order)."""
        best: tuple[int, str] | None = None
        due = self.streaks.next_deadline()
        if due is not None:
            best = (due, "streak")
        if with_timers and self.timers is not None:
            due = self.timers.next_due()
            if due is not None and (best is None or due < best[0]):
                best = (due, "timer")
        if self.poll is not None:
            update = self.poll.update_due()
            due = self.poll.ends if update is None else min(update, self.poll.ends)
            if best is None or due < best[0]:
                best = (due, "poll")
        if self.quiz is not None and (best is None or self.quiz.ends < best[0]):
            best = (self.quiz.ends, "quiz")
        due = self.budget.next_due()
        if due is not None and (best is None or due < best[0]) and (budget_until is None or due <= budget_until):
            best = (due, "budget")
        due = self.features.next_due(with_timers)
        if due is not None and (best is None or due < best[0]):
            best = (due, "features")
        return best

    def _run_due(self, now: int | None, out: list[Action], with_timers: bool, budget_until: int | None = None) -> None:
        while (nxt := self._next_due(with_timers, budget_until)) is not None and (now is None or nxt[0] <= now):
            due, what = nxt
            if what == "streak":
                for ev in self.streaks.flush_due(due):
                    self._process(ev, due, out)
            elif what == "timer":
                popped = self.timers.pop(due)  # type: ignore[union-attr]
                if popped is not None:
                    self._fire_timer(popped[1], popped[0], out)
            elif what == "poll":
                self._poll_due(due, out)
            elif what == "quiz":
                self._close_quiz(due, out)
            elif what == "features":
                made: list[Event] = []
                self.features.run_due(due, out, made, with_timers)
                for ev in made:
                    self._process(ev, due, out)
            else:
                out.extend(self.budget.release(due))
        self._due_floor = NEVER if nxt is None else nxt[0]

    # -- events ------------------------------------------------------------------------------

    def _process(self, ev: Event, now: int, out: list[Action]) -> None:
        if "test" not in ev.data:  # a test event (control page) counts for nothing
            self.state.record(ev, now)
        user_key = ev.user.key if ev.user is not None else ""
        command: str | None = None
        args: list[str] = []
        climbed: Event | None = None
        voted = False
        if ev.type == CHAT:
            text = str(ev.data.get("text", ""))
            command, args = parse_command(text)
            if self.timers is not None:
                self.timers.on_chat(now)
            if ev.user is not None:
                if (moderated := self.policy.moderate(ev, now)) is not None:
                    self._process(moderated, now, out)  # before the line's own rules: they see the mute
                if self.poll is not None and self.poll.vote(user_key, text, now):
                    voted = True
                    if (due := self.poll.update_due()) is not None:
                        self._lower_floor(due)
                if self.quiz is not None and self.quiz.is_correct(text):
                    self._quiz_won(ev, now, out)
        elif ev.type == GIFT and ev.user is not None and "test" not in ev.data:
            value = int(ev.data.get("diamonds", 0)) * int(ev.data.get("count", 1))
            before, after = self.board.add(ev.user, value)
            if after <= self.board_size:
                top = self.board.top(self.board_size)
                out.append(Action(now, "leaderboard", _fmt_ranked(top, self.board_size), "leaderboard", None,
                                  None, {"top": top}))
            if after <= self.rules.settings.top_n and (before is None or after < before):
                climbed = Event(TOP_GIFTER, ev.ts, ev.room_id, f"{ev.msg_id}:top", ev.user,
                                {"rank": after, "previous_rank": before, "diamonds": self.board.diamonds[user_key]})
        elif ev.type == POLL_CONTROL:
            self.control_poll(ev.data, now, out)
        made: list[Event] | None = None
        if self.features.active and "test" not in ev.data:  # a control-page test event moves no goal, clock or points
            made = []
            self.features.on_event(ev, now, out, made)
            if (due := self.features.next_due()) is not None:
                self._lower_floor(due)
        rules = self._by_type.get(ev.type)
        base: dict[str, Any] | None = None
        # The trace: one tuple per event, and one per rule that did not fire for a reason worth
        # keeping (a command rule given another command is left for the reader to work out).
        traced = self._trace is not None
        tr: list | None = None
        sup = self.suppressed
        for rule in rules or ():
            if rule.commands and command not in rule.commands:
                continue
            if rule.once_per_user and user_key in self._once.get(rule.id, ()):
                sup[rule.id, T.ONCE] += 1
                if traced:
                    if tr is None:
                        tr = []
                    tr.append((rule, T.ONCE, user_key))
                continue
            if rule.permission != "everyone" and not self._permitted(rule.permission, ev):
                sup[rule.id, T.PERMISSION] += 1
                if traced:
                    if tr is None:
                        tr = []
                    tr.append((rule, T.PERMISSION, rule.permission))
                continue
            if (rule.cooldown_ms or rule.user_cooldown_ms or rule.max_per_hour) and \
                    (why := self._blocked(rule, user_key, now)) is not None:
                sup[rule.id, why[0]] += 1
                if traced:
                    if tr is None:
                        tr = []
                    tr.append((rule, *why))
                continue
            if base is None:
                base = self.policy.guard_context(self._event_context(ev, args, voted, now))
            context = self._rule_context(rule, base, now)
            if rule.when is not None and not self._holds(rule, context):
                why, self._why = self._why, None
                sup[rule.id, T.ERROR if why else T.WHEN] += 1
                if traced:
                    if tr is None:
                        tr = []
                    tr.append((rule, *why) if why else (rule, T.WHEN, T.when_values(rule.when_source, context)))
                continue
            chosen = self._choose(rule, context, user_key)
            if chosen is None:
                why, self._why = self._why, None
                sup[rule.id, why[0]] += 1  # type: ignore[index]
                if traced:
                    if tr is None:
                        tr = []
                    tr.append((rule, *why))  # type: ignore[misc]
                continue
            actions, context = chosen
            if not self._fire(rule, actions, context, now, ev, out):
                why, self._why = self._why, None
                sup[rule.id, T.ERROR] += 1
                if traced:
                    if tr is None:
                        tr = []
                    tr.append((rule, T.ERROR, why[1] if why else "do"))
                continue
            if traced:
                if tr is None:
                    tr = []
                tr.append((rule, T.FIRED, self._made))
            if rule.once_per_user:
                self._once.setdefault(rule.id, set()).add(user_key)
            if rule.user_cooldown_ms:
                self._user_fire.setdefault(rule.id, {})[user_key] = now
            if rule.stop:
                if rule is not rules[-1]:  # type: ignore[index]
                    for later in rules[rules.index(rule) + 1:]:  # type: ignore[index]
                        sup[later.id, T.STOPPED] += 1
                break
        if traced:  # what the trace shows of the event, never the Event (its raw payload); trace.full
            seen = (ev.type, ev.ts, ev.msg_id, ev.user, ev.data)  # (alone: no rule could trigger it)
            self._trace((T.EVENT, now, seen, rules, tr, self.paused) if rules is not None else seen)
        if climbed is not None:
            self._process(climbed, now, out)
        for reached in made or ():
            self._process(reached, now, out)

    def _permitted(self, permission: str, ev: Event) -> bool:
        """Moderators may do anything; followers include subscribers."""
        u = ev.user
        if u is None:
            return False
        if u.is_moderator:
            return True
        if permission == "follower":
            return u.follow_role >= 1 or u.is_subscriber
        if permission == "subscriber":
            return u.is_subscriber
        if permission == "top_gifter":
            rank = self.board.rank(u.key)
            return rank is not None and rank <= self.rules.settings.top_n
        return False

    def _ready(self, rule: Rule, user_key: str, now: int) -> bool:
        """Cooldowns and the hourly cap allow this rule to fire now."""
        return self._blocked(rule, user_key, now) is None

    def _blocked(self, rule: Rule, user_key: str, now: int) -> tuple[str, Any] | None:
        """Why cooldowns or the hourly cap keep this rule from firing now (the time left), or None."""
        if rule.cooldown_ms:
            last = self._last_fire.get(rule.id)
            if last is not None and now - last < rule.cooldown_ms:
                return T.COOLDOWN, rule.cooldown_ms - (now - last)
        if rule.user_cooldown_ms:
            last = self._user_fire.get(rule.id, {}).get(user_key)
            if last is not None and now - last < rule.user_cooldown_ms:
                return T.USER_COOLDOWN, rule.user_cooldown_ms - (now - last)
        if rule.max_per_hour:
            fires = self._hour.get(rule.id)
            while fires and fires[0] <= now - HOUR_MS:
                fires.popleft()
            if fires and len(fires) >= rule.max_per_hour:
                return T.MAX_PER_HOUR, rule.max_per_hour
        return None

    def _choose(self, rule: Rule, context: dict[str, Any], user_key: str
                ) -> tuple[list[ActionSpec], dict[str, Any]] | None:
        """Milestones and tiers decide whether, and with which actions, the rule fires."""
        if rule.milestones:
            try:
                value = float(rule.milestone_of(context))  # type: ignore[misc]
            except Exception as exc:
                self._rule_error(rule, "milestones", exc)
                self._why = (T.ERROR, f"milestones: {type(exc).__name__}: {exc}")
                return None
            key = (rule.id, user_key)
            before = self._milestone_seen.get(key, float("-inf"))
            self._milestone_seen[key] = value
            crossed = [m for m in rule.milestones if before < m <= value]
            if not crossed:
                self._why = (T.MILESTONE, (before, value))
                return None
            top = crossed[-1]
            context = {**context, "milestone": int(top) if top.is_integer() else top}
        if not rule.tiers:
            return rule.actions, context
        try:
            value = float(rule.tier_by(context))  # type: ignore[misc]
        except Exception as exc:
            self._rule_error(rule, "tier_by", exc)
            self._why = (T.ERROR, f"tier_by: {type(exc).__name__}: {exc}")
            return None
        for tier in rule.tiers:
            if value >= tier.min:
                return tier.actions, {**context, "tier": {"name": tier.name, "min": tier.min}}
        self._why = (T.TIER, value)
        return None

    # -- contexts ----------------------------------------------------------------------------

    def _event_context(self, ev: Event, args: list[str], vote: bool = False, now: int = 0) -> dict[str, Any]:
        view = {"type": ev.type, "ts": ev.ts, "msg_id": ev.msg_id, "room_id": ev.room_id, **ev.data}
        if ev.type == CHAT:
            view["vote"] = vote  # the line was a vote of the open poll ("1"): not chat to greet
        if ev.type == GIFT or ev.type == GIFT_PROGRESS:
            view["total_diamonds"] = int(ev.data.get("diamonds", 0)) * int(ev.data.get("count", 1))
        user = self.state.user_view(ev.user) if ev.user is not None else None
        if user is not None:
            user.update(self.policy.user_fields(ev.user.key, now))  # strikes, muted, muted_until
        return {"event": view, "user": user, "args": args}

    def _rule_context(self, rule: Rule, base: dict[str, Any], now: int) -> dict[str, Any]:
        needs = rule.needs
        if not needs - {"event", "user", "args"}:
            return base
        context = dict(base)
        if "stats" in needs:
            context["stats"] = self.state.stats_view(now)
        if "since" in needs:
            context["since"] = self._since_view(rule, now)
        if "rule" in needs:
            context["rule"] = {"id": rule.id, "fired": self.fired[rule.id]}
        if "vars" in needs:
            context["vars"] = self.state.vars
        if "leaderboard" in needs:
            context["leaderboard"] = self.board.top(10)
        if "snippets" in needs:
            context["snippets"] = self.rules.settings.snippets
        if "sponsor" in needs:
            context["sponsor"] = rule.sponsor
        if "goals" in needs:
            context["goals"] = self.features.goals_view()
        if "points" in needs:
            context["points"] = self.features.points_view(base.get("user"))
        return context

    def _since_view(self, rule: Rule, now: int) -> dict[str, int]:
        snap = self._since.get(rule.id)
        counts = self.state.counts
        if snap is None:
            view = {t: counts.get(t, 0) for t in EVENT_TYPES}
            view["ms"] = now - (self.timers.start if self.timers else now)
        else:
            view = {t: counts.get(t, 0) - snap.get(t, 0) for t in EVENT_TYPES}
            view["ms"] = now - snap["@"]
        return view

    def _holds(self, rule: Rule, context: dict[str, Any]) -> bool:
        try:
            return rule.when(context)  # type: ignore[misc]
        except Exception as exc:  # a bad expression must never stop the stream
            self._rule_error(rule, "when", exc)
            self._why = (T.ERROR, f"when: {type(exc).__name__}: {exc}")
            return False

    # -- firing ------------------------------------------------------------------------------

    def _fire_timer(self, rule: Rule, due: int, out: list[Action]) -> None:
        why = self._timer_outcome(rule, due, out)
        if why[0] != T.FIRED:
            self.suppressed[rule.id, why[0]] += 1
        if self._trace is not None:
            self._trace((T.TIMER, due, None, [rule], [(rule, *why)], self.paused))

    def _timer_outcome(self, rule: Rule, due: int, out: list[Action]) -> tuple[str, Any]:
        if rule.id in self.paused:
            return T.PAUSED, None
        if rule.min_chat and (said := self.state.counts[CHAT] - self._chat_at_fire.get(rule.id, 0)) < rule.min_chat:
            return T.MIN_CHAT, (said, rule.min_chat)
        if (why := self._blocked(rule, "", due)) is not None:
            return why
        context = self._rule_context(rule, {}, due)
        if rule.when is not None and not self._holds(rule, context):
            why, self._why = self._why, None
            return why or (T.WHEN, T.when_values(rule.when_source, context))
        chosen = self._choose(rule, context, "")
        if chosen is None:
            why, self._why = self._why, None
            return why or (T.ERROR, "?")
        if not self._fire(rule, chosen[0], chosen[1], due, None, out):
            why, self._why = self._why, None
            return T.ERROR, why[1] if why else "do"
        return T.FIRED, self._made

    def _fire(self, rule: Rule, specs: list[ActionSpec], context: dict[str, Any], now: int, ev: Event | None,
              out: list[Action]) -> bool:
        """Render every action first; only if all render do their effects happen."""
        user = ev.user.unique_id if ev is not None and ev.user is not None else None
        event_id = (ev.msg_id or None) if ev is not None else None
        made: list[tuple[ActionSpec, Action | None, Any]] = []
        test = ev is not None and "test" in ev.data
        try:
            for spec in specs:
                if spec.kind == "subathon":  # pause / resume / add time (bot/engine/features.py)
                    made.append((spec, None, None))
                    continue
                if spec.kind in ("set", "incr"):
                    key = "value" if spec.kind == "set" else "by"
                    value = _coerce(spec.options[key].render(context))
                    if spec.kind == "incr" and not isinstance(value, (int, float)):
                        raise ValueError(f"incr {spec.options['var']}: 'by' gave {value!r}, not a number")
                    made.append((spec, None, value))
                    continue
                text = spec.text.render(context)
                variant = None
                if "variants" in spec.options:  # CTA variants: one per firing, the same in every replay
                    texts = spec.options["variants"]
                    variant = pick_variant(rule.id, spec.options["pick"], len(texts), self.fired[rule.id])
                    text = texts[variant].render(context)
                if rule.sponsor is not None and text and rule.sponsor["disclosure"] not in text:
                    text = f"{text} {rule.sponsor['disclosure']}"
                data = _render_data(spec.data, context) if spec.data else {}
                if variant is not None:
                    data = {**data, "variant": variant, "variants": len(spec.options["variants"])}
                if test:
                    data["test"] = True
                action = Action(now, spec.kind, text, rule.id, user, event_id, data)
                if ev is not None:
                    self.policy.mark(action, rule)  # what the guard masked in this event's viewer text
                made.append((spec, action, None))
        except Exception as exc:  # a text that fails to render drops this firing, not the stream
            self._rule_error(rule, "do", exc)
            self._why = (T.ERROR, f"do: {type(exc).__name__}: {exc}")
            return False
        user_key = ev.user.key if ev is not None and ev.user is not None else ""
        self._made = [a for _, a, _ in made if a is not None]
        for spec, action, value in made:
            if action is None and spec.kind == "subathon":
                self.features.control(spec.options["op"], spec.options["ms"], now, out)
            elif action is None:
                self._set_var(spec, value, user_key)
            elif spec.kind in FEATURE_ACTIONS or (spec.kind == "tts" and self.features.voices is not None):
                self.features.act(self, action, spec, rule, ev, now, out)  # redeem, giveaway, voice, credits, tts
            elif spec.kind == "poll":
                self._open_poll(rule, spec, action, context, now, out)
            elif spec.kind == "quiz":
                self._open_quiz(rule, spec, action, context, now, out)
            else:
                self._emit(action, rule, ev, now, out)
        self.fired[rule.id] += 1
        self._last_fire[rule.id] = now
        if rule.max_per_hour:
            self._hour.setdefault(rule.id, deque()).append(now)
        self._chat_at_fire[rule.id] = self.state.counts[CHAT]
        if user_key:
            self.state.thanked(user_key, now)
        if "since" in rule.needs:
            snap = dict(self.state.counts)
            snap["@"] = now
            self._since[rule.id] = snap
        return True

    def _emit(self, action: Action, rule: Rule, ev: Event | None, now: int, out: list[Action]) -> None:
        if action.kind in CHAT_KINDS and (self.budget.limited or self.budget.dedup_ms):
            worth = 0
            if ev is not None and ev.type == GIFT:
                worth = int(ev.data.get("diamonds", 0)) * int(ev.data.get("count", 1))
            nickname = ev.user.nickname if ev is not None and ev.user is not None else ""
            out.extend(self.budget.offer(action, now, worth, rule.priority, nickname, rule.merge))
            if self.budget.waiting:
                self._lower_floor(now)  # queued lines are due as soon as the budget allows
        else:
            out.append(action)

    def _set_var(self, spec: ActionSpec, value: Any, user_key: str) -> None:
        name = spec.options["var"]
        store = self.state.user_vars.setdefault(user_key, {}) if spec.options["per"] == "user" else self.state.vars
        if spec.kind == "set":
            store[name] = value
        else:
            current = store.get(name, 0)
            store[name] = (current if isinstance(current, (int, float)) else 0) + value

    # -- polls and quizzes -------------------------------------------------------------------

    def _open_poll(self, rule: Rule, spec: ActionSpec, action: Action, context: dict[str, Any], now: int,
                   out: list[Action]) -> None:
        if self.poll is not None:  # one at a time: chat is told, the open poll goes on
            self.counters["poll_busy"] += 1
            log.warning("poll_busy", rule=rule.id, open_poll=self.poll.rule.id)
            left = max(0, -(-(self.poll.ends - now) // 1000))
            busy = Action(action.ts, "say", f"A poll is already running ({left} s left): {self.poll.question}"[:500],
                          rule.id, action.user, action.event_id, {"poll_busy": True})
            self._emit(busy, rule, None, now, out)
            if self._trace is not None:
                self._trace((T.POLL, now, None, None, [(rule, "poll_busy", self.poll.rule.id)], None))
            return
        duration = spec.options["duration"]
        self.poll = Poll(rule, action.text, spec.options["options"], now + duration, spec.options["result"], context,
                         update_ms=self.poll_update_ms, opened=now)
        self._lower_floor(self.poll.ends)
        action.data = {**action.data, "options": self.poll.options, "duration_ms": duration, "ends": now + duration}
        self._emit(action, rule, None, now, out)

    def control_poll(self, data: dict[str, Any], now: int, out: list[Action]) -> None:
        """Open or close a poll from outside the rules (a ``poll_control`` event: the control page's,
        recorded and replayed like any event; bot/engine/pollcontrol.py). Wrong data, or a close
        with no poll open, is logged, counted and skipped; an open while one runs is ``poll_busy``."""
        try:
            data = check_poll_control(data)
        except ValueError as exc:
            self.counters["poll_control_refused"] += 1
            log.warning("poll_control_refused", error=str(exc))
            return
        if data["op"] == "close":
            if self.poll is None:
                self.counters["poll_control_refused"] += 1
                log.warning("poll_control_refused", error="no poll is open")
            else:
                self._close_poll(now, out)
            return
        rule, spec = control_rule(data)
        self._open_poll(rule, spec, Action(now, "poll", data["question"], rule.id), {}, now, out)

    def _poll_due(self, due: int, out: list[Action]) -> None:
        """Live vote counts when they are due before the end; else the poll ends."""
        poll = self.poll
        assert poll is not None
        update = poll.update_due()
        if update is not None and update <= due and update < poll.ends:
            text, data = poll.update(due)
            out.append(Action(due, "poll_update", text, poll.rule.id, None, None, data))
        else:
            self._close_poll(due, out)

    def _close_poll(self, due: int, out: list[Action]) -> None:
        poll, self.poll = self.poll, None
        assert poll is not None
        tally = poll.tally()
        try:
            text = poll.result.render({**poll.context, "poll": tally})
        except Exception as exc:
            self._rule_error(poll.rule, "poll result", exc)
            text = f"Poll closed: {tally['winner']}"
        data = {k: tally[k] for k in ("question", "votes", "total", "winner", "winners", "tie")}
        out.append(Action(due, "poll_result", text, poll.rule.id, None, None, data))
        if self._trace is not None:
            self._trace((T.POLL, due, None, None, [(poll.rule, "poll_closed", f"{tally['total']} votes, "
                                                    f"winner {tally['winner']!r}")], None))

    def _open_quiz(self, rule: Rule, spec: ActionSpec, action: Action, context: dict[str, Any], now: int,
                   out: list[Action]) -> None:
        if self.quiz is not None:
            self.counters["quiz_busy"] += 1
            log.warning("quiz_busy", rule=rule.id, open_quiz=self.quiz.rule.id)
            if self._trace is not None:
                self._trace((T.QUIZ, now, None, None, [(rule, "quiz_busy", self.quiz.rule.id)], None))
            return
        answers = spec.options["answers"]
        duration = spec.options["duration"]
        self.quiz = Quiz(rule, action.text, {normalize_answer(a) for a in answers}, answers[0], now + duration,
                         spec.options["win"], spec.options["timeout"], context, opened=now)
        self._lower_floor(self.quiz.ends)
        action.data = {**action.data, "duration_ms": duration, "ends": now + duration}
        self._emit(action, rule, None, now, out)

    def _quiz_won(self, ev: Event, now: int, out: list[Action]) -> None:
        quiz, self.quiz = self.quiz, None
        assert quiz is not None and ev.user is not None
        winner = self.state.user_view(ev.user)
        try:
            text = quiz.win.render({**quiz.context, "quiz": {"question": quiz.question, "answer": quiz.shown_answer},
                                    "winner": winner})
        except Exception as exc:
            self._rule_error(quiz.rule, "quiz win", exc)
            return
        action = Action(now, "shoutout", text, quiz.rule.id, ev.user.unique_id, ev.msg_id or None,
                        {"quiz": quiz.question, "answer": quiz.shown_answer})
        self._emit(action, quiz.rule, None, now, out)
        if self._trace is not None:
            self._trace((T.QUIZ, now, T.seen(ev), None, [(quiz.rule, "quiz_won", ev.user.unique_id)], None))

    def _close_quiz(self, due: int, out: list[Action]) -> None:
        quiz, self.quiz = self.quiz, None
        assert quiz is not None
        try:
            text = quiz.timeout.render({**quiz.context, "quiz": {"question": quiz.question,
                                                                 "answer": quiz.shown_answer}, "winner": None})
        except Exception as exc:
            self._rule_error(quiz.rule, "quiz timeout", exc)
            return
        self._emit(Action(due, "say", text, quiz.rule.id, None, None, {"quiz": quiz.question}), quiz.rule, None,
                   due, out)
        if self._trace is not None:
            self._trace((T.QUIZ, due, None, None, [(quiz.rule, "quiz_timeout", quiz.shown_answer)], None))

    def _rule_error(self, rule: Rule, where: str, exc: Exception) -> None:
        self.counters["rule_errors"] += 1
        if self.on_rule_error is not None:  # (``livebot test`` fails the case that caused it)
            self.on_rule_error(rule.id, where, exc)
        self._error_logs[rule.id] += 1
        if self._error_logs[rule.id] <= LOGGED_ERRORS_PER_RULE:
            log.warning("rule_error", rule=rule.id, at=str(rule.pos), part=where,
                        error=f"{type(exc).__name__}: {exc}")


def _render_data(value: Any, context: dict[str, Any]) -> Any:
    """Rendered ``data``: text, except a lone ``{{ expr }}`` whose value is a number, bool or None."""
    if isinstance(value, Value):
        return value.value(context)
    if isinstance(value, Text):
        return value.render(context)
    if isinstance(value, dict):
        return {k: _render_data(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_data(v, context) for v in value]
    return value
