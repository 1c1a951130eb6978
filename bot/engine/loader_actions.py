"""The action specs of a rule's ``do:`` list, for the rule loader (bot/engine/loader.py): the
``- <kind>: text`` and ``- kind: <your kind>`` forms, and the special kinds (poll, quiz, set, incr, and the
hand-offs to subathon, sound, redeem, giveaway, voice and variants in their own modules). ``_ActionParser``
is a mixin of ``_Loader``; each action becomes an ``ActionSpec`` or a reported problem."""

from __future__ import annotations

import re
from typing import Any

from bot.actions.model import BUILTIN_KINDS
from bot.engine.giveaways import GIVEAWAY_KEYS, parse_giveaway
from bot.engine.loader_checks import _as_list, _line
from bot.engine.sounds import SOUND_NAME_PROBLEM, sound_name_ok
from bot.engine.subathon import parse_subathon_action
from bot.engine.variants import parse_variants
from bot.engine.rules import POLL_NAMES, QUIZ_NAMES, TIMER_NAMES, ActionSpec
from bot.engine.templates import Text
from bot.engine.yamlfile import Pos, YList, YMap, did_you_mean
from bot.integrations.commands import COMMAND_KINDS, check_command_template

ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "": ("kind", "text", "data", "variants", "pick"),  # (variants, pick: bot/engine/variants.py)
    "poll": ("text", "options", "duration", "result", "data"),
    "quiz": ("text", "answer", "duration", "win", "timeout", "data"),
    "set": ("var", "value", "per"),
    "incr": ("var", "by", "per"),
    "giveaway": GIVEAWAY_KEYS,  # bot/engine/giveaways.py
}
SPECIAL_KINDS = ("poll", "quiz", "set", "incr", "subathon", "credits", "sound", "redeem", "giveaway", "voice")
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


