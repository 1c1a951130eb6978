"""What the engine asks the outside world to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds every sink understands; rules may also name their own kinds.
BUILTIN_KINDS: tuple[str, ...] = ("say", "shoutout", "cta", "poll", "alert", "tts")


@dataclass(slots=True)
class Action:
    """One action record, written as ``{"ts","kind","text","rule","user","event_id","data"}``."""

    ts: int
    kind: str
    text: str
    rule: str
    user: str | None = None
    event_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "kind": self.kind,
            "text": self.text,
            "rule": self.rule,
            "user": self.user,
            "event_id": self.event_id,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action:
        return cls(
            ts=int(d["ts"]),
            kind=str(d["kind"]),
            text=str(d.get("text", "")),
            rule=str(d.get("rule", "")),
            user=d.get("user"),
            event_id=d.get("event_id"),
            data=dict(d.get("data") or {}),
        )
