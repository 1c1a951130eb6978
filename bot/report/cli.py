"""``livebot report SESSION [SESSION_B] [--actions FILE ...] [--html FILE]`` (the parser is in bot/cli.py)."""

from __future__ import annotations

import argparse
import sys

from bot.report.effects import analyze_actions
from bot.report.stats import analyze_session


def run_report(args: argparse.Namespace) -> int:
    sessions = list(args.sessions)
    actions_paths = list(args.actions or [])
    if getattr(args, "variants", False):  # CTA variants over any number of sessions (bot/report/variants.py)
        return _run_variants(args, sessions, actions_paths)
    if len(sessions) > 2:
        print("livebot report: give one session, or two to compare", file=sys.stderr)
        return 2
    if actions_paths and len(actions_paths) != len(sessions):
        print("livebot report: give --actions once per session, in the same order as the sessions", file=sys.stderr)
        return 2
    if args.rate < 0 or args.top < 1 or args.window <= 0:
        print("livebot report: --rate must be >= 0, --top >= 1 and --window positive", file=sys.stderr)
        return 2
    for path in sessions + actions_paths:
        if not path.is_file():
            print(f"livebot report: no such file: {path}", file=sys.stderr)
            return 2
    if args.html is not None:
        from bot.preflight import StartupError, check_output_file

        try:
            check_output_file(args.html, "--html", create_folders=False)
        except StartupError as exc:
            print(f"livebot report: {exc}", file=sys.stderr)
            return 2
    try:
        stats = [analyze_session(p, streak_silence_ms=args.streak_silence) for p in sessions]
        actions = [analyze_actions(p, s, args.window) for p, s in zip(actions_paths, stats)] or [None] * len(stats)
    except OSError as exc:
        print(f"livebot report: {exc}", file=sys.stderr)
        return 1
    unreadable = [s.unreadable for s in stats if s.unreadable]
    if unreadable:  # a binary or another kind of file: say so, never an empty report
        for why in unreadable:
            print(f"livebot report: {why}", file=sys.stderr)
        return 1

    from bot.report.html import render_compare_html, render_html, write_html
    from bot.report.terminal import print_compare, print_report

    opts = {"rate": args.rate, "currency": args.currency, "top": args.top}
    if len(stats) == 1:
        print_report(stats[0], actions[0], **opts)
        html = render_html(stats[0], actions[0], **opts) if args.html else None
        if actions_paths:  # giveaways drawn (bot/report/giveaways.py)
            from bot.report.giveaways import add_to_report, print_giveaways, read_giveaways

            drawn = read_giveaways(actions_paths[0])
            print_giveaways(drawn)
            html = add_to_report(html, drawn) if html is not None else None
    else:
        print_compare(stats[0], stats[1], (actions[0], actions[1]), **opts)
        html = render_compare_html(stats[0], stats[1], (actions[0], actions[1]), **opts) if args.html else None
    if actions_paths or getattr(args, "policy", False):  # the policy guard's summary (bot.policy.report)
        from bot.policy.report import actions_summary, print_policy, session_summary

        print_policy(sys.stdout, actions_summary(actions_paths[-1]) if actions_paths else None,
                     session_summary(sessions[-1]) if args.policy else None)
    if html is not None:
        try:
            write_html(args.html, html)
        except OSError as exc:
            print(f"livebot report: cannot write {args.html}: {exc}", file=sys.stderr)
            return 1
        print(f"report written to {args.html}", file=sys.stderr)
    return 0


def _run_variants(args: argparse.Namespace, sessions: list, actions_paths: list) -> int:
    from bot.report.html import write_html
    from bot.report.variants import analyze_variants, print_variants, render_variants_html

    if len(actions_paths) != len(sessions):
        print("livebot report --variants: give --actions once per session, in the same order as the sessions",
              file=sys.stderr)
        return 2
    if args.window <= 0:
        print("livebot report: --window must be positive", file=sys.stderr)
        return 2
    for path in sessions + actions_paths:
        if not path.is_file():
            print(f"livebot report: no such file: {path}", file=sys.stderr)
            return 2
    try:
        stats = [analyze_session(p, streak_silence_ms=args.streak_silence) for p in sessions]
        report = analyze_variants(list(zip(stats, actions_paths)), args.window)
    except OSError as exc:
        print(f"livebot report: {exc}", file=sys.stderr)
        return 1
    print_variants(report)
    if args.html:
        try:
            write_html(args.html, render_variants_html(report))
        except OSError as exc:
            print(f"livebot report: cannot write {args.html}: {exc}", file=sys.stderr)
            return 1
        print(f"report written to {args.html}", file=sys.stderr)
    return 0
