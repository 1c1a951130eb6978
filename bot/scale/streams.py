"""The room streams in Redis, as a library (ingest, the worker, tests and the benchmark use it):
the stream's record format (``encode_event`` / ``decode_entry`` / ``decode_value``: the orjson of
``Event.to_dict()`` in the field ``e``), making a room known to the workers (``register_room``:
the rooms set, its stream and consumer group at id 0), appending events in one pipelined round
trip (``append_events``; ``append_checked`` also asks whether Redis still knows the room), and
reading a stream back (``read_events``). Every name here is also importable from
``bot.scale.ingest``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import orjson

from bot.clock import WallClock
from bot.events.model import Event
from bot.events.wire import decode_line
from bot.scale.keys import Keys, check_room

FIELD = b"e"


def encode_event(ev: Event, keep_raw: bool = False) -> bytes:
    return orjson.dumps(ev.to_dict(with_raw=keep_raw))


def decode_entry(fields: dict[bytes, bytes] | Sequence[bytes]) -> Event:
    """The event of a stream entry (its fields as a dict, or Redis' flat [field, value, ...]).
    Raises ValueError (``DecodeError``) or KeyError for an entry that is not ours."""
    if isinstance(fields, dict):
        raw = fields[FIELD]
    else:
        raw = dict(zip(fields[::2], fields[1::2]))[FIELD]
    return decode_value(raw)


def decode_value(raw: bytes) -> Event:
    """The event of one entry's ``e`` field; ValueError (``DecodeError``) if it is not one."""
    [ev] = decode_line(raw)
    return ev


async def register_room(client: Any, room: str, *, prefix: str = "livebot", group: str = "workers") -> None:
    """Make ``room`` known to the workers: in the rooms set, with its stream and consumer group."""
    import redis

    keys = Keys(prefix)
    check_room(room)
    try:
        await client.xgroup_create(keys.events(room), group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    await client.sadd(keys.rooms, room)


async def append_events(client: Any, room: str, events: Iterable[Event], *, prefix: str = "livebot",
                        maxlen: int = 100_000, keep_raw: bool = False) -> list[bytes]:
    """Append events to the room's stream in one pipelined round trip; returns their entry ids.
    Events without a receive time get the current time (as a live source would stamp them)."""
    ids, _ = await append_checked(client, room, events, prefix=prefix, maxlen=maxlen, keep_raw=keep_raw, check=False)
    return ids


async def append_checked(client: Any, room: str, events: Iterable[Event], *, prefix: str = "livebot",
                         maxlen: int = 100_000, keep_raw: bool = False,
                         check: bool = True) -> tuple[list[bytes], bool]:
    """``append_events``, and (``check``) in the same round trip whether the room is still in
    ``{p}:rooms``: (entry ids, registered). A Redis that restarted without its data has lost the
    room and its consumer group, and the client reconnects silently, so no append fails: the
    pump registers the room again when this says False (the group at id 0, so the events just
    appended are read too)."""
    keys = Keys(prefix)
    key = keys.events(check_room(room))
    pipe = client.pipeline(transaction=False)
    if check:
        pipe.sismember(keys.rooms, room)
    clock = WallClock()
    n = 0
    for ev in events:
        if ev.received is None:
            ev.received = clock.now()
        pipe.xadd(key, {FIELD: encode_event(ev, keep_raw)}, maxlen=maxlen or None, approximate=True)
        n += 1
    if not n:
        return [], True
    ids = await pipe.execute()
    if not check:
        return ids, True
    return ids[1:], bool(ids[0])


async def read_events(client: Any, room: str, *, prefix: str = "livebot") -> list[tuple[bytes, Event]]:
    """Every event kept in the room's stream, oldest first (for tests and tools)."""
    out = []
    for entry_id, fields in await client.xrange(Keys(prefix).events(check_room(room))):
        out.append((entry_id, decode_entry(fields)))
    return out