class _ActionParser:
    def _actions(self, items: Any, pos: Pos, rid: str | None, allowed: frozenset[str],
                 needs: set[str]) -> list[ActionSpec]:
        if not isinstance(items, YList) or not items:
            self._problem(pos, "'do' must be a non-empty list of actions", rid)
            return []
        out = []
        for item, item_pos in zip(items, items.item_pos):
            spec = self._action(item, item_pos, rid, allowed, needs)
            if spec is not None:
                out.append(spec)
        return out

    def _action(self, item: Any, pos: Pos, rid: str | None, allowed: frozenset[str],
                needs: set[str]) -> ActionSpec | None:
        self._kind = None  # (set below for the texts of this action; a var's value is not output)
        kinds = BUILTIN_KINDS + SPECIAL_KINDS
        usage = (f"an action is '- <kind>: text' with kind one of {', '.join(kinds)}, "
                 "or '- kind: <your kind>' with 'text' and 'data'")
        if not isinstance(item, YMap) or not item:
            self._problem(pos, usage, rid)
            return None
        if "kind" in item:
            body, kind, keys = item, item["kind"], ACTION_KEYS[""]
            if not isinstance(kind, str) or not _KIND.match(kind) or kind in SPECIAL_KINDS:
                self._problem(item.value_pos["kind"], "'kind' must be a lower-case name such as confetti "
                                                      "(poll, quiz, set and incr are written '- poll: ...')", rid)
                return None
        else:
            if len(item) != 1:
                self._problem(pos, usage, rid)
                return None
            kind = next(iter(item))
            if kind not in kinds:
                self._problem(item.key_pos[kind], f"unknown action '{kind}'" + did_you_mean(kind, kinds + ("kind",)), rid)
                return None
            keys = ACTION_KEYS.get(kind, ACTION_KEYS[""][1:])
            value = item[kind]
            if kind == "subathon":
                return parse_subathon_action(self, value, item.value_pos[kind], rid)
            if kind == "credits":  # the engine fills its names (bot/engine/credits.py)
                self.settings.credits = True
            if kind == "voice":  # a viewer picks a TTS voice (bot/engine/voices.py)
                self.__dict__.setdefault("_voice_uses", []).append((item.value_pos[kind], rid))
                if allowed is TIMER_NAMES:
                    self._problem(item.value_pos[kind], "'voice' needs an event rule (a viewer picks)", rid)
            if kind == "redeem":  # spends points on a perk (bot/engine/points.py): needs settings: points:
                self.__dict__.setdefault("_points_uses", []).append((item.value_pos[kind], rid, "redeem"))
                if allowed is TIMER_NAMES:
                    self._problem(item.value_pos[kind], "'redeem' needs an event rule (a viewer spends)", rid)
            if isinstance(value, YMap):
                body = value
            elif kind in ("poll", "quiz", "set", "incr"):
                self._problem(item.value_pos[kind], f"'{kind}' takes a mapping of {', '.join(keys)}", rid)
                return None
            else:
                body = YMap(text=value)
                body.pos, body.key_pos, body.value_pos = pos, {"text": pos}, {"text": item.value_pos[kind]}
        self._keys(body, keys, f"{kind} key", rid)
        vpos = body.value_pos
        spec = ActionSpec(kind=kind, text=Text(""))
        if kind in ("set", "incr"):
            return self._var_action(body, spec, rid, allowed, needs)
        self._kind = kind  # the texts below are checked by the policy guard as this kind's (bot.policy)
        text = self._text(body.get("text", ""), vpos.get("text", pos), rid, allowed, needs)
        data = body.get("data", {})
        if not isinstance(data, dict):
            self._problem(vpos.get("data", pos), "'data' must be a mapping", rid)
            return None
        compiled_data = self._data(data, vpos.get("data", pos), rid, allowed, needs)
        self._kind = "say" if kind in ("poll", "quiz") else None  # their result/win/timeout lines are chat
        if text is None or compiled_data is None:
            return None
        if kind in COMMAND_KINDS:  # a game command: viewer text only through the quoting filter
            for lineno, message in check_command_template(text.source):
                self._problem(_line(vpos.get("text", pos), lineno), message, rid)
        spec.text, spec.data, spec.pos = text, compiled_data, pos
        if kind == "sound" and not sound_name_ok(text.source):  # (bot/engine/sounds.py)
            self._problem(vpos.get("text", pos), SOUND_NAME_PROBLEM, rid)
            return None
        if ("variants" in body or "pick" in body) and not parse_variants(self, body, spec, rid, allowed, needs):
            return None
        if kind == "poll":
            return self._poll(body, spec, rid, allowed, needs)
        if kind == "quiz":
            return self._quiz(body, spec, rid, allowed, needs)
        if kind == "giveaway":
            return parse_giveaway(self, body, spec, rid, needs)
        return spec

    def _var_action(self, body: YMap, spec: ActionSpec, rid: str | None, allowed: frozenset[str],
                    needs: set[str]) -> ActionSpec | None:
        var = body.get("var")
        if not isinstance(var, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
            self._problem(body.value_pos.get("var", body.pos), f"'{spec.kind}' needs 'var': a name", rid)
            return None
        per = body.get("per", "session")
        if per not in ("session", "user"):
            self._problem(body.value_pos["per"], "'per' is 'session' (one value) or 'user' (one per viewer)", rid)
            return None
        if per == "user" and allowed is TIMER_NAMES:
            self._problem(body.value_pos["per"], "'per: user' needs an event rule", rid)
            return None
        key = "value" if spec.kind == "set" else "by"
        default = "" if spec.kind == "set" else 1
        source = body.get(key, default)
        value = self._text(source, body.value_pos.get(key, body.pos), rid, allowed, needs)
        if value is None:
            return None
        spec.options = {"var": var, "per": per, key: value}
        return spec

    def _poll(self, body: YMap, spec: ActionSpec, rid: str | None, allowed: frozenset[str],
              needs: set[str]) -> ActionSpec | None:
        options = body.get("options")
        if not isinstance(options, list) or not 2 <= len(options) <= 9 or not all(
                isinstance(o, (str, int, float)) and not isinstance(o, bool) for o in options):
            self._problem(body.value_pos.get("options", body.pos), "a poll needs 'options': 2 to 9 answers", rid)
            return None
        duration = self._duration(body, "duration", rid) if "duration" in body else 60_000
        result = self._text(body.get("result", "Poll closed: {{ poll.winner }} wins with {{ poll.top }} vote(s)."),
                            body.value_pos.get("result", body.pos), rid, allowed | POLL_NAMES, needs)
        if duration is None or result is None:
            return None
        spec.options = {"options": [str(o) for o in options], "duration": duration, "result": result}
        return spec

    def _quiz(self, body: YMap, spec: ActionSpec, rid: str | None, allowed: frozenset[str],
              needs: set[str]) -> ActionSpec | None:
        answers = _as_list(body.get("answer", []))
        if not answers or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in answers):
            self._problem(body.value_pos.get("answer", body.pos), "a quiz needs 'answer': the answer or a list", rid)
            return None
        duration = self._duration(body, "duration", rid) if "duration" in body else 60_000
        names = allowed | QUIZ_NAMES
        win = self._text(body.get("win", "{{ winner.nickname }} got it first: {{ quiz.answer }}!"),
                         body.value_pos.get("win", body.pos), rid, names, needs)
        timeout = self._text(body.get("timeout", "Time's up! The answer was {{ quiz.answer }}."),
                             body.value_pos.get("timeout", body.pos), rid, names, needs)
        if duration is None or win is None or timeout is None:
            return None
        spec.options = {"answers": [str(a) for a in answers], "duration": duration, "win": win, "timeout": timeout}
        return spec
