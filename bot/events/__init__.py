"""Normalized events and the wire formats they are read from."""

from bot.events.model import EVENT_TYPES, Event, User

__all__ = ["EVENT_TYPES", "Event", "User"]
