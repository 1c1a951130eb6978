"""The commands of ``bot.scale``, called from ``bot.cli``: ``livebot ingest`` and
``livebot run --source redis://...``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.config import ConfigError, load_config, redact_url
from bot.engine.loader import RuleLoadError, load_rules

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def cmd_run_redis(args: argparse.Namespace) -> int:
    """A worker: rooms from Redis streams (``bot.scale.worker``)."""
    from bot.daemon import build_sinks
    from bot.runner import tune_gc
    from bot.scale.worker import run_worker

    url = args.source
    if not url.startswith(REDIS_SCHEMES):
        print(f"livebot: --source must be a redis://, rediss:// or unix:// URL, not {redact_url(url)!r}",
              file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        rules_path = args.rules or cfg.rules
        ruleset = load_rules(rules_path)
    except (ConfigError, RuleLoadError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    if cfg.state_redis and cfg.state_redis != url:
        print(f"{args.config}:1:1: workers keep rooms' state in the Redis of their streams ({redact_url(url)}); "
              f"'state.redis' names another one ({redact_url(cfg.state_redis)}): remove it or make them the same",
              file=sys.stderr)
        return 1
    from bot.integrations import enabled_names

    if (tools := enabled_names(cfg)):
        # A worker sends each batch to its sinks one after another: a hung OBS or game server would
        # hold up every room it runs, so the integrations (with their own queues) are livebot run's.
        print(f"{args.config}: integrations ({', '.join(tools)}) run with `livebot run` only, not in a Redis "
              f"worker (it sends to sinks one after another, so one hung tool would hold up every room): "
              f"disable them in this worker's config", file=sys.stderr)
        return 2
    tune_gc()
    asyncio.run(run_worker(cfg, url, rules_path=rules_path, ruleset=ruleset, sinks=build_sinks(cfg, args.out),
                           worker_id=getattr(args, "worker_id", None)))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Live sources, one per ``ingest.rooms`` entry, into Redis streams (``bot.scale.ingest``)."""
    from bot.scale.ingest import check_for_ingest, run_ingest

    try:
        cfg = load_config(args.config)
        problems = check_for_ingest(cfg, f"{args.config}:1:1")
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    url = args.redis or cfg.redis.url
    if not url.startswith(REDIS_SCHEMES):
        print(f"livebot: --redis must be a redis://, rediss:// or unix:// URL, not {redact_url(url)!r}",
              file=sys.stderr)
        return 2
    try:
        asyncio.run(run_ingest(cfg, url))
    except (ImportError, ValueError) as exc:  # e.g. the tiktok extra is not installed
        print(f"livebot: {exc}", file=sys.stderr)
        return 1
    return 0
