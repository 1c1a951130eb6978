"""Actions: the records rules emit, and the dispatcher that hands them to sinks."""

from bot.actions.model import BUILTIN_KINDS, Action

__all__ = ["BUILTIN_KINDS", "Action"]
