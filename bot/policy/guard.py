"""The policy guard at run time: viewer text masked before rendering, every action screened
before any sink, and viewer chat moderated.

Design (see DEVELOPERS.md "The policy guard"):

1. **Viewer values are cleaned before templates see them.** ``PolicyRuntime.guard_context``
   replaces the viewer-supplied strings of an event's context (``user.nickname``,
   ``user.unique_id``, ``event.text``, ``args``) by masked copies. Whatever a template does with
   them (``upper``, ``join``, slicing), it can only print the masked text. A value of which
   nothing readable is left becomes a sentinel; an action whose text or data carries it is
   suppressed (a "Welcome ***!" says nothing). Results are cached by the raw string, so a
   nickname costs one scan per stream, not one per action.
2. **Every action is screened at the engine's exit** (``screen``), whatever its kind — built-in,
   a rule's own, or one a new sink adds: its text and string data are scanned for links, payment
   handles, contact details and banned words; a finding inside the rule pack's own literal text
   (the creator's words, already judged by ``livebot validate``) is left alone, anything else is
   masked. This catches viewer text that reaches an action without a template (the leaderboard
   line, a quiz winner). Then the repetition rate.
3. Each masking or suppression is counted by check id (``stats()``), recorded on the action as
   ``data["policy"]`` (check, field, what was done; never the viewer's text), and a suppressed
   action is kept in ``suppressed`` (a bounded list) for the trace and the control page.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from typing import Any, Iterable

from bot.actions.model import Action
from bot.events.model import Event
from bot.policy.checks import CHECKS, PolicySettings, channels_of
from bot.policy.detect import Detector, Finding
from bot.policy.normalize import fold

SENTINEL = "\ue000"  # a viewer value with nothing readable left; its action is suppressed
REPEAT_KINDS = frozenset({"say", "shoutout", "tts"})  # lines said in chat or aloud
REPEAT_MIN_CHARS = 5  # "1", "2" (poll votes), "lol" said again are not spam
MODERATION_CHECKS = frozenset({"banned-word", "link", "off-platform-payment", "contact"})
_PUNCT = ".,!?;:()[]{}\"'…"  # around a word in a rendered text ("Ana!" is the clean "Ana")
_EXPR = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_WORDY = re.compile(r"\w", re.UNICODE)


def literal_parts(source: str) -> str:
    """A template's own text with each ``{{ }}`` / ``{% %}`` block replaced by a same-length
    placeholder (one token, so positions in the source still hold)."""
    return _EXPR.sub(lambda m: "§" * len(m.group()), source)


class Policy:
    """What the loader builds: the settings, the detector, and the rule pack's own text."""

    def __init__(self, settings: PolicySettings | None = None, literals: Iterable[str] = ()) -> None:
        self.settings = settings or PolicySettings()
        self.detector = Detector(self.settings)
        checks = self.detector.checks
        self.viewer_checks = frozenset(c for c in checks if CHECKS[c].viewer)
        self.enabled = bool(checks)
        self._by_kind: dict[str, frozenset[str]] = {}
        self.repeat_limit = self.settings.repeat_limit if "repetition" in checks else None
        self.moderation_checks = MODERATION_CHECKS & checks
        literals = [t for t in literals if t]
        self.literal_blob = "\n".join(" ".join(fold(t.replace("§", " ")).shapes) for t in literals)
        # the pack's own words, token by token: screen() scans only the other tokens of a text
        self.literal_tokens = frozenset(tok for t in literals for tok in literal_parts(t).split() if "§" not in tok)
        self.texts: list[tuple[Any, str, str | None, str]] = []  # (pos, kind, rule id, source), for validate
        self.timers: list[tuple[Any, str, int, frozenset[str]]] = []  # (pos, rule id, every_ms, kinds)

    def checks_for(self, kind: str) -> frozenset[str]:
        got = self._by_kind.get(kind)
        if got is None:
            ch = channels_of(kind)
            got = self._by_kind[kind] = frozenset(c for c in self.viewer_checks if CHECKS[c].applies & ch)
        return got

    def is_creator_text(self, shapes: list[str], hit: frozenset[int]) -> bool:
        span = " ".join(shapes[i] for i in sorted(hit)).strip(".,!?;:()[]\"'")
        return bool(span) and span in self.literal_blob


