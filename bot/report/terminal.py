"""The terminal summary: rich tables. Viewer text goes in as ``Text`` (never parsed as rich markup)
with control characters removed, so a nickname cannot style or move the terminal."""

from __future__ import annotations

from typing import IO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.report import fmt
from bot.report.collabs import compare_rows as collab_compare_rows
from bot.report.effects import ActionStats
from bot.report.html import base_text, compare_rule_rows, quality_rows, rule_rows, window_text
from bot.report.stats import SessionStats


def console(file: IO[str] | None = None) -> Console:
    import sys

    out = file or sys.stdout
    tty = hasattr(out, "isatty") and out.isatty()
    return Console(file=out, width=None if tty else 110, highlight=False, emoji=False,
                   color_system="auto" if tty else None)


def _table(title: str, *columns: str, numeric: tuple[int, ...] = (), header: bool = True) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
              show_header=header)
    for i, c in enumerate(columns):
        t.add_column(c, justify="right" if i in numeric else "left", overflow="fold", no_wrap=i in numeric or i == 0)
    return t


def _who(nickname: str, unique_id: str) -> Text:
    text = Text(fmt.plain(nickname))
    text.append(f" @{fmt.plain(unique_id, 30)}", style="dim")
    return text


def print_report(stats: SessionStats, actions: ActionStats | None = None, *, rate: float = fmt.DEFAULT_RATE,
                 currency: str = fmt.DEFAULT_CURRENCY, top: int = 10, out: Console | None = None) -> None:
    c = out or console()
    summary = stats.summary(rate)
    head = Text("Session report: ", style="bold")
    head.append(fmt.plain(stats.path, 200))
    c.print(head)
    c.print(f"{fmt.clock(stats.started, True)} – {fmt.clock(stats.ended)} · {fmt.duration(stats.duration_ms)}")

    t = _table("Summary", "Metric", "Value", numeric=(1,))
    for label, key, f in fmt.metrics(currency):
        t.add_row(label, f(summary[key]))
    c.print(t)
    c.print(f"Estimated earnings are an estimate, not a payout: {fmt.num(stats.diamonds)} diamonds × "
            f"{fmt.rate_text(rate, currency)} per diamond. What TikTok pays depends on region, agreements and fees.")

    gifters = stats.top_gifters(top)
    if gifters:
        t = _table("Top gifters", "#", "Viewer", "Diamonds", "Gifts", "Share", numeric=(0, 2, 3, 4))
        for g in gifters:
            t.add_row(str(g["rank"]), _who(g["nickname"], g["unique_id"]), fmt.num(g["diamonds"]), fmt.num(g["gifts"]),
                      fmt.percent(g["share"]))
        c.print(t)

    types = stats.gifts_by_type(top)
    if types:
        t = _table("Gifts by type", "Gift", "Each", "Gifts", "Count", "Diamonds", numeric=(1, 2, 3, 4))
        for g in types:
            t.add_row(Text(fmt.plain(g.name)), fmt.num(g.diamonds_each), fmt.num(g.gifts), fmt.num(g.units),
                      fmt.num(g.diamonds))
        c.print(t)

    print_collabs(stats, c, top)

    busiest = stats.busiest_minutes(5)
    if busiest:
        t = _table("Busiest minutes (by viewer actions)", "Minute", "Actions", "Comments", "Likes", "Gifts",
                   "Diamonds", "Follows", numeric=(1, 2, 3, 4, 5, 6))
        for m in busiest:
            t.add_row(f"{fmt.offset(m['minute'] * 60_000)} ({fmt.clock(m['at'])})", fmt.num(m["activity"]),
                      fmt.num(m["chats"]), fmt.num(m["likes"]), fmt.num(m["gifts"]), fmt.num(m["diamonds"]),
                      fmt.num(m["follows"]))
        c.print(t)

    followers = stats.follower_list(10)
    if followers:
        line = Text(f"New followers ({fmt.num(stats.new_followers)}): ", style="bold")
        line.append(", ".join(f"{fmt.plain(f['nickname'], 30)} (@{fmt.plain(f['unique_id'], 30)})" for f in followers))
        if stats.new_followers > len(followers):
            line.append(f", … and {fmt.num(stats.new_followers - len(followers))} more")
        c.print(line)

    if actions is not None:
        print_rules(actions, c)

    t = _table("Data quality", "", "", numeric=(1,), header=False)
    for label, value in quality_rows(stats):
        t.add_row(label, value)
    c.print(t)


