"""Streamer.bot's DoAction by name or id with arguments, against a local server that follows its
documented WebSocket requests (tests/streamerbot_server.py): Hello / Authenticate, GetActions,
an unknown action, a wrong password."""

from __future__ import annotations

import pytest

from bot.actions.model import Action
from bot.integrations.base import AuthFailed, IntegrationRefused
from bot.integrations.streamerbot import StreamerbotSink
from streamerbot_server import StreamerbotServer


def act(text: str = "", user: str | None = "ana", **data) -> Action:
    return Action(ts=0, kind="streamerbot", text=text, rule="lion", user=user, data=data)


async def test_do_action_by_name_and_by_id_with_args_after_authenticating():
    async with StreamerbotServer(password="s3cret") as sb:
        sink = StreamerbotSink(sb.url, password="s3cret", timeout_s=5)
        await sink.send([act("Lion from ana!", action="Lion Roar", args={"diamonds": 29999})])
        await sink.send([act(action_id=sb.actions["Confetti Cannon"])])
        assert sb.done == [("Lion Roar", {"user": "ana", "rule": "lion", "text": "Lion from ana!", "diamonds": 29999}),
                           ("Confetti Cannon", {"user": "ana", "rule": "lion"})]
        await sink.close()


async def test_an_unknown_action_is_refused_for_good_and_the_connection_goes_on():
    async with StreamerbotServer() as sb:
        sink = StreamerbotSink(sb.url, timeout_s=5)
        with pytest.raises(IntegrationRefused, match="Action not found.*'No Such'"):
            await sink.send([act(action="No Such")])
        with pytest.raises(IntegrationRefused, match="needs data.action"):
            await sink.send([act()])
        await sink.send([act(action="Lion Roar")])
        assert [name for name, _ in sb.done] == ["Lion Roar"]
        await sink.close()


async def test_a_wrong_or_missing_password_is_refused():
    async with StreamerbotServer(password="right") as sb:
        with pytest.raises(AuthFailed, match="refused the password"):
            await StreamerbotSink(sb.url, password="wrong", timeout_s=5).connect()
        with pytest.raises(AuthFailed, match="needs a password"):
            await StreamerbotSink(sb.url, timeout_s=5).connect()
        assert sb.refused == 1 and sb.done == []


async def test_a_connection_closed_at_authentication_is_a_refused_password():
    async with StreamerbotServer(password="right") as sb:
        sb.silent_refusal = True  # closed without an answer
        sink = StreamerbotSink(sb.url, password="wrong", timeout_s=5)
        with pytest.raises(AuthFailed, match="closed the connection at authentication"):
            await sink.connect()
        probe = await StreamerbotSink(sb.url, password="wrong", timeout_s=5).probe()
        assert probe.reachable and not probe.authenticated and sb.refused == 2


async def test_check_lists_the_action_names():
    async with StreamerbotServer(password="pw", actions=["Lion Roar", "Rose Rain"]) as sb:
        probe = await StreamerbotSink(sb.url, password="pw", timeout_s=5).probe()
        assert probe.ok and probe.saw["actions"] == ["Lion Roar", "Rose Rain"]
        assert "0.2.6" in probe.notes[0]


async def test_viewer_text_in_the_text_and_args_reaches_streamerbot_filtered():
    from bot.integrations.text import MAX_TEXT

    nasty = "ana\u202e\x1b[2J\x00 roars" + "!" * 3000
    async with StreamerbotServer() as sb:
        sink = StreamerbotSink(sb.url, timeout_s=5)
        await sink.send([act(nasty, action="Lion Roar", args={"nickname": nasty, "count": 3})])
        [(_, args)] = sb.done
        assert args["text"] == args["nickname"] and args["count"] == 3
        assert args["text"].startswith("ana[2J roars!") and len(args["text"]) == MAX_TEXT
        assert not any(c in args["text"] for c in "\u202e\x1b\x00")
        await sink.close()
