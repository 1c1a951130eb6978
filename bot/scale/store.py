"""The state store in Redis: the interface of ``bot.store.sqlite.SqliteStore``, so a room's
state follows it from worker to worker (and a single daemon can keep its state in Redis too).

Keys (``bot.scale.keys``): ``{p}:snapshot:{room}`` (hash ``saved_at``, ``data``: the stream in
progress), ``{p}:lifetime:{room}`` (hash viewer -> totals over the room's finished streams),
``{p}:sessions:{room}`` and ``{p}:sessions`` (finished streams' summaries, newest first).

Lifetime totals are per room: a viewer's diamonds for one creator are not another creator's.
``lifetime()`` reads the room the store was opened for (``room=``), as the daemon's
``StateKeeper`` calls it without one. Workers write the same keys with their fenced checkpoint
script (``bot.scale.scripts.CHECKPOINT``), so this class also reads what they wrote.

This class uses the synchronous client (it is called from synchronous code, like SQLite);
workers use ``redis.asyncio`` and the scripts.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bot.config import room_name
from bot.scale.keys import Keys, check_room
from bot.store.jsonfile import StoreError


class RedisStore:
    def __init__(self, url_or_client: Any, *, prefix: str = "livebot", room: str = "") -> None:
        import redis

        self.client = redis.Redis.from_url(url_or_client) if isinstance(url_or_client, str) else url_or_client
        self.keys = Keys(prefix)
        self.room = room
        self._owns_client = isinstance(url_or_client, str)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _call(self, fn, *args, **kwargs):
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    # -- reading ---------------------------------------------------------------------------

    def lifetime(self, room: str | None = None) -> dict[str, dict[str, Any]]:
        key = self.keys.lifetime(check_room(room if room is not None else self.room or "default"))
        raw = self._call(self.client.hgetall, key)
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    def load_snapshot(self, room: str) -> tuple[int, dict[str, Any]] | None:
        raw = self._call(self.client.hmget, self.keys.snapshot(check_room(room)), ["saved_at", "data"])
        return decode_snapshot(room, raw)

    def sessions(self, room: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        key = self.keys.sessions(check_room(room)) if room is not None else self.keys.all_sessions
        return [orjson.loads(x) for x in self._call(self.client.lrange, key, 0, max(0, limit - 1))]

    # -- writing ---------------------------------------------------------------------------

    def save_snapshot(self, room: str, snap: dict[str, Any], saved_at: int | None = None) -> None:
        at = int(time.time() * 1000) if saved_at is None else saved_at
        self._call(self.client.hset, self.keys.snapshot(check_room(room)),
                   mapping={"saved_at": at, "data": orjson.dumps(snap)})

    def finish_session(self, room: str, lifetime: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
        """Fold a finished stream in (one MULTI/EXEC): new lifetime totals, the summary, no snapshot."""
        check_room(room)
        pipe = self.client.pipeline(transaction=True)
        if lifetime:
            pipe.hset(self.keys.lifetime(room), mapping={k: orjson.dumps(v) for k, v in lifetime.items()})
        blob = orjson.dumps(summary)
        pipe.lpush(self.keys.sessions(room), blob)
        pipe.lpush(self.keys.all_sessions, blob)
        pipe.delete(self.keys.snapshot(room))
        self._call(pipe.execute)


def decode_snapshot(room: str, raw: list[bytes | None]) -> tuple[int, dict[str, Any]] | None:
    saved_at, data = raw
    if data is None:
        return None
    try:
        return int(saved_at or 0), orjson.loads(data)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise StoreError(f"redis: the snapshot of room {room!r} is damaged: {exc}") from None


def open_store(cfg: Any) -> Any:
    """The store the config names: ``state.redis`` (a Redis URL) wins over ``state.database``
    (an SQLite file); None when neither is set. For ``bot.daemon.run_daemon``."""
    if getattr(cfg, "state_redis", None):
        return RedisStore(cfg.state_redis, prefix=cfg.redis.prefix, room=room_name(cfg))
    if cfg.state_db:
        from bot.store.sqlite import SqliteStore

        return SqliteStore(cfg.state_db)
    return None
