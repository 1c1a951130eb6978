"""Issue 16, item 3: what the policy guard masked or suppressed shows in the trace (and so on the
control page, which renders the trace), named by check and field, never by the viewer's words."""

from __future__ import annotations

from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.engine.trace import Tracer
from bot.testing import chat

RULES = """rules:
  - id: welcome
    on: chat
    do: [{say: "Welcome {{ user.nickname }}!"}]
  - id: echo
    on: chat
    do: [{alert: "{{ event.text }}"}]
"""


def test_a_masked_nickname_is_noted_in_the_trace_of_its_firing():
    engine = Engine(load_rules_text(RULES))
    tracer = Tracer(50).attach(engine)
    tracer.start = 0
    actions = engine.feed(chat(1000, "hello there", "Ana bit.ly/free-coins"), 1000)
    say = next(a for a in actions if a.rule == "welcome")
    assert "bit.ly" not in say.text
    notes = [(o, d) for o, d, _ in tracer.notes_for(say)]
    assert any(o == "policy" and d.startswith("masked") and "link in user.nickname" in d for o, d in notes), notes
    record = next(r for r in tracer if r[2] is not None)
    line = tracer.lines_for(record, "welcome")[0]
    # (the line's head names the event as it came, for the operator; the note never repeats it)
    assert "policy: masked link in user.nickname" in line and "free-coins" not in line.split(": fired", 1)[1]


def test_a_suppressed_action_is_noted_and_counted():
    engine = Engine(load_rules_text(RULES))
    tracer = Tracer(50).attach(engine)
    out = engine.feed(chat(1000, "paypal.me/ana", "ana"), 1000)
    assert all("paypal" not in a.text.lower() for a in out)
    policy_notes = [(o, d) for a, o, d, _ in tracer.notes if o == "policy"]
    assert policy_notes and all("paypal" not in str(d).lower() for _, d in policy_notes), policy_notes
    stats = engine.policy.stats()
    assert sum(stats["masked"].values()) + sum(stats["suppressed"].values()) >= 1, stats


def test_an_handle_that_reads_as_a_domain_never_reaches_the_stream_as_a_link():
    """TikTok allows dots in an @handle, so a handle can be a domain (``freerobux.gg``): it is masked
    as any viewer text, in the rule's own output and when another viewer's nickname is the same."""
    rules = """rules:
  - id: greet
    on: join
    do: [{say: "Welcome {{ user.nickname or user.unique_id }}!"}, {tts: "Welcome {{ user.unique_id }}"}]
"""
    from bot.events.model import User
    from bot.testing import event

    engine = Engine(load_rules_text(rules))
    out = engine.feed(event("join", 1000, User(user_id="1", unique_id="ana_b", nickname="")), 1000)
    assert [a.text for a in out] == ["Welcome ana_b!", "Welcome ana_b"]
    out = engine.feed(event("join", 2000, User(user_id="2", unique_id="freerobux.gg", nickname="")), 2000)
    assert all("freerobux" not in a.text for a in out), out
    out = engine.feed(event("join", 3000, User(user_id="3", unique_id="x", nickname="freerobux.gg")), 3000)
    assert all("freerobux" not in a.text for a in out), out
    out = engine.feed(event("join", 4000, User(user_id="4", unique_id="paypal.me", nickname="")), 4000)
    assert all("paypal" not in a.text for a in out), out
