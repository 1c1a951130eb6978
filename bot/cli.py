"""The ``livebot`` command."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from pathlib import Path
from typing import Any

from bot import __version__, logs
from bot.actions.delivery import DEAD_LETTER_REASONS
from bot.actions.dispatcher import Dispatcher
from bot.config import Config, ConfigError, engine_options, load_config
from bot.engine.core import Engine
from bot.engine.durations import parse_duration
from bot.engine.loader import RuleLoadError, load_rules
from bot.runner import replay, tune_gc
from bot.sinks import ConsoleSink, JsonlSink
from bot.sinks.jsonl import dumps_action
from bot.sources.replay import ReplaySource
from bot.store import StoreError, load_lifetime, save_lifetime
from bot.testing import CaptureSink


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number such as 1 or 20, or 'max'") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return speed


def _duration_ms(value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livebot", description="YAML rules over a TikTok LIVE event stream.")
    parser.add_argument("--version", action="version", version=f"livebot {__version__}")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines (default when stderr is not a terminal)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)

    rp = sub.add_parser("replay", help="replay a recorded session through rules")
    rp.add_argument("session", type=Path, help="session file: JSONL in any supported format (.gz too)")
    rp.add_argument("-c", "--config", type=Path, help="config file (see config.example.yaml); flags override it")
    rp.add_argument("--rules", type=Path, help="a rule file or a folder of them (default: the config's, else rules/)")
    rp.add_argument("--out", type=Path, help="also write actions to this JSONL file")
    rp.add_argument("--speed", type=_speed, default=None, metavar="N|max",
                    help="1 = real time, 20 = twenty times faster, max = no waiting (default)")
    rp.add_argument("--quiet", action="store_true", help="do not print each action, only the summary")
    rp.add_argument("--streak-silence", type=_duration_ms, default=None, metavar="DURATION",
                    help="flush a gift streak whose end never came after this much silence (default 5s)")
    rp.add_argument("--room", default=None, help="room id to stamp on events that carry none")

    rp.add_argument("--state", type=Path, metavar="FILE",
                    help="keep viewers' lifetime totals in this JSON file (read at start, written at the end)")
    rp.add_argument("--check", type=Path, metavar="GOLDEN",
                    help="compare the actions with a golden actions file; show a diff and exit 1 if they differ")
    rp.add_argument("--why", nargs="?", const="*", default=None, metavar="RULE",
                    help="print why RULE fired or not, one line per event it was considered for "
                         "(without RULE: every rule); actions are not printed")

    up = sub.add_parser("run", help="run beside a live stream: the config's source, rules and sinks")
    up.add_argument("-c", "--config", type=Path, required=True, help="config file (see config.example.yaml)")
    up.add_argument("--rules", type=Path, help="a rule file or a folder of them (overrides the config)")
    up.add_argument("--out", type=Path, help="also write actions to this JSONL file")
    up.add_argument("--source", metavar="redis://HOST:PORT/DB",
                    help="be a worker: process creator rooms from Redis streams instead of the config's source")
    up.add_argument("--worker-id", help=argparse.SUPPRESS)

    ip = sub.add_parser("ingest", help="run the live sources of ingest.rooms and append their events to Redis")
    ip.add_argument("-c", "--config", type=Path, required=True, help="config file (see config.example.yaml)")
    ip.add_argument("--redis", metavar="redis://HOST:PORT/DB", help="the Redis to append to (default: redis.url)")

    tp = sub.add_parser("test", help="run rule tests (YAML files naming rules, events and expected actions)")
    tp.add_argument("paths", type=Path, nargs="+", help="test files or folders of them")

    vp = sub.add_parser("validate", help="check rule files; print file:line:col: problem for each error")
    vp.add_argument("rules", type=Path)
    vp.add_argument("--policy", metavar="PACK", choices=("tiktok-live", "strict"),
                    help="check rule texts against this policy pack (tiktok-live or strict) instead of the "
                         "settings' packs, and exit 1 on any finding")

    rep = sub.add_parser("report", help="session analytics: terminal summary, HTML report; two sessions: compared")
    rep.add_argument("sessions", type=Path, nargs="+", metavar="SESSION",
                     help="a session file (any supported format, .gz too); give two to compare them")
    rep.add_argument("--actions", type=Path, action="append", metavar="ACTIONS",
                     help="the actions JSONL of the session (replay --out); once per session, in the same order")
    rep.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    rep.add_argument("--variants", action="store_true",
                     help="compare rules' CTA variants over one or more sessions (each with its --actions)")
    rep.add_argument("--rate", type=float, default=0.005, help="money per diamond for the earnings estimate (0.005)")
    rep.add_argument("--currency", default="US$", help="the label of that money (default US$)")
    rep.add_argument("--top", type=int, default=10, help="rows in the top-N tables (default 10)")
    rep.add_argument("--window", type=_duration_ms, default=120_000, metavar="DURATION",
                     help="how long after a rule fires to count what followed (default 2m)")
    rep.add_argument("--streak-silence", type=_duration_ms, default=5000, metavar="DURATION",
                     help="flush a gift streak whose end never came after this much silence (default 5s)")
    rep.add_argument("--policy", action="store_true",
                     help="also screen the session's nicknames and comments with the policy guard (what it would "
                          "mask or moderate)")

    rs = sub.add_parser("resend", help="send dead-lettered actions again, each to the sink that could not take it",
                        description=RESEND_DESCRIPTION, epilog=RESEND_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    rs.add_argument("dead_letter", type=Path, metavar="DEAD_LETTER_FILE",
                    help="the file of sinks.dead_letter (one JSON line per undelivered action)")
    rs.add_argument("-c", "--config", type=Path, required=True,
                    help="config file (see config.example.yaml): the sinks, as `livebot run` builds them")
    rs.add_argument("--sink", action="append", metavar="NAME",
                    help="only the lines of this sink: 'jsonl' or a sinks.webhooks name (repeat for several)")
    rs.add_argument("--reason", action="append", choices=DEAD_LETTER_REASONS, metavar="REASON",
                    help=f"only the lines dead-lettered for this reason: {', '.join(DEAD_LETTER_REASONS)} "
                         "(repeat for several)")
    rs.add_argument("--dry-run", action="store_true",
                    help="print what would be sent, per sink and reason; send nothing, change nothing")
    ck = sub.add_parser("check", help="connect to every configured sink and integration once; check the rules "
                                      "against what they have (OBS scenes, Streamer.bot actions)")
    ck.add_argument("-c", "--config", type=Path, required=True, help="config file (see config.example.yaml)")
    ck.add_argument("--rules", type=Path, help="rule file or folder (default: the config's rules)")

    pts = sub.add_parser("points", help="the loyalty points table as CSV, from the state database (bot/points_cli.py)")
    pts.add_argument("state", type=Path, metavar="STATE_DB", help="the state database (state.database in the config)")
    pts.add_argument("--room", help="only this room's stream in progress (default: every room's)")
    pts.add_argument("--rules", type=Path, help="the rules whose settings: points: ranks fill the 'level' column")
    pts.add_argument("--out", type=Path, metavar="FILE", help="write the CSV here (default: standard output)")
    return parser


RESEND_DESCRIPTION = """\
Send the actions of a dead-letter file (sinks.dead_letter) again once the sink is back, e.g. after
the receiver of a webhook was down for an hour. Each line goes to the sink it was dead-lettered
from and only there (sinks.jsonl as 'jsonl', sinks.webhooks by name, built from the config as
`livebot run` builds them), in the file's order, in batches, with the same retries and backoff
(sinks.attempts). A sink that fails again gets nothing more in this run. Lines of the console,
the overlay and the chat are kept, never sent: they only make sense live.

