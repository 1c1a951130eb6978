"""Redis' own health as the worker (``bot.scale.worker``) sees it: ``RedisRestarts``, the part of
``Worker`` that notices a Redis restarted between two steps (its run id changed, perhaps without
its data) and has every room held taken again, and that makes sure a room's stream, consumer
group and place in the rooms set exist (again after Redis lost them). Its methods run on a
``Worker`` and use the state ``Worker.__init__`` sets.
"""

from __future__ import annotations

import structlog

from bot.scale.ingest import register_room

log = structlog.get_logger("bot.worker")


class RedisRestarts:
    """``Worker``'s check for a restarted Redis (its run id), and the room streams and groups it remakes."""

    async def _check_restart(self) -> bool:
        """Redis' run id, once a tick: the client reconnects silently, so a Redis restarted between
        two steps (perhaps without its data: no rooms set, no streams, no groups, no leases, no
        snapshots) may show no error at all. Then every room held is taken again from what Redis
        has (``_retake``), and its stream, group and place in the rooms set are made again."""
        if self._run_id is False:  # INFO is not allowed (a restricted ACL user): only errors tell
            return False
        import redis

        try:
            info = await self.client.info("server")
        except redis.ResponseError as exc:  # (NOPERM): keep working without the check, said once
            log.warning("redis_run_id_unavailable", worker=self.id, error=str(exc),
                        hint="allow INFO to notice a Redis restarted without its data between two steps")
            self._run_id = False
            return False
        run_id = info.get("run_id")
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        if restarted:
            self.counters["redis_restarts"] += 1
            log.warning("redis_restarted", worker=self.id, rooms=len(self.rooms))
            self._grouped.clear()
            self._resync.update(self.rooms)
        return restarted

    async def _ensure_group(self, name: str) -> None:
        """The room's stream, its consumer group (at id 0) and its place in the rooms set: made once
        per room (``register_room``, as ingest does), and again only after Redis lost them."""
        if name not in self._grouped:
            await register_room(self.client, name, prefix=self.rc.prefix, group=self.rc.group)
            self._grouped.add(name)
