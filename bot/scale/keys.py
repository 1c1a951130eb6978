"""Redis key names for one deployment (``prefix``, default ``livebot``), in one place.

Per room (``{room}`` is checked by ``check_room``: it becomes a key part and a folder name)::

    {p}:events:{room}     stream of normalized events (ingest XADDs, workers read in group `workers`)
    {p}:actions:{room}    stream of the actions the rules fired (exactly once per action)
    {p}:owner:{room}      the lease: which worker processes the room (SET NX PX, renewed, fenced)
    {p}:done:{room}       hash of action markers since the room's last checkpoint (de-duplication)
    {p}:snapshot:{room}   hash {saved_at, data}: the engine's state at the acknowledged position
    {p}:lifetime:{room}   hash viewer -> lifetime totals over the room's finished streams
    {p}:sessions:{room}   list of finished streams' summaries, newest first

Global: ``{p}:rooms`` (set of room names), ``{p}:workers`` (zset: worker id -> last heartbeat,
Redis server time in ms), ``{p}:sessions`` (every room's summaries, newest first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOM_NAME = re.compile(r"^[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,99}$")
PREFIX_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_room(room: str) -> str:
    """A room name usable as a key part and a folder name, or ValueError."""
    if not isinstance(room, str) or not ROOM_NAME.match(room):
        raise ValueError(f"bad room name {str(room)[:40]!r}: use letters, digits, '_', '.', '@', '-' "
                         "(at most 100, not starting with '.' or '-')")
    return room


@dataclass(frozen=True)
class Keys:
    prefix: str = "livebot"

    @property
    def rooms(self) -> str:
        return f"{self.prefix}:rooms"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def all_sessions(self) -> str:
        return f"{self.prefix}:sessions"

    def events(self, room: str) -> str:
        return f"{self.prefix}:events:{room}"

    def actions(self, room: str) -> str:
        return f"{self.prefix}:actions:{room}"

    def owner(self, room: str) -> str:
        return f"{self.prefix}:owner:{room}"

    def done(self, room: str) -> str:
        return f"{self.prefix}:done:{room}"

    def snapshot(self, room: str) -> str:
        return f"{self.prefix}:snapshot:{room}"

    def lifetime(self, room: str) -> str:
        return f"{self.prefix}:lifetime:{room}"

    def sessions(self, room: str) -> str:
        return f"{self.prefix}:sessions:{room}"