class PolicyRuntime:
    """One session's guard: counters, moderation state and the repetition window."""

    MAX_SUPPRESSED = 200

    def __init__(self, policy: Policy | None) -> None:
        self.policy = policy or Policy()
        self.masked: Counter[str] = Counter()  # maskings, by check id
        self.suppressed_by: Counter[str] = Counter()  # suppressed actions, by check id (one per check it hit)
        self.suppressed_actions = 0
        self.moderations: Counter[str] = Counter()  # moderation events, by reason
        self.suppressed: deque[dict[str, Any]] = deque(maxlen=self.MAX_SUPPRESSED)
        self.strikes: dict[str, int] = {}
        self.muted_until: dict[str, int] = {}
        self._said: dict[tuple[str, str], deque[int]] = {}
        self._chat_recent: dict[str, deque[tuple[int, str]]] = {}
        self._clean_cache: dict[str, tuple[str, list[str] | None, tuple[tuple[str, str], ...]]] = {}
        self._event_entries: list[dict[str, Any]] = []
        self._clean_tokens: set[str] = set()
        self._trusted: set[int] = set()  # ids of this batch's actions rendered only from cleaned values
        self._rule_trust: dict[str, tuple[Any, bool]] = {}
        self._sentinels = False  # a viewer value was found with nothing readable left (since the start)
        self._said_limit = 4096
        self._recent_limit = 20_000
        self.tracer: Any = None  # bot.engine.trace.Tracer, when one is attached: each masking noted there

    def replace(self, policy: Policy | None) -> None:
        """New rules (a reload): new settings, same counters and moderation state."""
        self.policy = policy or Policy()
        self._clean_cache.clear()

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    # -- 1. viewer values --------------------------------------------------------------------

    def clean(self, value: str) -> tuple[str, list[str] | None, tuple[tuple[str, str], ...]]:
        """``value`` with risky tokens masked: (text, the tokens after masking or None when
        unchanged, ((check, what), ...)). Nothing readable left: the text is SENTINEL.

        An @handle is cleaned as any other viewer text: TikTok allows ``.`` in one, so a handle can
        be a domain (``freerobux.gg``) and would read as a link on TTS and the overlay."""
        hit = self._clean_cache.get(value)
        if hit is not None:
            return hit
        findings = self.policy.detector.scan(value, self.policy.viewer_checks) if value else []
        if not findings:
            out: tuple[str, list[str] | None, tuple[tuple[str, str], ...]] = (value, None, ())
        else:
            out = self._masked(value, findings)
            self._sentinels = self._sentinels or out[0] == SENTINEL
        if len(self._clean_cache) > 50_000:
            self._clean_cache.clear()
            self._clean_tokens.clear()
        self._clean_cache[value] = out
        # its tokens, as they now read, are known to be clean: screen() need not scan them again
        self._clean_tokens.update(t.strip(_PUNCT) for t in (out[0].split() if out[0] != SENTINEL else ()))
        return out

    def _masked(self, value: str, findings: list[Finding]) -> tuple[str, list[str], tuple[tuple[str, str], ...]]:
        f = fold(value)
        masked = set().union(*(x.tokens for x in findings))
        mask = self.policy.settings.mask
        tokens = [mask if i in masked else t for i, t in enumerate(f.raw)]
        left = any(_WORDY.search(t) for i, t in enumerate(f.raw) if i not in masked and f.shapes[i])
        what = tuple(dict.fromkeys((x.check, x.what) for x in findings))
        if not left:
            return SENTINEL, [SENTINEL] * len(tokens), what
        counter = iter(range(len(f.raw)))
        text = re.sub(r"\S+", lambda m: tokens[next(counter)], value)
        text = re.sub(rf"(?:{re.escape(mask)}\s+)+{re.escape(mask)}", mask, text)  # one mask for a run
        return text, tokens, what

    def guard_context(self, base: dict[str, Any]) -> dict[str, Any]:
        """An event's context with its viewer-supplied strings cleaned (a new dict when changed)."""
        self._event_entries = []
        if not self.policy.viewer_checks:
            return base
        out = base
        user = base.get("user")
        if user:
            for key in ("nickname", "unique_id"):
                v = user.get(key)
                if isinstance(v, str) and v:
                    text, _, what = self.clean(v)
                    if what:
                        if out is base:
                            out = dict(base)
                            out["user"] = user = dict(user)
                        user[key] = text
                        self._note(f"user.{key}", what, text)
        event = base.get("event")
        if event is not None:
            v = event.get("text")
            if isinstance(v, str) and v:
                text, _, what = self.clean(v)
                if what:
                    if out is base:
                        out = dict(base)
                    out["event"] = event = dict(event)
                    event["text"] = text
                    self._note("event.text", what, text)
        args = base.get("args")
        if args:
            text, tokens, what = self.clean(" ".join(args))
            if what and tokens is not None:
                if out is base:
                    out = dict(base)
                out["args"] = tokens
                self._note("args", what, text)
        return out

    def _note(self, where: str, what: tuple[tuple[str, str], ...], text: str) -> None:
        for check, desc in what:
            self._event_entries.append({"check": check, "field": where, "found": desc,
                                        "done": "suppressed" if text == SENTINEL else "masked"})

    def mark(self, action: Action, rule: Any = None) -> None:
        """Record on a freshly rendered action what the event's cleaning did to it. An action of a
        rule that reads nothing but the cleaned context (no leaderboard, no variables a rule may
        have filled from one) needs no second scan in ``screen``: noted for this batch."""
        if rule is not None and self._reads_only_cleaned(rule):
            self._trusted.add(id(action))
        if not self._event_entries:
            return
        mask = self.policy.settings.mask
        if _contains(action, SENTINEL) or _contains(action, mask):
            action.data = {**action.data, "policy": [dict(e) for e in self._event_entries]}

    # -- 2. every action, before any sink ----------------------------------------------------

    def _reads_only_cleaned(self, rule: Any) -> bool:
        got = self._rule_trust.get(rule.id)
        if got is None or got[0] is not rule:
            sources = [a.text.source for a in rule.all_actions()] + [str(v) for a in rule.all_actions()
                                                                     for v in _sources(a.data)]
            ok = not (rule.needs & _UNCLEANED) and not any("vars" in src for src in sources)
            got = self._rule_trust[rule.id] = (rule, ok)
        return got[1]

    def screen(self, actions: list[Action]) -> list[Action]:
        if not actions or not self.policy.enabled:
            self._trusted.clear()
            return actions
        out = []
        for action in actions:
            if self._screen_one(action):
                out.append(action)
        self._trusted.clear()  # (a chat line the budget holds back is screened in full when it goes)
        return out

    def _screen_one(self, action: Action) -> bool:
        entries: list[dict[str, Any]] = list(action.data.get("policy", ())) if action.data else []
        before = len(entries)
        if self._sentinels and (SENTINEL in action.text or _contains(action, SENTINEL)):
            action.text = action.text.replace(SENTINEL, self.policy.settings.mask)
            action.data = _replace_data(action.data, SENTINEL, self.policy.settings.mask)
            return self._suppress(action, entries or [{"check": "link", "field": "?", "found": "?",
                                                       "done": "suppressed"}])
        checks = self.policy.checks_for(action.kind) if id(action) not in self._trusted else None
        if checks:
            text, done = self._screen_text(action.text, checks, "text", entries)
            if done == "nonsense":
                return self._suppress(action, entries)
            action.text = text
            if action.data:
                action.data = self._screen_data(action.data, checks, entries, "data")
        if self.policy.repeat_limit and action.kind in REPEAT_KINDS and action.text:
            if self._repeated(action):
                entries.append({"check": "repetition", "field": "text", "found": "the same line again",
                                "done": "suppressed"})
                return self._suppress(action, entries)
        for e in entries:
            self.masked[e["check"]] += 1
        if len(entries) > before:
            action.data = {**action.data, "policy": entries}
        if entries and self.tracer is not None:
            self.tracer.note(action, "policy", "masked " + _entries_text(entries))
        return True

    def _screen_text(self, text: str, checks: frozenset[str], where: str,
                     entries: list[dict[str, Any]]) -> tuple[str, str]:
        """Scan the tokens of ``text`` that are not the pack's own words (those are judged at load:
        the creator's text, and what it shares with a viewer's, is left alone); mask findings."""
        if not text:
            return text, ""
        f = fold(text)
        own, clean = self.policy.literal_tokens, self._clean_tokens
        foreign = [i for i, t in enumerate(f.raw) if t not in own and t.strip(_PUNCT) not in clean]
        if not foreign:
            return text, ""
        found = self.policy.detector.scan(" ".join(f.raw[i] for i in foreign), checks)
        if not found:
            return text, ""
        findings = [Finding(x.check, frozenset(foreign[i] for i in x.tokens), x.what) for x in found]
        findings = [x for x in findings if not self.policy.is_creator_text(f.shapes, x.tokens)]
        if not findings:
            return text, ""
        masked, _, what = self._masked(text, findings)
        for check, desc in what:
            entries.append({"check": check, "field": where, "found": desc,
                            "done": "suppressed" if masked == SENTINEL else "masked"})
        if masked == SENTINEL:
            return text, "nonsense"
        return masked, "masked"

    def _screen_data(self, value: Any, checks: frozenset[str], entries: list[dict[str, Any]], where: str) -> Any:
        if isinstance(value, str):
            text, done = self._screen_text(value, checks, where, entries)
            return self.policy.settings.mask if done == "nonsense" else text
        if isinstance(value, dict):
            return {k: (v if k == "policy" else self._screen_data(v, checks, entries, f"{where}.{k}"))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._screen_data(v, checks, entries, where) for v in value]
        return value

    def _repeated(self, action: Action) -> bool:
        s = self.policy.settings
        key = (action.kind, " ".join(fold(action.text).shapes))
        window = self._said.get(key)
        now = action.ts
        if window is None:
            if len(self._said) > self._said_limit:  # drop lines not said within the window
                self._said = {k: w for k, w in self._said.items() if w and w[-1] > now - s.repeat_window_ms}
                self._said_limit = max(4096, 2 * len(self._said))  # amortized: not again at once
            window = self._said[key] = deque()
        while window and window[0] <= now - s.repeat_window_ms:
            window.popleft()
        if len(window) >= (self.policy.repeat_limit or 0):
            return True
        window.append(now)
        return False

    def _suppress(self, action: Action, entries: list[dict[str, Any]]) -> bool:
        self.suppressed_actions += 1
        for e in entries:
            e["done"] = "suppressed"
        for check in dict.fromkeys(e["check"] for e in entries):
            self.suppressed_by[check] += 1
        action.data = {**action.data, "policy": entries}
        self.suppressed.append(action.to_dict())
        if self.tracer is not None:
            self.tracer.note(action, "policy", "suppressed " + _entries_text(entries))
        return False

    # -- 4. moderation ---------------------------------------------------------------------------

    def moderate(self, ev: Event, now: int) -> Event | None:
        """A ``moderation`` event for a chat line with banned words, links, payment or contact
        details, a flood of capitals or the same line again and again; else None."""
        s = self.policy.settings
        if not s.moderation or ev.user is None or not self.policy.enabled:
            return None
        text = str(ev.data.get("text", ""))
        if not text:
            return None
        key = ev.user.key
        reason = ""
        checks = self.policy.moderation_checks
        found = self.policy.detector.scan(text, checks) if checks else []
        if found:
            reason = found[0].check
        elif _caps_flood(text, s.caps_min, s.caps_ratio) and not text.startswith("!"):
            reason = "caps"
        if reason or not s.chat_repeat or len(text) < REPEAT_MIN_CHARS:
            return self._moderated(ev, now, reason, found) if reason else None
        shape = " ".join(fold(text).shapes)
        recent = self._chat_recent.get(key)
        if recent is None:
            recent = self._chat_recent[key] = deque()
            if len(self._chat_recent) > self._recent_limit:  # drop viewers quiet for the window
                self._chat_recent = {k: d for k, d in self._chat_recent.items()
                                     if d and d[-1][0] > now - s.chat_repeat_window_ms}
                self._recent_limit = max(20_000, 2 * len(self._chat_recent))
                self._chat_recent[key] = recent
        while recent and recent[0][0] <= now - s.chat_repeat_window_ms:
            recent.popleft()
        recent.append((now, shape))
        if len(shape.replace(" ", "")) >= REPEAT_MIN_CHARS \
                and sum(1 for _, t in recent if t == shape) >= s.chat_repeat:
            return self._moderated(ev, now, "repetition", found)
        return None

    def _moderated(self, ev: Event, now: int, reason: str, found: list[Finding]) -> Event:
        s = self.policy.settings
        assert ev.user is not None
        key = ev.user.key
        strikes = self.strikes[key] = self.strikes.get(key, 0) + 1
        until = now + s.mute_ms * min(strikes, 6)
        self.muted_until[key] = until
        self.moderations[reason] += 1
        return Event("moderation", ev.ts, ev.room_id, f"{ev.msg_id}:moderation" if ev.msg_id else "", ev.user,
                     {"reason": reason, "strikes": strikes, "muted_until": until,
                      "checks": sorted({x.check for x in found}) or [reason]})

    def user_fields(self, key: str, now: int) -> dict[str, Any]:
        until = self.muted_until.get(key)
        return {"strikes": self.strikes.get(key, 0), "muted_until": until,
                "muted": until is not None and now < until}

    # -- saved with the engine (bot.engine.snapshot) --------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"strikes": self.strikes, "muted_until": self.muted_until, "masked": dict(self.masked),
                "suppressed_by": dict(self.suppressed_by), "suppressed_actions": self.suppressed_actions,
                "moderations": dict(self.moderations)}

    def restore(self, snap: dict[str, Any] | None) -> None:
        if not snap:
            return
        self.strikes = {str(k): int(v) for k, v in snap.get("strikes", {}).items()}
        self.muted_until = {str(k): int(v) for k, v in snap.get("muted_until", {}).items()}
        self.masked.update({str(k): int(v) for k, v in snap.get("masked", {}).items()})
        self.suppressed_by.update({str(k): int(v) for k, v in snap.get("suppressed_by", {}).items()})
        self.suppressed_actions += int(snap.get("suppressed_actions", 0))
        self.moderations.update({str(k): int(v) for k, v in snap.get("moderations", {}).items()})

    # -- what happened -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"masked": dict(self.masked), "suppressed": dict(self.suppressed_by),
                "moderation": dict(self.moderations)}

    def summary(self) -> str:
        def part(c: Counter[str]) -> str:
            return f"{sum(c.values())}" + (f" ({', '.join(f'{k} {v}' for k, v in c.most_common())})" if c else "")
        by = f" (by check: {', '.join(f'{k} {v}' for k, v in self.suppressed_by.most_common())})" \
            if self.suppressed_by else ""
        return f"policy: masked {part(self.masked)}; suppressed {self.suppressed_actions} action(s){by}; " \
               f"moderation events {part(self.moderations)}"


