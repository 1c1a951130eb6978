"""The bot never repeats a viewer's free text in its own chat lines: a !redeem of an unknown perk and a
!voice of an unknown voice answer with the list, not with what the viewer typed (a viewer cannot make
the bot say a slur, a link or an @mention)."""

from __future__ import annotations

from bot.testing import chat, run_events

T = 1_767_225_600_000
RULES = """
settings:
  points:
    chat: 2
    perks: [{name: shoutout, cost: 100}]
  tts:
    voices: [{name: Alice, lang: en-US}]
rules:
  - id: redeem
    command: "!redeem"
    do: [ {redeem: "{{ args | join(' ') }}"} ]
  - id: voice
    command: "!voice"
    do: [ {voice: "{{ args | join(' ') }}"} ]
"""
TYPED = "go to evil.example @victim you are banned"


def test_unknown_perk_and_voice_answers_do_not_echo_the_viewer():
    out = [a for a in run_events([chat(T, "!redeem " + TYPED, "ana"), chat(T + 1000, "!voice " + TYPED, "ana")], RULES)
           if a.kind == "say"]
    assert [a.rule for a in out] == ["redeem", "voice"]
    for a in out:
        assert "evil" not in a.text and "victim" not in a.text and "banned" not in a.text
    assert out[0].text == "@ana no such perk. Perks: shoutout (100)"
    assert out[1].text == "@ana voices: Alice"
