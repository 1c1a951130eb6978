"""Giveaways in ``livebot report``: each ``giveaway_result`` action of the actions file (when it
was drawn, by which rule, how many joined, who won), on the terminal and in the HTML report."""

from __future__ import annotations

import gzip
import html
from pathlib import Path
from typing import Any

import orjson

MAX_SHOWN = 100


def read_giveaways(path: str | Path) -> list[dict[str, Any]]:
    """The giveaways drawn, in order; lines that are not actions are skipped (the rules table counts them)."""
    path = Path(path)
    found: list[dict[str, Any]] = []
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:  # noqa: SIM115
        for line in f:
            try:
                rec = orjson.loads(line)
                if rec.get("kind") != "giveaway_result" or not isinstance(rec.get("data"), dict):
                    continue
                winners = [w for w in rec["data"].get("winners", []) if isinstance(w, dict)]
                found.append({"ts": int(rec["ts"]), "rule": str(rec.get("rule", "")),
                              "entrants": int(rec["data"].get("entrants", 0)),
                              "winners": [str(w.get("nickname") or w.get("unique_id") or "")[:80] for w in winners]})
            except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
                continue
            if len(found) >= MAX_SHOWN:
                break
    return found


def print_giveaways(giveaways: list[dict[str, Any]], out: Any = None) -> None:
    if not giveaways:
        return
    from rich.text import Text

    from bot.report import fmt
    from bot.report.terminal import _table, console

    c = out or console()
    t = _table("Giveaways", "Drawn", "Rule", "Joined", "Winners", numeric=(2,))
    for g in giveaways:
        t.add_row(fmt.clock(g["ts"]), Text(fmt.plain(g["rule"], 40)), fmt.num(g["entrants"]),
                  Text(fmt.plain(", ".join(g["winners"]) or "nobody", 200)))
    c.print(t)


def giveaways_html(giveaways: list[dict[str, Any]]) -> str:
    """A section for the HTML report (every value escaped)."""
    if not giveaways:
        return ""
    from bot.report import fmt

    rows = "".join(f"<tr><td>{html.escape(fmt.clock(g['ts']))}</td><td class=\"rule\">{html.escape(g['rule'])}</td>"
                   f"<td class=\"n\">{g['entrants']:,}</td><td>{html.escape(', '.join(g['winners']) or 'nobody')}</td></tr>"
                   for g in giveaways)
    return ("<h2>Giveaways</h2>\n<table><tr><th>Drawn</th><th>Rule</th><th class=\"n\">Joined</th><th>Winners</th></tr>"
            f"{rows}</table>\n")


def add_to_report(page: str, giveaways: list[dict[str, Any]]) -> str:
    """The report page with the giveaways' section before its data-quality section."""
    section = giveaways_html(giveaways)
    marker = "<h2>Data quality</h2>"
    if not section or marker not in page:
        return page
    return page.replace(marker, section + marker, 1)