The file is then rewritten atomically: what was sent leaves it; the rest stays, in order: a send
that failed again (as a fresh record with the new error), lines not tried, not selected (--sink,
--reason), of a sink the config does not have, and malformed lines (each reported as
FILE:LINE: what is wrong). So run it again later to send what is left: nothing is sent twice.
A bot may keep appending to the file meanwhile; nothing it adds is lost. While it runs, the new
content is written to FILE.resend, which also keeps a second resend of the same file from starting.
Interrupted (Ctrl-C, SIGTERM), it stops and keeps everything not known to be delivered. Killed
outright (kill -9), it leaves the file unchanged, so what it had sent goes again next time; remove
the FILE.resend it leaves first."""

RESEND_EPILOG = """\
exit status: 0 every selected line was sent, 1 some remain (failed again, malformed, or of a sink
it cannot send to), 2 a usage or config error. With --dry-run: 0 or 1 as if every send worked."""


def cmd_validate(args: argparse.Namespace) -> int:
    from bot.engine.templates import check_only

    try:
        with check_only():  # every check of a load, without generating code (it only checks)
            ruleset = load_rules(args.rules)
    except RuleLoadError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    from bot.policy.load import report_findings

    failed = report_findings(ruleset, args.policy)
    print(f"ok: {len(ruleset.rules)} rules in {len(ruleset.files)} file(s)")
    return 1 if failed else 0


def _load_config_and_rules(config: Path | None, rules: Path | None, check=None) -> tuple[Config, Any] | None:
    """The config (or the defaults) and the rules; every problem printed as file:line:col, None then."""
    try:
        cfg = load_config(config) if config else Config()
        if check is not None and (problems := check(cfg, f"{config}:1:1")):
            raise ConfigError(problems)
        return cfg, load_rules(rules or cfg.rules)
    except (ConfigError, RuleLoadError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_replay(args: argparse.Namespace) -> int:
    if not args.session.is_file():
        print(f"livebot: no such session file: {args.session}", file=sys.stderr)
        return 2
    loaded = _load_config_and_rules(args.config, args.rules)
    if loaded is None:
        return 1
    cfg, ruleset = loaded
    from bot.preflight import StartupError, check_output_file

    try:  # every file it will write, before it starts
        if args.out:
            check_output_file(args.out, "--out", create_folders=False)
        elif cfg.jsonl:
            check_output_file(cfg.jsonl, "sinks.jsonl", create_folders=True)
        if args.state:
            check_output_file(args.state, "--state", create_folders=False)
    except StartupError as exc:
        print(f"livebot: {exc}", file=sys.stderr)
        return 2
    try:
        lifetime = load_lifetime(args.state) if args.state else None
    except StoreError as exc:
        print(f"livebot: {exc}", file=sys.stderr)
        return 1
    why = getattr(args, "why", None)
    if why is not None and why != "*" and ruleset.get(why) is None:
        from bot.engine.yamlfile import did_you_mean

        print(f"livebot: --why: no rule '{why}'" + did_you_mean(why, [r.id for r in ruleset.rules]), file=sys.stderr)
        return 2
    sinks = [] if args.quiet or not cfg.console or why is not None else [ConsoleSink()]
    if args.out or cfg.jsonl:
        sinks.append(JsonlSink(args.out or cfg.jsonl))
    capture = CaptureSink()
    if args.check:
        sinks.append(capture)
    dispatcher = Dispatcher(sinks)
    silence = cfg.streak_silence_ms if args.streak_silence is None else args.streak_silence
    # as `livebot run` builds its engine (a bare replay: the default config's), so a run's --out is
    # a golden for a replay of its recording (issue 14: the overlay's leaderboard updates too)
    options = {**engine_options(cfg), "streak_silence_ms": silence}
    engine = Engine(ruleset, lifetime=lifetime, **options)
    printer = None
    if why is not None:
        from bot.engine.trace import WhyPrinter

        printer = WhyPrinter(engine, None if why == "*" else why)
    source = ReplaySource(args.session, room_id=cfg.room_id if args.room is None else args.room)

    tune_gc()

    async def go():
        try:
            return await replay(source, engine, dispatcher, speed=args.speed)
        finally:
            await dispatcher.close()

    result = asyncio.run(go())
    if printer is not None:
        printer.flush()
    print(result.summary(), file=sys.stderr)
    from bot.sources.replay import not_a_session

    if (why := not_a_session(source)) is not None:  # a binary or another kind of file
        print(f"livebot: {why}", file=sys.stderr)
        return 1
    if any(engine.policy.stats().values()):  # the guard masked, suppressed or moderated something
        print(engine.policy.summary(), file=sys.stderr)
    if args.state:
        save_lifetime(args.state, engine.state.lifetime_snapshot())
    if args.check:
        return check_golden(capture.actions, args.check)
    return 0


def check_golden(actions: list, golden: Path) -> int:
    """Compare actions with a golden JSONL file; print a unified diff of the records if they differ."""
    got = [dumps_action(a).decode() for a in actions]
    try:
        want = golden.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        print(f"livebot: cannot read golden file: {exc}", file=sys.stderr)
        return 2
    if got == want:
        print(f"golden check passed: {len(got)} actions match {golden}", file=sys.stderr)
        return 0
    diff = list(difflib.unified_diff(want, got, fromfile=str(golden), tofile="this replay", lineterm="", n=1))
    print("\n".join(diff[:200]), file=sys.stderr)
    if len(diff) > 200:
        print(f"... {len(diff) - 200} more diff lines", file=sys.stderr)
    print(f"golden check FAILED: expected {len(want)} actions, got {len(got)}", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    if args.source:  # a worker over Redis streams (bot.scale)
        from bot.scale.cli import cmd_run_redis

        return cmd_run_redis(args)
    from bot.config import check_for_run
    from bot.daemon import build_sinks, build_source, run_daemon

    loaded = _load_config_and_rules(args.config, args.rules, check=check_for_run)
    if loaded is None:
        return 1
    cfg, ruleset = loaded
    try:
        source = build_source(cfg)
    except (ImportError, ValueError) as exc:  # e.g. the tiktok extra is not installed
        print(f"livebot: {exc}", file=sys.stderr)
        return 1
    from bot.preflight import StartupError, check_run_paths

    try:
        check_run_paths(cfg, args.out)
    except StartupError as exc:
        print(f"livebot: {exc}", file=sys.stderr)
        return 2
    tune_gc()
    try:
        asyncio.run(run_daemon(cfg, ruleset, source=source, sinks=build_sinks(cfg, args.out)))
    except StoreError as exc:
        print(f"livebot: {exc}", file=sys.stderr)
        return 1
    except StartupError as exc:  # a port in use
        print(f"livebot: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from bot.ruletests import run_paths

    return run_paths(args.paths)


def cmd_report(args: argparse.Namespace) -> int:
    from bot.report.cli import run_report

    return run_report(args)


def cmd_ingest(args: argparse.Namespace) -> int:
    from bot.scale.cli import cmd_ingest as run

    return run(args)


def cmd_resend(args: argparse.Namespace) -> int:
    from bot.actions.resend import run_resend

    return run_resend(args)


def cmd_check(args: argparse.Namespace) -> int:
    from bot.integrations.check import run_check

    return run_check(args)

def cmd_points(args: argparse.Namespace) -> int:
    from bot.points_cli import run_points

    return run_points(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(json=True if args.log_json else None, level=args.log_level)
    try:
        commands = {"validate": cmd_validate, "replay": cmd_replay, "test": cmd_test, "run": cmd_run,
                    "report": cmd_report, "ingest": cmd_ingest, "resend": cmd_resend,
                    "check": cmd_check, "points": cmd_points}
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
