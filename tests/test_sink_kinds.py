"""Which actions reach a sink, and whether its actions only make sense live, are the sink's own
attributes (``kinds`` / ``hidden_kinds``, ``live_only``), read once by the dispatchers: never a
list of sink names (a webhook called ``overlay`` is a webhook like any other)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.actions.delivery import PermanentSinkError
from bot.actions.dispatcher import Dispatcher, LiveDispatcher
from bot.actions.journal import DeliveryJournal
from bot.actions.model import Action
from bot.actions.resend import Resend
from bot.config import load_config
from bot.sinks.console import ConsoleSink


def act(i: int, kind: str = "say") -> Action:
    return Action(ts=i, kind=kind, text=f"line {i}", rule="r", event_id=f"e{i}")


class Refusing:
    """A sink that refuses everything for good (a webhook answering 404), by any name."""

    def __init__(self, name: str, *, live_only: bool = False) -> None:
        self.name = name
        self.live_only = live_only
        self.tries = 0

    async def send(self, actions) -> None:
        self.tries += 1
        raise PermanentSinkError("refused")

    async def close(self) -> None:
        pass


class Taking:
    def __init__(self, name: str, kinds: frozenset[str] | None = None) -> None:
        self.name = name
        self.kinds = kinds
        self.got: list[str] = []

    async def send(self, actions) -> None:
        self.got += [a.kind for a in actions]

    async def close(self) -> None:
        pass


async def test_a_sink_named_overlay_is_not_treated_as_the_overlay(tmp_path):
    """Its dead letters are settled in the journal (``livebot resend`` sends them) and it is not
    live-only; a live-only sink of any other name is."""
    journal = DeliveryJournal(tmp_path / "j")
    named_overlay, screen = Refusing("overlay"), Refusing("screen", live_only=True)
    d = LiveDispatcher([named_overlay, screen], dead_letter=tmp_path / "dead.jsonl", journal=journal)
    assert d.live_only == frozenset({"screen"})
    await d.dispatch([act(1)])
    await d.close()
    again = DeliveryJournal(tmp_path / "j")
    assert again.already_delivered("overlay", act(1))  # settled: resend has it
    assert not again.already_delivered("screen", act(1))  # live-only: a restart shows it again


def test_resend_sends_to_a_webhook_named_overlay_and_keeps_the_real_overlays_lines(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("sinks:\n  console: false\n")
    named = tmp_path / "named.yaml"
    named.write_text("sinks:\n  webhooks:\n    - {url: 'http://127.0.0.1:9/x', name: overlay}\n")
    dead = tmp_path / "dead.jsonl"
    dead.write_text("")
    assert Resend(dead, load_config(plain))._not_a_target("overlay") == "the overlay shows actions live"
    assert Resend(dead, load_config(plain))._not_a_target("console") == "the console shows actions live"
    assert Resend(dead, load_config(named))._not_a_target("overlay") is None
    assert Resend(dead, load_config(plain))._not_a_target("jsonl") is None


async def test_each_sink_gets_only_its_kinds_filtered_once_in_the_live_dispatcher():
    obs, every = Taking("obs", frozenset({"obs_scene"})), Taking("every")
    async with LiveDispatcher([obs, every]) as d:
        await d.dispatch([act(1), act(2, "obs_scene"), act(3, "alert")])
        while d.stats["every"].sent < 3 or d.stats["obs"].sent < 1:
            await asyncio.sleep(0.001)
    assert obs.got == ["obs_scene"] and every.got == ["say", "obs_scene", "alert"]
    assert d.stats["obs"].dispatched == 1  # counted as what it was given, not what was fired


async def test_the_replay_dispatcher_filters_the_same_way(tmp_path):
    obs, every = Taking("obs", frozenset({"obs_scene"})), Taking("every")
    out = Path(tmp_path / "console.txt").open("w")
    console = ConsoleSink(out)
    d = Dispatcher([obs, every, console])
    await d.dispatch([act(1), act(2, "obs_scene"), act(3, "leaderboard")])
    out.close()
    assert obs.got == ["obs_scene"] and every.got == ["say", "obs_scene", "leaderboard"]
    shown = (tmp_path / "console.txt").read_text()
    assert "line 1" in shown and "line 2" in shown and "line 3" not in shown  # hidden_kinds
    assert d.sent == {"obs": 1, "every": 3, "console": 2}
