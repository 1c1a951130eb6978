"""``/healthz`` and ``/metrics`` for the processes of ``bot.scale``: a Redis worker
(``livebot run --source redis://...``) and ``livebot ingest``. The daemon has its own
``ControlServer``; this one serves the same ``http:`` config section (``http.enabled``,
``http.host``, ``http.port``; port 0 picks a free one, logged as ``http_listening``).

Worker ``/healthz``: 200 while its loop turns (last turn less than ``stall_s`` ago) and its last
successful Redis step is less than ``redis_fail_s`` old (default three leases, at least 2 s);
503 otherwise (``status``: ``stalled`` or ``redis_failing``). The JSON body names the worker,
its rooms, its fair share, the live workers, Redis errors in a row and since the last success.

Ingest ``/healthz``: 200 unless a room's pump has stalled or its appends have been failing for
longer than ``redis_fail_s``. A creator who is offline (source disconnected) is not unhealthy.

``/metrics`` reads the worker's or the pumps' plain counters at scrape time (as
``bot.control.metrics`` does for the daemon). Nothing here ever shows the Redis URL: it may hold
a password.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Sequence

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bot.control.http import HttpServer
from bot.control.metrics import _counter, _gauge

log = structlog.get_logger("bot.control")

STALL_S = 10.0  # a worker loop that has not turned for this long is stalled
INGEST_STALL_S = 30.0  # a pump waits up to 10 s between append retries
# Counters a worker always reports (0 until they happen), besides whatever else it counts.
WORKER_COUNTERS = ("events", "actions", "duplicates_skipped", "checkpoints", "streams_finished", "rooms_taken",
                   "rooms_lost", "rooms_resynced", "bad_entries", "trimmed_before_processing")


def redis_fail_threshold(lease_ms: int) -> float:
    """Seconds of Redis failing before /healthz says so: a few leases (by then the rooms moved)."""
    return max(2.0, 3 * lease_ms / 1000)


# -- the worker ------------------------------------------------------------------------------------

class WorkerHealth:
    def __init__(self, worker: Any, *, stall_s: float = STALL_S, redis_fail_s: float | None = None) -> None:
        self.worker = worker
        self.stall_s = stall_s
        self.redis_fail_s = redis_fail_threshold(worker.rc.lease_ms) if redis_fail_s is None else redis_fail_s
        self.started = time.monotonic()

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        w = self.worker
        now = time.monotonic()
        loop_age = now - w.heartbeat
        since_ok = now - (w.last_ok if w.last_ok is not None else self.started)
        status = "stalled" if loop_age >= self.stall_s else "redis_failing" if since_ok >= self.redis_fail_s else "ok"
        rooms = sorted(w.rooms)
        return status == "ok", {
            "status": status,
            "worker": w.id,
            "rooms": rooms,
            "rooms_held": len(rooms),
            "fair_share": w.share,
            "alive_workers": w.alive,
            "redis_failures": w.failures,  # in a row
            "last_ok_age_s": None if w.last_ok is None else round(since_ok, 3),
            "loop_age_s": round(loop_age, 3),
            "uptime_s": round(now - self.started, 1),
        }


class WorkerCollector:
    """Reads a ``bot.scale.worker.Worker`` when Prometheus scrapes."""

    def __init__(self, worker: Any, health: WorkerHealth) -> None:
        self.worker = worker
        self.health = health

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        ok, body = self.health()
        info = GaugeMetricFamily("livebot_worker_info", "This worker (always 1).", labels=["worker"])
        info.add_metric([w.id], 1)
        yield info
        counts = {name: 0 for name in WORKER_COUNTERS}
        counts.update(w.counters)
        yield _counter("livebot_worker_counter", "The worker's counts, by counter: events processed (replays "
                       "included), actions published, duplicates skipped, checkpoints, rooms taken, ...",
                       ["counter"], counts)
        yield _gauge("livebot_worker_rooms", "Rooms this worker holds.", len(w.rooms))
        yield _gauge("livebot_worker_fair_share", "Rooms per live worker (rounded up).", w.share)
        yield _gauge("livebot_worker_alive_workers", "Live workers seen at the last heartbeat.", w.alive)
        yield _counter("livebot_worker_redis_failures", "Redis steps that failed.", [], {(): w.redis_errors})
        yield _gauge("livebot_worker_redis_failures_in_a_row", "Redis steps failed since the last success.",
                     w.failures)
        yield _gauge("livebot_worker_loop_age_seconds", "Since the worker loop's last turn.", body["loop_age_s"])
        if body["last_ok_age_s"] is not None:
            yield _gauge("livebot_worker_last_ok_age_seconds", "Since the last Redis step that succeeded.",
                         body["last_ok_age_s"])
        yield _gauge("livebot_worker_healthy", "1 while /healthz answers 200.", 1.0 if ok else 0.0)
        rooms = list(w.rooms.values())
        yield _counter("livebot_worker_room_events", "Events processed per room since this worker took it.",
                       ["room"], {r.name: r.events for r in rooms})
        yield _counter("livebot_worker_room_duplicates", "Actions found already published, per room held.",
                       ["room"], {r.name: r.duplicates for r in rooms})
        unacked = GaugeMetricFamily("livebot_worker_room_unacked", "Entries processed, not yet checkpointed.",
                                    labels=["room"])
        for r in sorted(rooms, key=lambda r: r.name):
            unacked.add_metric([r.name], len(r.unacked))
        yield unacked


# -- ingest ----------------------------------------------------------------------------------------

class IngestHealth:
    def __init__(self, pumps: Sequence[Any], *, stall_s: float = INGEST_STALL_S, redis_fail_s: float) -> None:
        self.pumps = pumps
        self.stall_s = stall_s
        self.redis_fail_s = redis_fail_s
        self.started = time.monotonic()

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        status = "ok"
        rooms = {}
        for p in self.pumps:
            failing = None if p.failing_since is None else now - p.failing_since
            if now - p.heartbeat >= self.stall_s:
                status = "stalled"
            elif failing is not None and failing >= self.redis_fail_s and status == "ok":
                status = "redis_failing"
            rooms[p.room] = {
                "source": {True: "connected", False: "disconnected", None: "not yet"}[p.connected],
                "appended": p.appended,
                "append_failures": p.failures,
                "failing_s": None if failing is None else round(failing, 3),
                "queue_depth": len(p.queue),
            }
        return status == "ok", {"status": status, "rooms": rooms, "uptime_s": round(now - self.started, 1)}


class IngestCollector:
    """Reads ``livebot ingest``'s room pumps when Prometheus scrapes."""

    def __init__(self, pumps: Sequence[Any], health: IngestHealth) -> None:
        self.pumps = pumps
        self.health = health

    def collect(self) -> Iterator[Metric]:
        pumps = sorted(self.pumps, key=lambda p: p.room)
        ok, _ = self.health()
        connected = GaugeMetricFamily("livebot_ingest_source_connected", "1 while the room's source is connected.",
                                      labels=["room"])
        depth = GaugeMetricFamily("livebot_ingest_queue_depth", "Events waiting to be appended.", labels=["room"])
        failing = GaugeMetricFamily("livebot_ingest_append_failing", "1 while the room's appends fail.",
                                    labels=["room"])
        shed = CounterMetricFamily("livebot_ingest_events_shed", "Events shed by the full queue, by room and type.",
                                   labels=["room", "type"])
        for p in pumps:
            connected.add_metric([p.room], 1.0 if p.connected else 0.0)
            depth.add_metric([p.room], len(p.queue))
            failing.add_metric([p.room], 0.0 if p.failing_since is None else 1.0)
            for kind, n in sorted(p.queue.shed.items()):
                if kind != "like_hearts":
                    shed.add_metric([p.room, kind], n)
        yield connected
        yield _counter("livebot_ingest_appended", "Events appended to the room's stream.", ["room"],
                       {p.room: p.appended for p in pumps})
        yield _counter("livebot_ingest_append_failures", "Appends that failed (retried).", ["room"],
                       {p.room: p.failures for p in pumps})
        yield _counter("livebot_ingest_events_spilled", "Events Redis did not take, written to the room's spill file.",
                       ["room"], {p.room: int(getattr(p, "spilled", 0)) for p in pumps})
        yield failing
        yield depth
        yield shed
        yield _counter("livebot_ingest_source_reconnects", "Reconnects after the first connection.", ["room"],
                       {p.room: max(0, int(getattr(p.source, "connects", 0) or 0) - 1) for p in pumps})
        yield _counter("livebot_ingest_source_malformed", "Messages the room's source could not decode.", ["room"],
                       {p.room: int(getattr(p.source, "malformed", 0) or 0) for p in pumps})
        yield _gauge("livebot_ingest_healthy", "1 while /healthz answers 200.", 1.0 if ok else 0.0)


