"""The policy guard's part of ``livebot report``: what it masked or suppressed, by check id.

From an actions file (``--actions``, a replay's ``--out`` or ``livebot run``'s JSONL): the actions
that carry ``data.policy`` (masked parts; by check and field). With ``--policy``: the session's
own viewer text, screened as the engine screens it (default pack), so a recorded stream shows what
the guard would mask or moderate: nicknames and comments by check, moderation events by reason.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import IO

from bot.events.model import CHAT
from bot.policy.guard import PolicyRuntime


def actions_summary(path: Path) -> Counter[str]:
    """``"masked link (event.text)"`` → count, over the actions that carry ``data.policy``."""
    out: Counter[str] = Counter()
    with open(path, "rb") as f:
        for line in f:
            if b'"policy"' not in line:
                continue
            try:
                entries = (json.loads(line).get("data") or {}).get("policy") or []
            except (ValueError, AttributeError):
                continue
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict):
                    out[f"{e.get('done', 'masked')} {e.get('check', '?')} ({e.get('field', '?')})"] += 1
    return out


def session_summary(path: Path) -> dict[str, Counter[str]]:
    """The session's viewer text through the default pack: masked nicknames and comments by
    check, and moderation events by reason."""
    from bot.sources.replay import ReplaySource

    guard = PolicyRuntime(None)
    nicknames: Counter[str] = Counter()
    comments: Counter[str] = Counter()
    seen: set[str] = set()
    for ev in ReplaySource(path).events():
        u = ev.user
        if u is not None and u.nickname and u.nickname not in seen:
            seen.add(u.nickname)
            for check, _ in guard.clean(u.nickname)[2]:
                nicknames[check] += 1
        if ev.type == CHAT:
            text = str(ev.data.get("text", ""))
            for check, _ in guard.clean(text)[2]:
                comments[check] += 1
            guard.moderate(ev, ev.ts)
    return {"nicknames": nicknames, "comments": comments, "moderation": guard.moderations}


def print_policy(out: IO[str], actions: Counter[str] | None, session: dict[str, Counter[str]] | None) -> None:
    def line(c: Counter[str]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in c.most_common()) or "none"

    print("\nPolicy guard", file=out)
    if actions is not None:
        print(f"  actions with masked viewer text: {sum(actions.values()):,} part(s): {line(actions)}", file=out)
    if session is not None:
        print(f"  nicknames the guard masks: {line(session['nicknames'])}", file=out)
        print(f"  comments the guard masks: {line(session['comments'])}", file=out)
        print(f"  moderation events (reason): {line(session['moderation'])}", file=out)
