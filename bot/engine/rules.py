"""Compiled rules: what the loader builds from YAML and the engine runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from bot.engine.templates import Text
from bot.engine.yamlfile import Pos

# Names a rule's conditions and texts may use.
COMMON_NAMES = frozenset({"stats", "since", "rule", "vars", "leaderboard", "snippets", "sponsor", "goals", "points"})
EVENT_NAMES = COMMON_NAMES | {"event", "user", "args", "tier", "milestone"}
TIMER_NAMES = COMMON_NAMES
POLL_NAMES = frozenset({"poll"})  # extra names in a poll's result text
QUIZ_NAMES = frozenset({"quiz", "winner"})  # extra names in a quiz's win and timeout texts

PERMISSIONS = ("everyone", "follower", "subscriber", "top_gifter", "moderator")


@dataclass(slots=True)
class ActionSpec:
    """One ``do:`` item. Plain kinds have a text and data; ``poll``, ``quiz``, ``set`` and ``incr``
    carry their own fields in ``options`` (texts there are compiled templates too)."""

    kind: str
    text: Text
    data: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    pos: Any = None  # where it is in its file (``livebot check`` names it)


@dataclass(slots=True)
class Tier:
    min: float
    actions: list[ActionSpec]
    name: str = ""


@dataclass(slots=True)
class Settings:
    """Rule-pack-wide settings (``settings:`` in one rule file)."""

    chat_per_minute: int = 0  # 0: no budget
    chat_burst: int = 3
    chat_dedup_ms: int = 0
    chat_max_wait_ms: int = 60_000
    top_n: int = 3
    snippets: dict[str, str] = field(default_factory=dict)
    goals: list[Any] = field(default_factory=list)  # bot.engine.goals.GoalSpec
    subathon: Any = None  # bot.engine.subathon.SubathonSpec
    credits: bool = False  # a rule has a '- credits:' action (bot/engine/credits.py)
    sounds: dict[str, str] = field(default_factory=dict)  # gift name or id → sound file (bot/engine/sounds.py)
    points: Any = None  # bot.engine.points.PointsSpec
    tts: Any = None  # bot.engine.voices.VoiceSpec
    policy: Any = None  # bot.policy.checks.PolicySettings (settings: policy:), None: the defaults


@dataclass(slots=True)
class Rule:
    id: str
    pos: Pos
    actions: list[ActionSpec]
    on: frozenset[str] = frozenset()  # event types; empty for timers
    every_ms: int = 0  # timer period
    jitter_ms: int = 0  # timers: a deterministic random delay up to this
    min_chat: int = 0  # timers: chat lines needed since the rule last fired
    after_ms: int = 0  # fires once after this much chat silence
    commands: frozenset[str] = frozenset()  # chat commands without the "!", lower-case
    permission: str = "everyone"
    when: Callable[[dict], bool] | None = None
    when_source: str = ""
    tiers: list[Tier] = field(default_factory=list)  # highest min first
    tier_by: Callable[[dict], Any] | None = None
    milestones: list[float] = field(default_factory=list)  # ascending
    milestone_of: Callable[[dict], Any] | None = None
    merge: Text | None = None  # one chat line for several queued lines of this rule
    priority: int = 0
    stop: bool = False
    cooldown_ms: int = 0
    user_cooldown_ms: int = 0
    max_per_hour: int = 0
    once_per_user: bool = False
    sponsor: dict[str, str] | None = None
    needs: frozenset[str] = frozenset()  # context names the rule's texts and conditions use
    order: int = 0  # position across all files: ties in priority keep file order

    @property
    def is_timer(self) -> bool:
        return self.every_ms > 0 or self.after_ms > 0

    def all_actions(self) -> list[ActionSpec]:
        return self.actions + [a for t in self.tiers for a in t.actions]


@dataclass(slots=True)
class RuleSet:
    """Every loaded rule, indexed by the event type it listens to."""

    rules: list[Rule]
    files: list[str] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    by_type: dict[str, list[Rule]] = field(default_factory=dict)
    timers: list[Rule] = field(default_factory=list)
    by_id: dict[str, Rule] = field(default_factory=dict)
    policy: Any = None  # bot.policy.guard.Policy, built by the loader; None: the default packs

    def __post_init__(self) -> None:
        ranked = sorted(self.rules, key=lambda r: (-r.priority, r.order))
        self.by_type = {}
        for rule in ranked:
            for event_type in rule.on:
                self.by_type.setdefault(event_type, []).append(rule)
        self.timers = [r for r in ranked if r.is_timer]
        self.by_id = {r.id: r for r in self.rules}

    def get(self, rule_id: str) -> Rule | None:
        return self.by_id.get(rule_id)