def _entries_text(entries: list[dict[str, Any]]) -> str:
    """``link in nickname, banned-word in text``: what the guard found, never the viewer's words."""
    return ", ".join(dict.fromkeys(f"{e['check']} in {e['field']}" for e in entries))


_UNCLEANED = frozenset({"leaderboard", "vars"})  # context values not cleaned by guard_context


def _sources(value: Any) -> list[Any]:
    """The template sources inside an action's compiled ``data``."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _sources(v)]
    if isinstance(value, list):
        return [x for v in value for x in _sources(v)]
    return [getattr(value, "source", "")]


def _contains(action: Action, needle: str) -> bool:
    if needle in action.text:
        return True
    return _data_contains(action.data, needle)


def _data_contains(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, dict):
        return any(_data_contains(v, needle) for k, v in value.items() if k != "policy")
    if isinstance(value, list):
        return any(_data_contains(v, needle) for v in value)
    return False


def _replace_data(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replace_data(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_data(v, old, new) for v in value]
    return value


def _caps_flood(text: str, minimum: int, ratio: float) -> bool:
    if len(text) < minimum or text.islower():
        return False
    letters = [c for c in text if c.isalpha()]
    if len(letters) < minimum:
        return False
    upper = sum(1 for c in letters if c.isupper())
    lower = sum(1 for c in letters if c.islower())
    return upper + lower > 0 and upper / (upper + lower) >= ratio and upper >= minimum
