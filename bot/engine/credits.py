"""First-time chatters and the end-of-stream credits roll.

- ``first_chat``: the engine makes this event for a viewer's first chat line *ever*: their first
  this stream, and none in earlier streams by the lifetime totals (``state: database:`` for
  ``livebot run``, ``--state`` for a replay; without them every viewer's first line of the stream
  counts). ``event.text`` is the line. A rule highlights it (``- highlight: ...`` on the overlay).
- ``- credits: "Thanks for watching!"``: an action whose ``data.sections`` the engine fills: top
  gifters, new followers, moderators, battle MVPs (``battle_end`` events' ``data.mvp``), first-time
  chatters. The overlay rolls them over the screen. Typically ``on: live_end``, or a command.
"""

from __future__ import annotations

from typing import Any

from bot.events.model import CHAT, FIRST_CHAT, FOLLOW, Event

MAX_NAMES = 200  # per section: a roll of a huge stream stays a roll
BATTLE_END = "battle_end"  # (issue 13's battle events; see EVENTS-SPEC)


def _name(user: Any) -> str:
    if isinstance(user, dict):
        return str(user.get("nickname") or user.get("unique_id") or "")[:64]
    return str(user.nickname or user.unique_id)[:64]


class Credits:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.followers: dict[str, str] = {}  # viewer key → name, in order
        self.moderators: dict[str, str] = {}
        self.mvps: dict[str, str] = {}
        self.first_chatters: dict[str, str] = {}

    def on_event(self, ev: Event, made: list[Event]) -> None:
        u = ev.user
        if u is not None:
            key = u.key
            if u.is_moderator and key not in self.moderators and len(self.moderators) < MAX_NAMES:
                self.moderators[key] = _name(u)
            if ev.type == FOLLOW and key not in self.followers and len(self.followers) < MAX_NAMES:
                self.followers[key] = _name(u)
            elif ev.type == CHAT and self._first_ever(key):
                if len(self.first_chatters) < MAX_NAMES:
                    self.first_chatters[key] = _name(u)
                made.append(Event(FIRST_CHAT, ev.ts, ev.room_id, f"{ev.msg_id}:first", u,
                                  {"text": ev.data.get("text", "")}))
        if ev.type == BATTLE_END:
            mvp = ev.data.get("mvp")
            if isinstance(mvp, dict):
                key = str(mvp.get("user_id") or mvp.get("unique_id") or "")
                if key and key not in self.mvps and len(self.mvps) < MAX_NAMES:
                    self.mvps[key] = _name(mvp)

    def _first_ever(self, key: str) -> bool:
        vs = self.state.viewers_by_key.get(key)
        if vs is None or vs.chats != 1:
            return False
        before = self.state.lifetime.get(key) or {}
        return not before.get("chats")

    def sections(self, board: Any, top: int = 10) -> list[dict[str, Any]]:
        gifters = [f"{g['nickname'] or g['unique_id']} ({g['diamonds']:,})" for g in board.top(top)]
        out = [("Top gifters", gifters), ("New followers", list(self.followers.values())),
               ("Moderators", list(self.moderators.values())), ("Battle MVPs", list(self.mvps.values())),
               ("First time here", list(self.first_chatters.values()))]
        return [{"title": title, "names": names} for title, names in out if names]

    def snapshot(self) -> dict[str, Any]:
        return {"followers": self.followers, "moderators": self.moderators, "mvps": self.mvps,
                "first_chatters": self.first_chatters}

    def restore(self, data: dict[str, Any]) -> None:
        for name in ("followers", "moderators", "mvps", "first_chatters"):
            setattr(self, name, {str(k): str(v) for k, v in data[name].items()})
