"""Prometheus metrics for ``/metrics``, read from the running parts at scrape time.

Nothing on the event path touches a Prometheus object: the runner, queue, engine, sources and
dispatcher keep plain counters, and ``LiveCollector`` turns them into metric families when
scraped. The one per-event figure, latency, is a small fixed-bucket histogram (``Latency``).
Labels are rule ids, kinds, event types and sink/source names: never secrets.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from bot.events.formats.common import lossy

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Latency:
    """Event received → its actions handed to the dispatcher, in seconds."""

    BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        self.sum += seconds

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, n in zip((*map(str, self.BUCKETS), "+Inf"), self.counts):
            running += n
            cumulative.append((bound, running))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.sum)


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, int | float]) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items(), key=lambda kv: str(kv[0])):
        fam.add_metric(list(key) if isinstance(key, tuple) else [str(key)], value)
    return fam


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    fam.add_metric(list((labels or {}).values()), value)
    return fam


class LiveCollector:
    """Reads a ``LiveRunner`` (and what hangs off it) when Prometheus scrapes."""

    def __init__(self, runner: Any, reloader: Any = None, control: Any = None) -> None:
        self.runner = runner
        self.reloader = reloader
        self.control = control

    def collect(self) -> Iterator[Metric]:
        r = self.runner
        res = r.result
        yield _counter("livebot_events", "Events taken from the queue, by type.", ["type"], res.events)
        yield _counter("livebot_actions", "Actions emitted, by rule and kind.", ["rule", "kind"], res.action_kinds)
        yield _counter("livebot_events_shed", "Events shed by the full queue, by type.", ["type"],
                       {k: v for k, v in r.queue.shed.items() if k != "like_hearts"})
        yield _gauge("livebot_queue_depth", "Events waiting between the sources and the engine.", len(r.queue))
        yield _gauge("livebot_queue_high_water", "The most events ever waiting at once.", r.queue.high_water)
        counts = getattr(r, "counts", None)  # (process totals: a stream's end does not reset them)
        engine_counts = counts.engine(r.engine) if counts is not None else r.engine.counters
        yield _counter("livebot_duplicates", "Events dropped as duplicates (by msg_id).", [],
                       {(): engine_counts["duplicates"]})
        yield _counter("livebot_events_lossy", "Events decoded without a field their kind is expected to carry.", [],
                       {(): lossy()})
        yield _counter("livebot_rule_errors", "Rule firings dropped by an error at run time.", [],
                       {(): engine_counts["rule_errors"]})
        yield _counter("livebot_rule_suppressed", "Times a rule did not fire for an event or timer, by rule and "
                       "the first reason (when, cooldown, user_cooldown, once, max_per_hour, permission, tier, "
                       "milestone, min_chat, stopped, paused, error); since the process started.", ["rule", "reason"],
                       dict(r.engine.suppressed))
        if self.control is not None:
            yield _counter("livebot_muted_actions", "Actions kept from a sink by a mute (control page), by sink.",
                           ["sink"], dict(self.control.muted_counts))
        from bot.livecounts import policy_counts

        yield _counter("livebot_policy", "What the policy guard did: viewer text masked, actions suppressed (by "
                       "check), chat lines moderated (by reason).", ["outcome", "check"],
                       dict(counts.policy(r.engine) if counts is not None else policy_counts(r.engine)))
        if counts is not None:
            yield _counter("livebot_chat_budget", "Chat lines through the chat budget, by outcome (queued, merged, "
                           "deduplicated, dropped_full, dropped_stale, held_at_close).", ["outcome"],
                           dict(counts.budget(r.engine)))
        for src in r.sources:
            name = getattr(src, "name", "source")
            connects = int(getattr(src, "connects", 0))
            yield _counter("livebot_source_reconnects", "Reconnects after the first connection.", ["source"],
                           {name: max(0, connects - 1)})
            yield _counter("livebot_source_malformed", "Messages a source could not decode.", ["source"],
                           {name: int(getattr(src, "malformed", 0))})
            yield _gauge("livebot_source_connected", "1 while the source is connected.",
                         1.0 if r.connected.get(name) else 0.0, {"source": name})
            refused_by = getattr(src, "refused_by", None)
            if refused_by is not None:  # the webhook source: requests refused, by reason
                yield _counter("livebot_webhook_refused", "Webhook requests refused (4xx), by reason.", ["reason"],
                               dict(refused_by))
        d = r.dispatcher
        for attr, doc in (("sent", "Actions delivered, by sink."), ("failed", "Failed sends, by sink."),
                          ("retried", "Sends retried, by sink."), ("dead_lettered", "Actions dead-lettered, by sink."),
                          ("already_delivered", "Actions not sent again after a restart: delivered before it.")):
            values = _per_sink(d, attr)
            if values is not None:
                yield _counter(f"livebot_sink_{attr}", doc, ["sink"], values)
        depths = _per_sink(d, "queued")
        if depths is not None:
            fam = GaugeMetricFamily("livebot_sink_queue_depth", "Actions waiting for a sink.", labels=["sink"])
            for sink, n in sorted(depths.items()):
                fam.add_metric([sink], n)
            yield fam
        yield from _integrations(d)
        yield r.latency.family("livebot_event_latency_seconds", "From an event's arrival to its actions' dispatch.")
        if self.reloader is not None:
            yield _counter("livebot_rule_reloads", "Rule reloads applied.", [], {(): self.reloader.reloads})
            yield _counter("livebot_rule_reloads_refused", "Rule reloads refused for errors.", [],
                           {(): self.reloader.refused})
        if r.recorder is not None:
            yield _counter("livebot_recorded_events", "Events written to the session recording.", [],
                           {(): r.recorder.written})
            yield _counter("livebot_record_failures", "Recording writes that failed.", [], {(): r.recorder.failed})
        if r.keeper is not None:
            yield _counter("livebot_state_saves", "State snapshots written.", [], {(): r.keeper.saves})
            yield _counter("livebot_state_failures", "State writes that failed.", [], {(): r.keeper.failures})


def _integrations(dispatcher: Any) -> Iterator[Metric]:
    """The integrations' own counts (``bot.integrations``): dropped over the cap, connections."""
    from bot.integrations.base import IntegrationSink

    sinks = [s for s in getattr(dispatcher, "sinks", ()) if isinstance(s, IntegrationSink)]
    if not sinks:
        return
    for key, doc in (("over_cap", "Actions an integration dropped over its max_per_minute."),
                     ("refused", "Actions an integration refused for good (bad command, unknown scene...)."),
                     ("connect_failures", "Connection attempts to an integration that failed.")):
        yield _counter(f"livebot_integration_{key}", doc, ["sink"], {s.name: s.counters[key] for s in sinks})
    fam = GaugeMetricFamily("livebot_integration_connected", "1 while the integration is connected.", labels=["sink"])
    for s in sinks:
        fam.add_metric([s.name], 1.0 if s.connected else 0.0)
    yield fam


def _per_sink(dispatcher: Any, attr: str) -> dict[str, int] | None:
    """A per-sink figure from either dispatcher: a Counter attribute, or ``stats()`` rows."""
    value = getattr(dispatcher, attr, None)
    if isinstance(value, dict):
        return {str(k): int(v) for k, v in value.items()}
    stats = getattr(dispatcher, "stats", None)
    if isinstance(stats, dict):
        out = {name: getattr(s, attr, None) for name, s in stats.items()}
        return {k: int(v) for k, v in out.items() if isinstance(v, (int, float))} or None
    return None


def registry_for(runner: Any, reloader: Any = None, control: Any = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(LiveCollector(runner, reloader, control))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
