"""A rule reload that turns loyalty points or TTS voices on mid-stream starts from the viewers' lifetime
balances and chosen voices, as a start with them on does: it never writes this stream's alone over
what earlier streams kept."""

from __future__ import annotations

from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.engine.points import LIFETIME_KEY as POINTS_KEY
from bot.engine.voices import LIFETIME_KEY as VOICES_KEY
from bot.testing import chat, run_events

T = 1_767_225_600_000
WITHOUT = "rules:\n  - id: hi\n    command: '!hi'\n    do: [{say: hi}]\n"
WITH = """settings:
  points: {chat: 2}
  tts:
    voices: [{name: Alice, lang: en-US}, {name: Bob, lang: en-GB}]
rules:
  - id: pts
    command: "!points"
    do: [ {say: "{{ points.balance }}"} ]
"""


def test_turning_points_and_voices_on_by_a_reload_keeps_their_lifetime_rows():
    lifetime = {POINTS_KEY: {"id-ana": [500, "ana", "ana"], "id-old": [70, "old", "Old"]},
                VOICES_KEY: {"id-ana": "Bob"}}
    engine = Engine(load_rules_text(WITHOUT), lifetime=lifetime)
    run_events([chat(T, "hello", "ana")], WITHOUT, engine=engine)
    engine.replace_rules(load_rules_text(WITH), T + 1000)
    said = [a.text for a in run_events([chat(T + 2000, "!points", "ana")], WITH, engine=engine) if a.rule == "pts"]
    assert said == ["502"]
    kept = engine.features.lifetime()
    assert kept[POINTS_KEY]["id-old"][0] == 70 and kept[POINTS_KEY]["id-ana"][0] == 502
    assert kept[VOICES_KEY] == {"id-ana": "Bob"}