def print_collabs(stats: SessionStats, c: Console, top: int = 10) -> None:
    """Battles (won / lost / draw, the diamonds received during each) and envelopes, when there were any."""
    co = stats.collabs
    if co.battle_count:
        title = (f"Battles: {fmt.num(co.battle_count)} ({fmt.num(co.won)} won, {fmt.num(co.lost)} lost, "
                 f"{fmt.num(co.draws)} draw{'' if co.draws == 1 else 's'}"
                 + (f", {fmt.num(co.unfinished)} unfinished" if co.unfinished else "")
                 + f"); {fmt.num(co.battle_diamonds)} diamonds received during battles")
        t = _table(title, "#", "Start", "Opponent", "Result", "Score", "Diamonds", "Gifts", "MVP", numeric=(0, 5, 6))
        rows = co.battle_rows(stats.started)
        for r in rows[:max(top, 10)]:
            start = fmt.offset(r["offset"]) + ("" if r["seen_start"] else " (joined late)")
            t.add_row(str(r["n"]), start, Text(fmt.plain(r["opponents"], 60)), r["outcome"],
                      f"{fmt.num(r['our_score'])} : {fmt.num(r['their_score'])}", fmt.num(r["diamonds"]),
                      fmt.num(r["gifts"]), Text(fmt.plain(r["mvp"], 30)) if r["mvp"] else "–")
        c.print(t)
        if len(rows) > max(top, 10):
            c.print(f"… and {fmt.num(co.battle_count - max(top, 10))} more battles.")
    if co.envelopes:
        c.print(f"Envelopes (treasure chests): {fmt.num(co.envelopes)}, worth {fmt.num(co.envelope_coins)} coins"
                + (f" and {fmt.num(co.envelope_diamonds)} diamonds" if co.envelope_diamonds else "") + ".")


def print_rules(actions: ActionStats, c: Console) -> None:
    w = window_text(actions.window_ms)
    t = _table(f"Rules: {fmt.num(actions.total)} actions; follows, comments and diamonds per {w} after a firing",
               "Rule", "Trigger", "Fired", "Follows", "vs base", "Comments", "vs base", "Diamonds", "vs base",
               numeric=(2, 3, 4, 5, 6, 7, 8))
    for r in rule_rows(actions):
        cells = [Text(fmt.plain(r["rule"])), r["trigger"], fmt.num(r["fired"])]
        for m in r["measures"]:
            cells += [m["after"], m["ratio"]]
        t.add_row(*cells)
    c.print(t)
    c.print(f"Base rate over the whole session: {base_text(actions)}. Association, not cause: windows overlap, and "
            "rules triggered by events fire when the stream is already busy; it means most for timer rules.")
    if actions.malformed or actions.outside:
        c.print(f"Actions: {fmt.num(actions.malformed)} malformed line(s) skipped; {fmt.num(actions.outside)} "
                "outside the session's time span left out.")


def print_compare(a: SessionStats, b: SessionStats,
                  actions: tuple[ActionStats | None, ActionStats | None] = (None, None), *, rate: float = fmt.DEFAULT_RATE, currency: str = fmt.DEFAULT_CURRENCY, top: int = 10,
                  out: Console | None = None) -> None:
    c = out or console()
    for label, s in (("A", a), ("B", b)):
        line = Text(f"{label}: ", style="bold")
        line.append(fmt.plain(s.path, 200))
        line.append(f"  ({fmt.clock(s.started, True)}, {fmt.duration(s.duration_ms)})")
        c.print(line)
    t = _table("Sessions compared", "Metric", "A", "B", "Change (B − A)", numeric=(1, 2, 3))
    for row in fmt.compare_rows(a.summary(rate), b.summary(rate), currency) + collab_compare_rows(a.collabs, b.collabs):
        style = "green" if row["up"] is True else "red" if row["up"] is False else ""
        t.add_row(row["label"], row["a"], row["b"], Text(row["change"], style=style))
    c.print(t)
    c.print(f"Earnings are estimates: diamonds × {fmt.rate_text(rate, currency)} per diamond.")

    ga, gb = a.top_gifters(top), b.top_gifters(top)
    if ga or gb:
        t = _table("Top gifters", "#", "A", "Diamonds", "B", "Diamonds", numeric=(0, 2, 4))
        for i in range(max(len(ga), len(gb))):
            x = ga[i] if i < len(ga) else None
            y = gb[i] if i < len(gb) else None
            t.add_row(str(i + 1), _who(x["nickname"], x["unique_id"]) if x else "", fmt.num(x["diamonds"]) if x else "",
                      _who(y["nickname"], y["unique_id"]) if y else "", fmt.num(y["diamonds"]) if y else "")
        c.print(t)

    rows = compare_rule_rows(*actions)
    if rows:
        t = _table("Rules fired", "Rule", "A", "B", "Change", numeric=(1, 2, 3))
        for r in rows:
            t.add_row(Text(fmt.plain(r["rule"])), r["a"], r["b"], r["change"])
        c.print(t)

    t = _table("Data quality", "", "A", "B", numeric=(1, 2))
    for (label, va), (_, vb) in zip(quality_rows(a), quality_rows(b)):
        t.add_row(label, va, vb)
    c.print(t)
