"""Sinks take actions out of the bot. Add one: a class with ``name``, ``send`` and ``close``."""

from bot.sinks.base import Sink
from bot.sinks.console import ConsoleSink
from bot.sinks.jsonl import JsonlSink

__all__ = ["ConsoleSink", "JsonlSink", "Sink"]
