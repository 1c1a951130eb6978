"""Session analytics: ``livebot report``.

One streaming pass over a session file (the engine's own duplicate dropping and streak folding)
gives a ``SessionStats``; an actions file read against it gives an ``ActionStats``. Both are shown
as rich tables on the terminal and as a self-contained HTML report with charts.

For the daemon, at the end of a live::

    from bot.report import write_report
    write_report(session_path, actions_path_or_None, html_path)   # blocking: run it in a thread
"""

from __future__ import annotations

from pathlib import Path

from bot.report.effects import DEFAULT_WINDOW_MS, ActionStats, analyze_actions
from bot.report.fmt import DEFAULT_CURRENCY, DEFAULT_RATE
from bot.report.stats import SessionStats, analyze_session

__all__ = ["ActionStats", "SessionStats", "analyze_actions", "analyze_session", "write_report",
           "DEFAULT_RATE", "DEFAULT_CURRENCY", "DEFAULT_WINDOW_MS"]


def write_report(session_path: str | Path, actions_path: str | Path | None, html_path: str | Path, *,
                 rate: float = DEFAULT_RATE, currency: str = DEFAULT_CURRENCY, top: int = 10,
                 window_ms: int = DEFAULT_WINDOW_MS, streak_silence_ms: int = 5000,
                 dedup_window: int = 500_000) -> SessionStats:
    """Read a session file (and the actions the bot took during it), write the HTML report to
    ``html_path`` atomically, and return the session's numbers.

    Blocking (reading the file and drawing the charts take seconds on a long stream), so call it
    from a worker thread in async code (``await asyncio.to_thread(write_report, ...)``). Raises
    ``OSError`` if a file cannot be read or written; bad lines inside the files are counted, never
    raised."""
    from bot.report.html import render_html, write_html

    stats = analyze_session(session_path, streak_silence_ms=streak_silence_ms, dedup_window=dedup_window)
    actions = analyze_actions(actions_path, stats, window_ms) if actions_path is not None else None
    page = render_html(stats, actions, rate=rate, currency=currency, top=top)
    if actions_path is not None:  # giveaways drawn (bot/report/giveaways.py)
        from bot.report.giveaways import add_to_report, read_giveaways

        page = add_to_report(page, read_giveaways(actions_path))
    write_html(html_path, page)
    return stats
