"""Polls from the control page are poll_control events: the engine's public entry, in virtual time."""

from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.events.model import Event, User

T = 1_700_000_000_000


def ctl(ts, **data):
    return Event("poll_control", ts, msg_id=f"p{ts}", data=data)


def chat(ts, who, text):
    return Event("chat", ts, msg_id=f"c{ts}", user=User(user_id=who, unique_id=who, nickname=who), data={"text": text})


def test_open_vote_close_and_bad_recorded_controls_are_skipped_and_counted():
    engine = Engine(load_rules_text("rules: []\n"))
    out = engine.feed(ctl(T, op="open", question="{{ 7*7 }}?", options=["a", "b"], duration_ms=60_000), T)
    assert [(a.kind, a.text) for a in out] == [("poll", "{{ 7*7 }}?")]  # the creator's text, not a template
    engine.feed(chat(T + 1, "ann", "2"), T + 1)
    assert engine.feed(ctl(T + 2, op="open", question="again?", options=["x", "y"], duration_ms=60_000), T + 2
                       )[0].data == {"poll_busy": True}
    for i, bad in enumerate(({"op": "open", "question": "q", "options": ["only"], "duration_ms": 60_000},
                             {"op": "explode"}, {"op": "open", "question": "q", "options": ["a", "b"],
                                                 "duration_ms": True})):
        assert engine.feed(ctl(T + 3 + i, **bad), T + 3 + i) == []
    out = engine.feed(ctl(T + 10, op="close"), T + 10)
    assert [(a.kind, a.data["winner"]) for a in out] == [("poll_result", "b")]
    assert engine.feed(ctl(T + 11, op="close"), T + 11) == []  # none open: skipped
    assert engine.counters["poll_control_refused"] == 4 and engine.poll is None
