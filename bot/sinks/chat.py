"""Say ``say`` actions in the live chat, as the creator: optional and OFF by default.

It needs the creator's TikTok ``sessionid`` cookie (and ``tt-target-idc``) and a signing-server
plan that allows sending (Euler Stream's paid tier), through the optional ``TikTokLive`` package.
The risk, plainly: whoever holds the session id can act as the creator's account, and TikTok may
rate-limit, flag or ban accounts that post automated messages. Keep the secret out of files you
share (``LIVEBOT_SESSION_ID``), and keep the budget low.

Besides the engine's chat budget (``settings: chat_per_minute``), this sink enforces a hard cap of
its own (``max_per_minute``): lines over it are not sent (counted and logged), never queued up to
burst later. Lines are trimmed to TikTok's comment length. A send that fails raises, so the live
dispatcher retries it and, past its limit, writes it to the dead-letter file.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Sequence

import structlog

from bot.actions.model import Action
from bot.sinks.cap import MinuteCap

log = structlog.get_logger("bot.chat")

MAX_CHARS = 150  # TikTok LIVE comments are cut here
CHAT_KINDS = frozenset({"say"})

Sender = Callable[[str], Awaitable[None]]


class ChatSendError(RuntimeError):
    pass


class TikTokChatSender:
    """Sends one line through TikTokLive's web client (the signer's ``send_room_chat``)."""

    def __init__(self, unique_id: str, session_id: str, tt_target_idc: str | None = None,
                 sign_api_key: str | None = None) -> None:
        from bot.sources.tiktok import INSTALL_HINT, TikTokLiveMissing

        try:
            from TikTokLive import TikTokLiveClient
        except ImportError as exc:
            raise TikTokLiveMissing(INSTALL_HINT) from exc
        web_kwargs = {"signer_kwargs": {"sign_api_key": sign_api_key}} if sign_api_key else {}
        self._client = TikTokLiveClient(unique_id, web_kwargs=web_kwargs)
        self._unique_id = unique_id.lstrip("@")
        self._session = (session_id, tt_target_idc)
        self._room_id: int | None = None

    def __repr__(self) -> str:  # never the session id
        return f"TikTokChatSender(@{self._unique_id}, session_id=***)"

    async def __call__(self, text: str) -> None:
        web = self._client.web
        if self._room_id is None:
            self._room_id = int(await web.fetch_room_id_from_api(self._unique_id))
        session_id, idc = self._session
        reply = await web.send_room_chat(content=text, room_id=self._room_id, session_id=session_id,
                                         tt_target_idc=idc)
        code = reply.get("code") if isinstance(reply, dict) else None
        if code not in (0, 200, None):
            raise ChatSendError(f"TikTok refused the chat line (code {code}): {str(reply.get('message'))[:100]}")


class ChatSink:
    name = "chat"
    max_batch = 1
    kinds = CHAT_KINDS  # the dispatcher hands over only these
    live_only = True
    live_only_why = "a late chat line makes no sense, and the chat sink drops lines over its cap"

    def __init__(self, sender: Sender, *, max_per_minute: int = 6, clock: Callable[[], float] = time.monotonic) -> None:
        self.sender = sender
        self.max_per_minute = max_per_minute
        self.clock = clock
        self.cap = MinuteCap(max_per_minute, clock)
        self.sent = 0
        self.over_budget = 0

    async def send(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if not action.text.strip():
                continue
            if not self.cap.allowed():
                self.over_budget += 1
                if self.over_budget <= 5 or self.over_budget % 100 == 0:
                    log.warning("chat_over_budget", rule=action.rule, over_budget=self.over_budget,
                                max_per_minute=self.max_per_minute)
                continue
            text = " ".join(action.text.split())
            if len(text) > MAX_CHARS:
                text = text[: MAX_CHARS - 1] + "…"
            await self.sender(text)
            self.cap.took()
            self.sent += 1

    async def close(self) -> None:
        pass
