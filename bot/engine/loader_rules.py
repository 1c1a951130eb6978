"""One rule of a rule file, for the rule loader (bot/engine/loader.py): its id, trigger (``on``,
``every``, ``after`` or ``command``), the per-rule checks (priority, stop, cooldown, once, permission,
max_per_hour, sponsor), ``when`` and ``merge``, milestones and tiers. ``_RuleParser`` is a mixin of
``_Loader``; a rule with any problem (or ``enabled: false``) is left out of the rule set."""

from __future__ import annotations

import re
from typing import Any, Callable

from bot.engine.loader_checks import _as_list
from bot.engine.rules import EVENT_NAMES, PERMISSIONS, TIMER_NAMES, Rule, Tier
from bot.engine.templates import compile_value
from bot.engine.views import context_fields
from bot.engine.yamlfile import Pos, YList, YMap, did_you_mean
from bot.events.model import EVENT_TYPES

RULE_KEYS = ("id", "description", "enabled", "on", "every", "after", "command", "when", "do", "tiers", "tier_by",
             "milestones", "priority", "stop", "cooldown", "once", "permission", "max_per_hour", "jitter",
             "min_chat", "sponsor", "merge")
TRIGGERS = ("on", "every", "after", "command")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _RuleParser:
    def _rule(self, raw: Any, pos: Pos) -> Rule | None:
        if not isinstance(raw, YMap):
            self._problem(pos, "each rule is a mapping with at least 'id' and 'do'")
            return None
        before = len(self.problems)
        rid = raw.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            self._problem(raw.value_pos.get("id", raw.pos), "every rule needs an 'id': letters, digits, '_', '-' or '.'")
            rid = None
        elif rid in self._ids:
            self._problem(raw.value_pos["id"], f"duplicate rule id (first defined at {self._ids[rid]})", rid)
        else:
            self._ids[rid] = raw.value_pos["id"]
        self._keys(raw, RULE_KEYS, "key", rid)

        def bad(key: str, message: str) -> None:
            self._problem(raw.value_pos.get(key, raw.pos), message, rid)

        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            bad("enabled", "'enabled' must be true or false")
        rule = Rule(id=rid or "?", pos=raw.pos, actions=[], order=len(self.rules))
        self._triggers(raw, rule, rid, bad)

        priority = raw.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            bad("priority", "'priority' must be a whole number (higher runs first)")
        else:
            rule.priority = priority
        for flag in ("stop",):
            if not isinstance(raw.get(flag, False), bool):
                bad(flag, f"'{flag}' must be true or false")
        rule.stop = raw.get("stop") is True
        self._cooldown(raw, rule, rid)
        rule.max_per_hour = self._int(raw, "max_per_hour", 1, rid) or 0
        once = raw.get("once")
        if once is not None and once != "user":
            bad("once", "'once' can only be 'user' (fire at most once per viewer per session)")
        rule.once_per_user = once == "user"
        if rule.once_per_user and rule.is_timer:
            bad("once", "'once: user' needs an event rule; a timer has no user")
        permission = raw.get("permission", "everyone")
        if permission not in PERMISSIONS:
            bad("permission", f"unknown permission '{permission}'" + did_you_mean(str(permission), PERMISSIONS))
        elif permission != "everyone" and rule.is_timer:
            bad("permission", "'permission' needs an event rule; a timer has no user")
        else:
            rule.permission = permission
        if "sponsor" in raw:
            rule.sponsor = self._sponsor(raw, rid)
            if rule.sponsor is not None and "max_per_hour" not in raw:
                bad("sponsor", "a sponsor segment needs 'max_per_hour': at most how many times an hour it may run")

        allowed = TIMER_NAMES if rule.is_timer else EVENT_NAMES
        self._fields = context_fields(None if rule.is_timer else rule.on)
        needs: set[str] = set()
        if "when" in raw:
            rule.when_source = str(raw["when"])
            rule.when = self._expr(raw["when"], raw.value_pos["when"], "when", rid, allowed, needs)
        if "merge" in raw:
            merge_pos = raw.value_pos["merge"]
            self._kind = "say"  # (for the policy guard: a merged line is a chat line)
            rule.merge = self._text(raw["merge"], merge_pos, rid, frozenset({"names", "count"}), set())
        self._kind = None
        self._milestones(raw, rule, rid, allowed, needs)
        has_do, has_tiers = "do" in raw, "tiers" in raw
        if has_do == has_tiers:
            self._problem(raw.pos, "a rule needs 'do' (a list of actions) or 'tiers', not both" if has_do
                          else "a rule needs 'do' (a list of actions) or 'tiers'", rid)
        elif has_do:
            rule.actions = self._actions(raw["do"], raw.value_pos["do"], rid, allowed, needs)
        else:
            self._tiers(raw, rule, rid, allowed, needs)
        rule.needs = frozenset(needs & allowed)
        if rule.sponsor is not None:
            rule.needs |= {"sponsor"}
            self._policy_literals += list(rule.sponsor.values())
        if rule.every_ms and "every" in raw:
            kinds = frozenset(a.kind for a in rule.all_actions())
            self._policy_timers.append((raw.value_pos["every"], rule.id, rule.every_ms, kinds))
        if len(self.problems) > before or not enabled:
            return None
        return rule

    def _triggers(self, raw: YMap, rule: Rule, rid: str | None, bad: Callable[[str, str], None]) -> None:
        triggers = [k for k in TRIGGERS if k in raw]
        if len(triggers) != 1:
            what = "one of" if not triggers else "only one of"
            self._problem(raw.pos, f"a rule needs {what} 'on' (event types), 'every' (a timer), "
                                   "'after' (chat silence) or 'command'", rid)
        if "on" in raw:
            types = _as_list(raw["on"])
            for t in types:
                if not isinstance(t, str) or t not in EVENT_TYPES:
                    bad("on", f"unknown event type '{t}'" + did_you_mean(str(t), sorted(EVENT_TYPES)))
            rule.on = frozenset(t for t in types if isinstance(t, str))
        if "every" in raw:
            rule.every_ms = self._duration(raw, "every", rid) or 0
            if "every" in raw and rule.every_ms < 1000:
                bad("every", "a timer period must be at least 1s")
        if "after" in raw:
            rule.after_ms = self._duration(raw, "after", rid) or 0
            if rule.after_ms < 1000:
                bad("after", "a silence period must be at least 1s")
        for key in ("jitter", "min_chat"):
            if key in raw and "every" not in raw:
                bad(key, f"'{key}' goes with 'every'")
        if "jitter" in raw:
            rule.jitter_ms = self._duration(raw, "jitter", rid) or 0
            if rule.every_ms and rule.jitter_ms >= rule.every_ms:
                bad("jitter", "'jitter' must be shorter than the timer period")
        rule.min_chat = self._int(raw, "min_chat", 0, rid) or 0
        if "command" in raw:
            names = _as_list(raw["command"])
            if not names or not all(isinstance(n, str) and n.strip().lstrip("!").strip() for n in names):
                bad("command", "'command' is a command name such as '!help', or a list of names")
            else:
                rule.commands = frozenset(n.strip().lstrip("!").lower() for n in names)
                rule.on = frozenset({"chat"})

    def _cooldown(self, raw: YMap, rule: Rule, rid: str | None) -> None:
        value = raw.get("cooldown")
        if value is None:
            return
        if isinstance(value, YMap):
            self._keys(value, ("global", "user"), "cooldown", rid)
            if "global" in value:
                rule.cooldown_ms = self._duration(value, "global", rid) or 0
            if "user" in value:
                rule.user_cooldown_ms = self._duration(value, "user", rid) or 0
            return
        rule.cooldown_ms = self._duration(raw, "cooldown", rid) or 0

    def _sponsor(self, raw: YMap, rid: str | None) -> dict[str, str] | None:
        s = raw["sponsor"]
        if not isinstance(s, YMap):
            self._problem(raw.value_pos["sponsor"], "'sponsor' is a mapping: name, disclosure, code, link", rid)
            return None
        self._keys(s, ("name", "disclosure", "code", "link"), "sponsor key", rid)
        disclosure = s.get("disclosure")
        if not isinstance(disclosure, str) or not disclosure.strip():
            self._problem(s.pos, "a sponsor segment needs a 'disclosure' text such as '#ad' "
                                 "(viewers must be told it is paid promotion)", rid)
            return None
        if not isinstance(s.get("name"), str) or not s["name"].strip():
            self._problem(s.pos, "a sponsor segment needs the sponsor's 'name'", rid)
            return None
        return {k: str(s.get(k, "")) for k in ("name", "disclosure", "code", "link")}

    def _milestones(self, raw: YMap, rule: Rule, rid: str | None, allowed: frozenset[str], needs: set[str]) -> None:
        m = raw.get("milestones")
        if m is None:
            return
        if not isinstance(m, YMap) or "of" not in m or "at" not in m:
            self._problem(raw.value_pos["milestones"], "'milestones' needs 'of' (an expression, e.g. "
                                                       "user.diamonds) and 'at' (a list of numbers)", rid)
            return
        self._keys(m, ("of", "at"), "milestones key", rid)
        if rule.is_timer:
            self._problem(raw.value_pos["milestones"], "'milestones' needs an event rule", rid)
        at = m["at"]
        if not isinstance(at, list) or not at or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          for x in at):
            self._problem(m.value_pos["at"], "'at' must be a list of numbers", rid)
        else:
            rule.milestones = sorted(float(x) for x in at)
        rule.milestone_of = self._expr(m["of"], m.value_pos["of"], "of", rid, allowed, needs, compile_value)

    def _tiers(self, raw: YMap, rule: Rule, rid: str | None, allowed: frozenset[str], needs: set[str]) -> None:
        items = raw["tiers"]
        if not isinstance(items, YList) or not items:
            self._problem(raw.value_pos["tiers"], "'tiers' is a list of {min: number, do: [...]}", rid)
            return
        tier_allowed = allowed | {"tier"}
        for item, pos in zip(items, items.item_pos):
            if not isinstance(item, YMap) or "min" not in item or "do" not in item:
                self._problem(pos, "each tier needs 'min' (a number) and 'do' (a list of actions)", rid)
                continue
            self._keys(item, ("min", "name", "do"), "tier key", rid)
            low = item["min"]
            if isinstance(low, bool) or not isinstance(low, (int, float)):
                self._problem(item.value_pos["min"], "'min' must be a number", rid)
                continue
            actions = self._actions(item["do"], item.value_pos["do"], rid, tier_allowed, needs)
            rule.tiers.append(Tier(min=float(low), actions=actions, name=str(item.get("name", low))))
        rule.tiers.sort(key=lambda t: -t.min)
        if "tier_by" in raw:
            rule.tier_by = self._expr(raw["tier_by"], raw.value_pos["tier_by"], "tier_by", rid, allowed, needs,
                                      compile_value)
        elif rule.on == {"gift"} or rule.on == {"gift_progress"}:
            rule.tier_by = compile_value("event.total_diamonds", allowed)
            needs.add("event")
        else:
            self._problem(raw.value_pos["tiers"], "'tiers' needs 'tier_by' (an expression) unless the rule "
                                                  "is on gifts, where it defaults to event.total_diamonds", rid)
