"""Compiled rules: what the loader builds from YAML and the engine runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from bot.engine.templates import Text
from bot.engine.yamlfile import Pos

# Names a rule's conditions and texts may use.
EVENT_NAMES = frozenset({"event", "user", "stats", "since", "args", "rule"})
TIMER_NAMES = frozenset({"stats", "since", "rule"})


@dataclass(slots=True)
class ActionSpec:
    """One ``do:`` item: a kind, a text template and a data dict whose strings are templates."""

    kind: str
    text: Text
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Rule:
    id: str
    pos: Pos
    actions: list[ActionSpec]
    on: frozenset[str] = frozenset()  # event types; empty for timers
    every_ms: int = 0  # timer period; 0 for event rules
    commands: frozenset[str] = frozenset()  # chat commands without the "!", lower-case
    when: Callable[[dict], bool] | None = None
    when_source: str = ""
    priority: int = 0
    stop: bool = False
    cooldown_ms: int = 0
    user_cooldown_ms: int = 0
    once_per_user: bool = False
    needs: frozenset[str] = frozenset()  # context names the rule's texts and condition use
    order: int = 0  # position across all files: ties in priority keep file order

    @property
    def is_timer(self) -> bool:
        return self.every_ms > 0


@dataclass(slots=True)
class RuleSet:
    """Every loaded rule, indexed by the event type it listens to."""

    rules: list[Rule]
    files: list[str] = field(default_factory=list)
    by_type: dict[str, list[Rule]] = field(default_factory=dict)
    timers: list[Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        ranked = sorted(self.rules, key=lambda r: (-r.priority, r.order))
        self.by_type = {}
        for rule in ranked:
            for event_type in rule.on:
                self.by_type.setdefault(event_type, []).append(rule)
        self.timers = [r for r in ranked if r.is_timer]

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
