"""Polls and quizzes that chat answers: one open at a time of each.

An open poll or quiz survives a restart: ``bot.engine.snapshot`` keeps it (see there)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bot.engine.rules import Rule
from bot.engine.templates import Text

_PUNCT = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """Case, accents, punctuation and spacing do not matter: ``" Paris!! "`` → ``"paris"``."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", text).split())


@dataclass
class Poll:
    rule: Rule
    question: str
    options: list[str]
    ends: int
    result: Text
    context: dict[str, Any]  # the opening rule's context, for the result text
    votes: dict[str, int] = field(default_factory=dict)  # viewer key -> option index
    update_ms: int = 0  # live counts (``poll_update``) at most once per this many ms; 0: none
    opened: int | None = None  # engine time (ms) it opened at
    _shown_at: int | None = field(default=None, repr=False)  # when counts were last sent
    _changed_at: int | None = field(default=None, repr=False)  # first change not sent yet

    def vote(self, voter: str, text: str, now: int | None = None) -> bool:
        """Count a chat line as a vote if it is an option's number or its words; last vote counts."""
        answer = text.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(self.options):
            self._count(voter, int(answer) - 1, now)
            return True
        wanted = normalize_answer(answer)
        for i, option in enumerate(self.options):
            if wanted and normalize_answer(option) == wanted:
                self._count(voter, i, now)
                return True
        return False

    def _count(self, voter: str, index: int, now: int | None) -> None:
        if self.votes.get(voter) != index:
            self.votes[voter] = index
            if now is not None and self._changed_at is None:
                self._changed_at = now

    def update_due(self) -> int | None:
        """When the next ``poll_update`` is due: the first change is sent at once, later ones
        at most once per ``update_ms``. None while nothing changed (or updates are off)."""
        if not self.update_ms or self._changed_at is None:
            return None
        if self._shown_at is None:
            return self._changed_at
        return max(self._changed_at, self._shown_at + self.update_ms)

    def update(self, now: int) -> tuple[str, dict[str, Any]]:
        """The text and data of a ``poll_update`` action: ``{"question", "votes", "total"}``."""
        self._shown_at, self._changed_at = now, None
        counts = self.counts()
        total = sum(counts)
        text = " · ".join(f"{o} {c}" for o, c in zip(self.options, counts)) + f" ({total} vote{'s' * (total != 1)})"
        return text, {"question": self.question, "votes": dict(zip(self.options, counts)), "total": total}

    def counts(self) -> list[int]:
        """Votes per option, in the options' order."""
        counts = [0] * len(self.options)
        for i in self.votes.values():
            counts[i] += 1
        return counts

    def tally(self) -> dict[str, Any]:
        """What the result text sees as ``poll``."""
        counts = self.counts()
        top = max(counts)
        winners = [o for o, c in zip(self.options, counts) if c == top] if top else []
        return {
            "question": self.question,
            "options": list(self.options),
            "votes": dict(zip(self.options, counts)),
            "total": sum(counts),
            "top": top,
            "winners": winners,
            "winner": " & ".join(winners) if winners else "nobody",
            "tie": len(winners) > 1,
        }


@dataclass
class Quiz:
    rule: Rule
    question: str
    answers: set[str]
    shown_answer: str
    ends: int
    win: Text
    timeout: Text
    context: dict[str, Any]
    opened: int | None = None  # engine time (ms) it opened at

    def is_correct(self, text: str) -> bool:
        return normalize_answer(text) in self.answers
