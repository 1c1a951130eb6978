"""Polls and quizzes that chat answers: one open at a time of each."""

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

    def vote(self, voter: str, text: str) -> bool:
        """Count a chat line as a vote if it is an option's number or its words; last vote counts."""
        answer = text.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(self.options):
            self.votes[voter] = int(answer) - 1
            return True
        wanted = normalize_answer(answer)
        for i, option in enumerate(self.options):
            if wanted and normalize_answer(option) == wanted:
                self.votes[voter] = i
                return True
        return False

    def tally(self) -> dict[str, Any]:
        """What the result text sees as ``poll``."""
        counts = [0] * len(self.options)
        for i in self.votes.values():
            counts[i] += 1
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

    def is_correct(self, text: str) -> bool:
        return normalize_answer(text) in self.answers
