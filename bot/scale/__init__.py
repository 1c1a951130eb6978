"""Scaling out on Redis: many creators' rooms across many worker processes and machines.

    livebot ingest -c config.yaml                          # live sources -> {p}:events:{room}
    livebot run --source redis://HOST:6379/0 -c config.yaml  # a worker; start as many as needed

- ``bot.scale.ingest``: the ingest side, and ``append_events`` / ``register_room`` (library).
  Its parts: ``streams`` (the record format, ``register_room``, ``append_events``: the library),
  ``spill`` (the spill files).
- ``bot.scale.worker``: the worker: leases, fair share, takeover, exactly-once actions.
  Its parts: ``worker_leases`` (rooms held, leases, fair share, takeover), ``worker_redis`` (a
  restarted Redis), ``worker_processing`` (read, process, publish), ``worker_checkpoints``,
  ``worker_rules`` (rules per room).
- ``bot.scale.scripts``: the Lua scripts that make each step atomic and fenced by the lease.
- ``bot.scale.store``: ``RedisStore``, the SQLite store's interface on Redis.
- ``bot.scale.keys``: key names.

Needs the ``redis`` package (``redis.asyncio``) and Redis >= 6.2 (``XAUTOCLAIM``).
"""
