"""RCON: gifts run game commands through a kept client, only allow-listed commands, viewer text
only quoted (and a rule putting it in raw refused at load), against a local server speaking the
Source RCON protocol (tests/rcon_server.py)."""

from __future__ import annotations

import json

import pytest

from bot.actions.model import Action
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.integrations.base import AuthFailed, IntegrationDown, IntegrationRefused
from bot.integrations.commands import rcon_quote
from bot.integrations.rcon import RconSink
from bot.testing import gift, run_events, user
from rcon_server import RconServer

ALLOW = ["summon", "say", "execute", "tellraw"]


def cmd(text: str) -> Action:
    return Action(ts=0, kind="rcon", text=text, rule="creeper", user="u1")


async def test_allowed_commands_run_on_one_authenticated_connection():
    async with RconServer(password="pw") as mc:
        mc.split = True  # answers arrive in pieces
        sink = RconSink("127.0.0.1", mc.port, "pw", allow=ALLOW, timeout_s=5)
        await sink.send([cmd("summon minecraft:creeper ~ ~ ~")])
        await sink.send([cmd("execute at @r run summon minecraft:tnt ~ ~ ~")])
        assert mc.commands == ["summon minecraft:creeper ~ ~ ~", "execute at @r run summon minecraft:tnt ~ ~ ~"]
        assert mc.logins == 1 and sink.last_reply == "ran: execute"
        await sink.close()


@pytest.mark.parametrize("command, why", [
    ("op ana", "'op' is not in"),
    ("/stop", "'stop' is not in"),
    ("execute at @r run op ana", "'op' is not in"),
    ("say hi\nop ana", "control character"),
    ("say hi; op ana", "';'"),  # Source-engine consoles run each part as a command of its own
    ("say hi;op ana", "';'"),
    ("execute at @r RUN op ana", "'op' is not in"),  # a server that reads words without case

    ("   ", "empty"),
])
async def test_commands_outside_the_allow_list_are_refused_and_never_sent(command, why):
    async with RconServer(password="pw") as mc:
        sink = RconSink("127.0.0.1", mc.port, "pw", allow=ALLOW, timeout_s=5)
        with pytest.raises(IntegrationRefused, match=why):
            await sink.send([cmd(command)])
        assert mc.commands == [] and mc.logins == 0
        await sink.close()


async def test_a_wrong_password_gets_id_minus_one_and_is_refused():
    async with RconServer(password="right") as mc:
        sink = RconSink("127.0.0.1", mc.port, "wrong", allow=ALLOW, timeout_s=5)
        with pytest.raises(AuthFailed, match="refused the RCON password"):
            await sink.send([cmd("say hi")])
        assert mc.refused == 1 and mc.commands == []
        probe = await RconSink("127.0.0.1", mc.port, "wrong", allow=ALLOW, timeout_s=5).probe()
        assert probe.reachable and not probe.authenticated


async def test_a_dropped_connection_is_opened_again():
    now = [0.0]
    async with RconServer(password="pw") as mc:
        sink = RconSink("127.0.0.1", mc.port, "pw", allow=ALLOW, timeout_s=5, clock=lambda: now[0])
        await sink.send([cmd("say one")])
        sink._alive = lambda: True  # type: ignore[method-assign] # as if the close were not seen yet
        await mc.drop_all()
        with pytest.raises(IntegrationDown):  # the dispatcher retries it
            await sink.send([cmd("say two")])
        now[0] += 60
        await sink.send([cmd("say two")])
        assert mc.commands == ["say one", "say two"] and mc.logins == 2
        await sink.close()


def test_a_rule_that_puts_raw_viewer_text_into_a_command_is_refused_at_load():
    text = """rules:
  - id: creeper
    on: gift
    do:
      - kind: rcon
        text: "summon minecraft:creeper ~ ~ ~ {CustomName:'\\"{{ user.nickname }}\\"'}"
      - kind: rcon
        text: "say {{ user.nickname | rcon_quote | upper }}"
      - kind: rcon
        text: "say {{ user.nickname | rcon_quote }} sent {{ event.count | int }}"
"""
    with pytest.raises(RuleLoadError) as err:
        load_rules_text(text, "gifts.yaml")
    assert len(err.value.problems) == 2
    assert err.value.problems[0].startswith("gifts.yaml:6:15: rule creeper: a value in an rcon command")
    assert err.value.problems[1].startswith("gifts.yaml:8:15: rule creeper:")


def test_the_quoting_filter_keeps_viewer_text_inside_one_string():
    nasty = 'x" run op me\\\' } ] § \n{"text":1}'
    quoted = rcon_quote(nasty)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    assert not any(c in inner for c in "\"'\\{}[]§\n".replace("\\", "")) and inner.count("\\") == inner.count("\\u")
    assert json.loads(quoted) == nasty.replace("\n", "")  # a JSON text component says exactly what was typed
    ruleset = load_rules_text("""rules:
  - id: creeper
    on: gift
    do:
      - kind: rcon
        text: "tellraw @a {\\"text\\": {{ user.nickname | rcon_quote }}}"
""")
    actions = run_events([gift(0, "Rose", 1, who=user("x", nickname=nasty))], ruleset)
    said = [a.text for a in actions if a.kind == "rcon"]
    assert len(said) == 1 and json.loads(said[0][len("tellraw @a "):])["text"] == nasty.replace("\n", "")


UNQUOTED = "a value in an rcon command must go through the quoting filter"
UNDONE = "a filter block may not wrap an rcon command: it could undo the quoting of viewer text"


@pytest.mark.parametrize("command, problem", [
    ("say {{ 'x' | int(user.nickname) }}", UNQUOTED),  # int's default: a non-number comes back as the default, raw
    ("say {{ 'x' | int(default=user.nickname) }}", UNQUOTED),
    ("say {{ user.nickname | rcon_quote(*[1]) }}", UNQUOTED),
    # replace would turn rcon_quote's escaped quote back into a quote
    (r"""{% filter replace("\\u0022", "\"") %}say {{ user.nickname | rcon_quote }}{% endfilter %}""", UNDONE),
])
def test_ways_around_the_quoting_filter_are_refused_too(command, problem):
    text = "rules:\n  - id: creeper\n    on: gift\n    do:\n      - kind: rcon\n        text: " + json.dumps(command) + "\n"
    with pytest.raises(RuleLoadError) as err:
        load_rules_text(text, "gifts.yaml")
    assert err.value.problems[0].startswith(f"gifts.yaml:6:15: rule creeper: {problem}")
