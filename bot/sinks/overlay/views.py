"""What the overlay page shows, kept on the server: actions in, page messages out.

Pure and synchronous (the clock is injected), so the page's state is tested without a browser.
Every message is plain data with text fields only; the page puts them in the DOM as text.

Messages (``t`` is the type)::

    {"t": "alert", "kind", "text", "tier", "user"}     gift alerts, shout-outs, custom kinds
    {"t": "banner", "text", "ms"}                       call to action; ms 0: until the next one
    {"t": "poll", "question", "options": [{"name", "votes"}], "total", "remaining_ms"}
    {"t": "poll_result", "question", "options", "total", "winners", "text", "ms"}
    {"t": "board", "top": [{"rank", "nickname", "diamonds"}]}
    {"t": "tts", "text", "user"}
    {"t": "goal", ...}, {"t": "timer", ...}             goal bars, the subathon clock (features.py)
    {"t": "state", "poll", "board", "banner", "goals", "timer"}   the current state, sent on (re)connect
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable, Iterable

from bot.actions.model import Action
from bot.sinks.overlay.features import ALERT_LIKE_KINDS, FEATURE_KINDS, FeatureView

ALERT_KINDS = frozenset({"alert", "shoutout"})
OVERLAY_KINDS = ALERT_KINDS | {"cta", "poll", "poll_update", "poll_result", "leaderboard", "tts"} | FEATURE_KINDS \
    | ALERT_LIKE_KINDS
TIER_DIAMONDS = ((1000, "legendary"), (100, "big"))  # when an alert has diamonds but no tier
_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")


def _name(value: Any) -> str:
    """A value safe to use in a CSS class name, or ``""``."""
    return value if isinstance(value, str) and _NAME.match(value) else ""


def _int(value: Any) -> int:
    """Numbers and numeric text (data written as text in a rule); anything else is 0."""
    try:
        number = float(str(value).replace(",", "")) if not isinstance(value, bool) else 0.0
    except ValueError:
        return 0
    return int(number) if math.isfinite(number) else 0


def alert_tier(action: Action) -> str:
    """``data.tier`` when it is a plain name, else from ``data.diamonds``/``total_diamonds``."""
    tier = _name(action.data.get("tier"))
    if tier:
        return tier
    diamonds = _int(action.data.get("total_diamonds", action.data.get("diamonds", 0)))
    return next((name for least, name in TIER_DIAMONDS if diamonds >= least), "")


class OverlayState:
    """The open poll, the board and the banner; turns each action into a page message.

    ``banner_ms``: how long a CTA banner stays (0: until the next). ``result_ms``: how long a
    poll's result stays. ``board_size``: places shown. ``kinds``: extra action kinds shown as
    alerts. ``clock``: monotonic seconds.
    """

    def __init__(self, *, banner_ms: int = 30_000, result_ms: int = 15_000, board_size: int = 5,
                 kinds: Iterable[str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.banner_ms = banner_ms
        self.result_ms = result_ms
        self.board_size = board_size
        self.kinds = OVERLAY_KINDS | frozenset(kinds)
        self.clock = clock
        self.poll: dict[str, Any] | None = None
        self._poll_ends: float | None = None  # clock() when the open poll ends, if known
        self.board: list[dict[str, Any]] = []
        self.banner: dict[str, Any] | None = None
        self._banner_at = 0.0
        self.features = FeatureView(clock)  # goals and the subathon timer (features.py)

    def apply(self, action: Action) -> dict[str, Any] | None:
        """The page message for ``action`` (None: not for the page), updating the state."""
        kind = action.kind
        if kind not in self.kinds:
            return None
        if kind == "cta":
            self.banner, self._banner_at = {"t": "banner", "text": action.text, "ms": self.banner_ms}, self.clock()
            return self.banner
        if kind == "poll":
            return self._open_poll(action)
        if kind == "poll_update":
            return self._update_poll(action)
        if kind == "poll_result":
            return self._close_poll(action)
        if kind == "leaderboard":
            return self._board(action)
        if kind == "tts":
            msg = {"t": "tts", "text": action.text, "user": action.user}
            for key in ("voice", "lang"):  # a viewer's own voice (bot/engine/voices.py)
                if isinstance(action.data.get(key), str) and len(action.data[key]) <= 100:
                    msg[key] = action.data[key]
            return msg
        if kind in FEATURE_KINDS:
            return self.features.apply(action)
        return {"t": "alert", "kind": _name(kind), "text": action.text, "tier": alert_tier(action),
                "user": action.user}

    def snapshot(self) -> dict[str, Any]:
        """What a page that just (re)connected needs: open poll, board, banner (time left)."""
        banner = None
        if self.banner is not None:
            left = self.banner_ms - int((self.clock() - self._banner_at) * 1000) if self.banner_ms else 0
            if not self.banner_ms or left > 0:
                banner = {**self.banner, "ms": left}
        return {"t": "state", "poll": self._poll_message(), "board": {"t": "board", "top": self.board},
                "banner": banner, **self.features.snapshot()}

    # -- polls ---------------------------------------------------------------------------------

    def _open_poll(self, action: Action) -> dict[str, Any]:
        options = [str(o) for o in action.data.get("options") or ()]
        self.poll = {"question": action.text, "options": [{"name": o, "votes": 0} for o in options], "total": 0}
        duration = _int(action.data.get("duration_ms"))
        self._poll_ends = self.clock() + duration / 1000 if duration > 0 else None
        return self._poll_message()  # type: ignore[return-value]

    def _update_poll(self, action: Action) -> dict[str, Any] | None:
        votes = action.data.get("votes")
        if not isinstance(votes, dict):
            return None
        if self.poll is None:  # the overlay started while a poll was open
            self.poll = {"question": str(action.data.get("question", "")), "options": [], "total": 0}
            self._poll_ends = None
        self.poll["options"] = [{"name": str(name), "votes": _int(n)} for name, n in votes.items()]
        self.poll["total"] = _int(action.data.get("total", sum(o["votes"] for o in self.poll["options"])))
        return self._poll_message()

    def _close_poll(self, action: Action) -> dict[str, Any]:
        self.poll = self._poll_ends = None
        votes = action.data.get("votes") if isinstance(action.data.get("votes"), dict) else {}
        winners = action.data.get("winners")
        return {"t": "poll_result", "question": str(action.data.get("question", "")),
                "options": [{"name": str(name), "votes": _int(n)} for name, n in votes.items()],
                "total": _int(action.data.get("total")), "text": action.text, "ms": self.result_ms,
                "winners": [str(w) for w in winners] if isinstance(winners, list) else []}

    def _poll_message(self) -> dict[str, Any] | None:
        if self.poll is None:
            return None
        left = None if self._poll_ends is None else max(0, int((self._poll_ends - self.clock()) * 1000))
        return {"t": "poll", **self.poll, "remaining_ms": left}

    # -- the board -----------------------------------------------------------------------------

    def _board(self, action: Action) -> dict[str, Any] | None:
        top = action.data.get("top")
        if not isinstance(top, list):
            return None
        board = []
        for i, g in enumerate(top[: self.board_size], 1):
            if isinstance(g, dict):
                board.append({"rank": _int(g.get("rank", i)) or i, "nickname": str(g.get("nickname", "")),
                              "diamonds": _int(g.get("diamonds"))})
        self.board = board
        return {"t": "board", "top": board}