# -- the server ------------------------------------------------------------------------------------

class ScaleServer(HttpServer):
    """``/healthz`` and ``/metrics`` on ``host:port`` (``port: 0`` picks a free one): the shared
    ``HttpServer`` over the worker's or the pumps' collector."""

    def __init__(self, health: Callable[[], tuple[bool, dict[str, Any]]], collector: Any, *, role: str,
                 host: str = "127.0.0.1", port: int = 8787) -> None:
        registry = CollectorRegistry()
        registry.register(collector)
        super().__init__(health, registry, host=host, port=port)
        self.role = role

    @classmethod
    def for_worker(cls, worker: Any, *, host: str, port: int, stall_s: float = STALL_S,
                   redis_fail_s: float | None = None) -> "ScaleServer":
        health = WorkerHealth(worker, stall_s=stall_s, redis_fail_s=redis_fail_s)
        return cls(health, WorkerCollector(worker, health), role="worker", host=host, port=port)

    @classmethod
    def for_ingest(cls, pumps: Sequence[Any], *, host: str, port: int, redis_fail_s: float,
                   stall_s: float = INGEST_STALL_S) -> "ScaleServer":
        health = IngestHealth(pumps, stall_s=stall_s, redis_fail_s=redis_fail_s)
        return cls(health, IngestCollector(pumps, health), role="ingest", host=host, port=port)

    async def start(self) -> int | None:
        """Listen; returns the bound port, or None if it cannot (logged: the process runs on
        without HTTP rather than stop its rooms, e.g. a second worker on a host given one port)."""
        try:
            return await self.listen()
        except OSError as exc:
            log.error("http_unavailable", role=self.role, host=self.host, port=self.port,
                      error=f"{type(exc).__name__}: {exc}",
                      hint="give each process on a host its own 'http.port' (0 picks a free one)")
            return None
