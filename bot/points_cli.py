"""``livebot points STATE.db [--room ROOM] [--rules rules/] [--out points.csv]``: the loyalty points table as CSV,
from the state database, without the bot running: the totals of finished streams plus what the
stream in progress has earned (its snapshot). Exit 0 written; 1 the database cannot be read; 2 a
usage error. (While the bot runs, ``GET /points.csv`` gives the same from memory.)"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import orjson

from bot.engine.points import LIFETIME_KEY, Points, PointsSpec, points_csv


def points_table(db: Path, room: str | None = None, spec: PointsSpec | None = None) -> list[dict]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT data FROM lifetime WHERE viewer = ?", (LIFETIME_KEY,)).fetchone()
        points = Points(spec or PointsSpec(), orjson.loads(row[0]) if row else None)
        sql = "SELECT data FROM snapshot" + (" WHERE room = ?" if room else "")
        for (blob,) in con.execute(sql, (room,) if room else ()):
            snap = orjson.loads(blob)
            part = (snap.get("features") or {}).get("points") if isinstance(snap, dict) else None
            if isinstance(part, dict):
                for key, n in (part.get("stream") or {}).items():
                    points.adjust(str(key), float(n))  # type: ignore[arg-type]
                for key, (uid, nick) in (part.get("names") or {}).items():
                    points.names.setdefault(str(key), (str(uid), str(nick)))
    finally:
        con.close()
    return points.table()


def run_points(args: argparse.Namespace) -> int:
    if not args.state.is_file():
        print(f"livebot points: no such file: {args.state}", file=sys.stderr)
        return 2
    spec = None
    if args.rules is not None:
        from bot.engine.loader import RuleLoadError, load_rules

        try:
            spec = load_rules(args.rules).settings.points
        except RuleLoadError as exc:
            print(exc, file=sys.stderr)
            return 2
    try:
        text = points_csv(points_table(args.state, args.room, spec))
    except (sqlite3.Error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        print(f"livebot points: {args.state}: cannot read the points: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)
    except OSError as exc:
        print(f"livebot points: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    return 0
