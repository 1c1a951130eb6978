"""The optional chat sink: only `say` lines, a hard per-minute cap, trimmed text, failures raised
for the dispatcher to retry, and the session id never shown."""

from __future__ import annotations

import pytest

from bot.actions.dispatcher import Dispatcher
from bot.actions.model import Action
from bot.sinks.chat import MAX_CHARS, ChatSink


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def say(text: str, kind: str = "say") -> Action:
    return Action(ts=0, kind=kind, text=text, rule="r")


async def test_only_say_lines_within_the_budget_are_sent():
    sent: list[str] = []

    async def sender(text: str) -> None:
        sent.append(text)

    clock = Clock()
    sink = ChatSink(sender, max_per_minute=3, clock=clock)
    # the dispatcher hands the sink only its kinds (ChatSink.kinds)
    await Dispatcher([sink]).dispatch([say("a"), say("alert!", "alert"), say("b"), say("c"), say("d")])
    assert sent == ["a", "b", "c"] and sink.over_budget == 1
    clock.t = 59.9
    await sink.send([say("e")])
    assert sink.over_budget == 2
    clock.t = 60.1  # the first lines are a minute old: room again
    await sink.send([say("f")])
    assert sent[-1] == "f" and sink.sent == 4


async def test_long_and_multiline_text_is_trimmed_to_one_comment():
    sent: list[str] = []

    async def sender(text: str) -> None:
        sent.append(text)

    await ChatSink(sender).send([say("line one\nline two " + "x" * 300)])
    assert len(sent[0]) == MAX_CHARS and sent[0].startswith("line one line two") and sent[0].endswith("…")


async def test_a_failed_send_raises_for_the_dispatcher_and_is_not_counted():
    async def sender(text: str) -> None:
        raise ConnectionError("signer down")

    sink = ChatSink(sender)
    with pytest.raises(ConnectionError):
        await sink.send([say("hi")])
    assert sink.sent == 0


def test_the_sender_never_shows_the_session_id():
    pytest.importorskip("TikTokLive")
    from bot.sinks.chat import TikTokChatSender

    sender = TikTokChatSender("@creator", "SESSION-SECRET-123", sign_api_key="KEY-SECRET-456")
    assert "SESSION-SECRET-123" not in repr(sender) and "KEY-SECRET-456" not in repr(sender)
