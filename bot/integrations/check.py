"""``livebot check -c config.yaml``: connect to every configured sink and integration once, say
for each whether it is reachable and authenticated and what it saw (OBS scenes, Streamer.bot
actions), then check the rules against that: an OBS scene or source, a Streamer.bot action or an
RCON command a rule names that does not exist (or is not allowed) is reported as
``file:line:col: rule <id>: ...`` before the stream, not during it.

Nothing is sent: webhooks are only connected to (a POST would run the receiver's automation),
files are opened for appending and closed, the chat sink is not tried (it would post as the
creator). Exit 0 when everything answered and every rule checks out, 1 otherwise, 2 for a config
or rule file that does not load.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.config import Config
from bot.engine.rules import ActionSpec, RuleSet
from bot.integrations import build_integrations, enabled_names
from bot.integrations.base import Probe, describe
from bot.integrations.commands import COMMAND_KINDS, command_words
from bot.integrations.mqtt import MqttSink
from bot.integrations.obs import ObsSink
from bot.integrations.rcon import RconSink
from bot.integrations.streamerbot import StreamerbotSink

# The integration each rule kind goes to, from the sinks' own ``kinds``.
KIND_OWNER = {kind: sink.name for sink in (ObsSink, StreamerbotSink, RconSink, MqttSink) for kind in sink.kinds}
MAX_LISTED = 12


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "") if names else "none"


def _static(value: Any) -> str | None:
    """The text of a compiled template that has no expressions in it, else None."""
    if value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value)
    if getattr(value, "is_static", False):
        return str(value.source)
    return None


async def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection opens, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except Exception as exc:
        return describe(exc)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


def _writable(path: Path) -> str | None:
    try:
        existed = path.exists()
        if not path.parent.is_dir():
            return f"its folder {path.parent} does not exist"
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


async def check_sinks(cfg: Config, timeout: float = 5.0) -> tuple[list[str], dict[str, Probe], int]:
    """Lines to print, each integration's probe by name, and how many problems."""
    lines: list[str] = []
    problems = 0
    if cfg.console:
        lines.append("console: ok (standard output)")
    for what, path in (("jsonl", cfg.jsonl), ("dead_letter", cfg.dead_letter)):
        if path is not None:
            why = _writable(path)
            problems += why is not None
            lines.append(f"{what} ({path}): " + ("writable" if why is None else f"NOT writable: {why}"))
    if cfg.overlay_enabled and cfg.http_enabled:
        lines.append(f"overlay: served by livebot run at http://{cfg.http_host}:{cfg.http_port}/overlay/")
    if cfg.chat_enabled:
        lines.append("chat: not tried (a check would post in the live chat as the creator)")
    for wh in cfg.webhooks:
        parts = urlsplit(wh.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"{parts.scheme}://{parts.hostname}:{port}"
        why = await _reachable(parts.hostname or "", port, timeout)
        problems += why is not None
        lines.append(f"webhook {wh.name} ({where}): " + ("reachable (nothing sent)" if why is None
                                                          else f"NOT reachable: {why}"))
    sinks = build_integrations(cfg)
    probes = await asyncio.gather(*(s.probe() for s in sinks))
    by_name = {}
    for probe in probes:
        by_name[probe.name] = probe
        state = ("reachable, authenticated" if probe.ok else
                 f"reachable, NOT authenticated: {probe.error}" if probe.reachable and not probe.authenticated else
                 f"reachable, authenticated, but {probe.error}" if probe.reachable else f"NOT reachable: {probe.error}")
        problems += not probe.ok
        lines.append(f"{probe.name} ({probe.where}): {state}")
        for note in probe.notes:
            lines.append(f"  {note}")
        for key, names in probe.saw.items():
            lines.append(f"  {key}: {_listed(names)}")
    return lines, by_name, problems


def check_rules(cfg: Config, ruleset: RuleSet, probes: dict[str, Probe]) -> list[str]:
    """``file:line:col: rule <id>: ...`` for each action that names something the integration lacks."""
    enabled = set(enabled_names(cfg))
    out: list[str] = []
    for rule in ruleset.rules:
        for spec in rule.all_actions():
            owner = KIND_OWNER.get(spec.kind)
            if owner is None:
                continue
            where = f"{spec.pos or rule.pos}: rule {rule.id}"
            if owner not in enabled:
                out.append(f"{where}: '{spec.kind}' actions go to integrations.{owner}, which is not enabled")
                continue
            problem = _check_action(cfg, spec, probes.get(owner))
            if problem:
                out.append(f"{where}: {problem}")
    return out


def _check_action(cfg: Config, spec: ActionSpec, probe: Probe | None) -> str | None:
    data = spec.data
    if spec.kind in COMMAND_KINDS:
        allow = set(cfg.integrations.rcon.allow)
        words = [w for w in command_words(spec.text.source) if "{" not in w]
        if ";" in spec.text.source:  # literal: a quoted value never holds one
            return "rcon command holds ';': it is refused when it runs (it separates commands in Source games)"
        denied = [w for w in words if w not in allow]
        return f"rcon command '{denied[0]}' is not in integrations.rcon.allow" if denied else None
    if probe is None or not probe.ok:
        return None  # nothing seen to check against (reported above)
    if spec.kind == "obs_scene":
        scene = _static(data.get("scene")) if "scene" in data else _static(spec.text)
        scenes = probe.saw.get("scenes", [])
        if scene is not None and scene not in scenes:
            return f"OBS has no scene {scene!r} (scenes: {_listed(scenes)})"
    elif spec.kind == "obs_source":
        source, scene = _static(data.get("source")), _static(data.get("scene"))
        items: dict[str, list[str]] = probe.detail.get("scene_items", {})
        if scene is not None and scene not in items:
            return f"OBS has no scene {scene!r} (scenes: {_listed(list(items))})"
        if source is not None:
            where = items.get(scene, []) if scene is not None else sorted({s for v in items.values() for s in v})
            if source not in where:
                return (f"OBS has no source {source!r} in " + (f"scene {scene!r}" if scene else "any scene")
                        + f" (sources: {_listed(list(where))})")
    elif spec.kind in ("obs_text", "obs_media"):
        source, inputs = _static(data.get("source")), probe.saw.get("inputs", [])
        if source is not None and source not in inputs:
            return f"OBS has no input {source!r} (inputs: {_listed(inputs)})"
    elif spec.kind == "streamerbot":
        name, ident = _static(data.get("action")), _static(data.get("action_id"))
        if ident is not None and ident not in probe.detail.get("action_ids", []):
            return f"Streamer.bot has no action with id {ident!r}"
        if ident is None and name is not None and name not in probe.saw.get("actions", []):
            return f"Streamer.bot has no action {name!r} (actions: {_listed(probe.saw.get('actions', []))})"
    return None


def run_check(args: Any) -> int:
    """``livebot check`` from its parsed arguments (bot/cli.py)."""
    from bot.config import ConfigError, load_config
    from bot.engine.loader import RuleLoadError, load_rules

    try:
        cfg = load_config(args.config)
        ruleset = load_rules(args.rules or cfg.rules)  # as livebot run does: missing rules are a problem
    except (ConfigError, RuleLoadError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    lines, probes, problems = asyncio.run(check_sinks(cfg))
    for line in lines:
        print(line)
    if not lines:
        print("no sinks or integrations configured")
    rule_problems = check_rules(cfg, ruleset, probes)
    for problem in rule_problems:
        print(problem)
    total = problems + len(rule_problems)
    rules_said = f"{len(ruleset.rules)} rule(s) checked"
    print(f"{rules_said}; {total} problem(s)" if total else f"{rules_said}; everything answered")
    return 1 if total else 0
