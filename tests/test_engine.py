"""The pure engine core, on virtual time: no sockets, no sleeps."""

from __future__ import annotations

from bot.engine.core import Engine, parse_command
from bot.engine.loader import load_rules_text
from bot.testing import chat, event, gift, run_events, user

THANKS = """
rules:
  - id: thank
    on: gift
    do:
      - say: "Thanks {{ user.nickname }} for {{ event.count }}x {{ event.name }}"
"""


def texts(actions):
    return [a.text for a in actions]


# -- gift streaks -----------------------------------------------------------------------------

def streak(ts, who, counts, end=True, gift_id=5655, step=300):
    frames = []
    for i, c in enumerate(counts):
        last = end and i == len(counts) - 1
        frames.append(gift(ts + i * step, "Rose", 1, c, who, gift_id=gift_id, gift_type=1, streak_end=last))
    return frames


def test_a_streak_is_thanked_once_with_its_final_count():
    actions = run_events(streak(0, "ana", [1, 2, 5, 9]), THANKS)
    assert texts(actions) == ["Thanks ana for 9x Rose"]
    assert actions[0].ts == 900 and actions[0].user == "ana"


def test_progress_frames_are_available_as_gift_progress():
    rules = THANKS + """
  - id: combo
    on: gift_progress
    do:
      - kind: combo
        text: "{{ event.count }}"
"""
    actions = run_events(streak(0, "ana", [1, 2, 3]), rules)
    assert [(a.rule, a.text) for a in actions] == [("combo", "1"), ("combo", "2"), ("thank", "Thanks ana for 3x Rose")]


def test_a_streak_whose_end_is_lost_is_flushed_after_silence():
    frames = streak(0, "ana", [1, 2, 4], end=False)  # last frame at 600 ms
    actions = run_events(frames + [chat(20_000, "hello", "bob")], THANKS, streak_silence_ms=5000)
    assert texts(actions) == ["Thanks ana for 4x Rose"]
    assert actions[0].ts == 5600  # the flush happens at its own virtual deadline


def test_a_late_end_frame_after_a_flush_is_not_thanked_twice():
    frames = streak(0, "ana", [1, 2], end=False)
    late = gift(9000, "Rose", 1, 2, "ana", gift_id=5655, gift_type=1, streak_end=True)
    engine = Engine(load_rules_text(THANKS))
    actions = run_events(frames + [late], THANKS, engine=engine)
    assert texts(actions) == ["Thanks ana for 2x Rose"]
    assert engine.streaks.late_frames == 1


def test_a_new_streak_of_the_same_gift_closes_the_old_one():
    first = streak(0, "ana", [1, 2, 3], end=False)
    second = streak(1200, "ana", [1, 2], end=True)
    assert texts(run_events(first + second, THANKS)) == ["Thanks ana for 3x Rose", "Thanks ana for 2x Rose"]


def test_interleaved_streaks_of_two_viewers_are_kept_apart():
    a = streak(0, "ana", [1, 2, 3])
    b = streak(100, "bob", [1, 5])
    frames = sorted(a + b, key=lambda e: e.ts)
    assert sorted(texts(run_events(frames, THANKS))) == ["Thanks ana for 3x Rose", "Thanks bob for 5x Rose"]


def test_non_streakable_gifts_pass_at_once():
    g = gift(0, "Galaxy", 1000, 1, "ana", gift_type=2, streak_end=False)
    actions = run_events([g], THANKS)
    assert texts(actions) == ["Thanks ana for 1x Galaxy"] and actions[0].ts == 0


def test_open_streaks_are_flushed_at_the_end_of_a_session():
    assert texts(run_events(streak(0, "ana", [1, 2], end=False), THANKS)) == ["Thanks ana for 2x Rose"]


def test_diamonds_count_once_per_streak():
    engine = Engine(load_rules_text(THANKS))
    run_events(streak(0, "ana", [1, 2, 5]) + [gift(5000, "Galaxy", 1000, 1, "bob")], THANKS, engine=engine)
    assert engine.state.diamonds == 5 + 1000


# -- duplicates -------------------------------------------------------------------------------

def test_duplicate_msg_ids_are_dropped():
    g = gift(0, "Galaxy", 1000, 1, "ana", msg_id="42")
    again = gift(10, "Galaxy", 1000, 1, "ana", msg_id="42")
    engine = Engine(load_rules_text(THANKS))
    assert len(run_events([g, again], THANKS, engine=engine)) == 1
    assert engine.counters["duplicates"] == 1


# -- rules: priority, stop, cooldowns, once, commands ---------------------------------------------

TIERS = """
rules:
  - id: small
    on: gift
    do: [{say: "small"}]
  - id: big
    on: gift
    when: event.total_diamonds >= 100
    priority: 10
    stop: true
    do: [{alert: "big"}]
"""


def test_priority_orders_rules_and_stop_ends_the_event():
    actions = run_events([gift(0, "Galaxy", 1000), gift(1, "Rose", 1)], TIERS)
    assert [(a.rule, a.kind) for a in actions] == [("big", "alert"), ("small", "say")]


def test_without_stop_every_matching_rule_fires():
    actions = run_events([gift(0, "Galaxy", 1000)], TIERS.replace("stop: true", "stop: false"))
    assert [a.rule for a in actions] == ["big", "small"]


COOLDOWN = """
rules:
  - id: hi
    on: chat
    cooldown: {global: 10s, user: 1m}
    do: [{say: "hi {{ user.nickname }}"}]
"""


def test_global_and_per_user_cooldowns():
    events = [chat(0, "a", "ana"), chat(5_000, "a", "bob"), chat(10_000, "a", "bob"),
              chat(20_000, "a", "ana"), chat(61_000, "a", "ana")]
    assert [(a.ts, a.text) for a in run_events(events, COOLDOWN)] == [
        (0, "hi ana"), (10_000, "hi bob"), (61_000, "hi ana")]


def test_once_per_user_welcomes_first_time_chatters():
    rules = """
rules:
  - id: welcome
    on: chat
    once: user
    do: [{say: "welcome {{ user.nickname }}"}]
"""
    events = [chat(0, "a", "ana"), chat(1, "b", "ana"), chat(2, "c", "bob")]
    assert texts(run_events(events, rules)) == ["welcome ana", "welcome bob"]


def test_commands_match_name_and_aliases_case_insensitively_with_args():
    rules = """
rules:
  - id: help
    command: ["!help", "!commands"]
    do: [{say: "help for {{ args | join(',') }}"}]
"""
    events = [chat(0, "!HELP me now"), chat(1, "!commands"), chat(2, "help"), chat(3, "!helpme"), chat(4, "! help")]
    assert texts(run_events(events, rules)) == ["help for me,now", "help for "]


def test_parse_command():
    assert parse_command("!So @ana") == ("so", ["@ana"])
    assert parse_command("so") == (None, [])
    assert parse_command("!") == (None, [])


# -- timers -----------------------------------------------------------------------------------

TIMER = """
rules:
  - id: remind
    every: 10m
    when: since.chat >= 2
    do: [{cta: "follow! ({{ since.chat }} lines)"}]
"""


def test_timers_fire_at_exact_virtual_times_only_while_chat_is_active():
    minute = 60_000
    events = [chat(0, "x"), chat(1 * minute, "x"), chat(2 * minute, "x"),  # 3 lines before 10m
              chat(12 * minute, "x"),  # only 1 line before 20m: silent
              chat(25 * minute, "x"), chat(26 * minute, "x"), chat(35 * minute, "x")]
    actions = run_events(events, TIMER)
    assert [(a.ts, a.text) for a in actions] == [(10 * minute, "follow! (3 lines)"), (30 * minute, "follow! (3 lines)")]


def test_next_deadline_and_advance_without_events():
    engine = Engine(load_rules_text(TIMER.replace("when: since.chat >= 2", "when: true")))
    engine.advance(0)
    assert engine.next_deadline() == 600_000
    assert engine.advance(599_999) == []
    fired = engine.advance(1_200_000)
    assert [a.ts for a in fired] == [600_000, 1_200_000]
    assert engine.next_deadline() == 1_800_000


# -- safety -----------------------------------------------------------------------------------

def test_a_nickname_that_looks_like_a_template_is_printed_as_typed():
    evil = user("evil", nickname="{{7*7}} {% for x in range(9) %}x{% endfor %}")
    actions = run_events([gift(0, "Rose", 1, 1, evil)], THANKS)
    assert texts(actions) == ["Thanks {{7*7}} {% for x in range(9) %}x{% endfor %} for 1x Rose"]


def test_a_chat_text_that_looks_like_a_template_is_data():
    rules = """
rules:
  - id: echo
    on: chat
    do: [{say: "you said {{ event.text }}"}]
"""
    assert texts(run_events([chat(0, "{{ ''.__class__ }}")], rules)) == ["you said {{ ''.__class__ }}"]


def test_a_rule_error_at_run_time_is_counted_and_the_stream_goes_on():
    rules = """
rules:
  - id: broken
    on: [chat, gift]
    do: [{say: "{{ event.text }}"}]
"""
    engine = Engine(load_rules_text(rules))
    actions = run_events([gift(0, "Rose", 1), chat(1, "still here")], rules, engine=engine)
    assert texts(actions) == ["still here"]
    assert engine.counters["rule_errors"] == 1


def test_action_record_shape():
    actions = run_events([gift(7, "Rose", 1, 1, "ana", msg_id="m-7")], THANKS)
    assert actions[0].to_dict() == {"ts": 7, "kind": "say", "text": "Thanks ana for 1x Rose", "rule": "thank",
                                    "user": "ana", "event_id": "m-7", "data": {}}


def test_user_and_session_state_in_templates():
    rules = """
rules:
  - id: total
    on: gift
    do: [{say: "{{ user.nickname }}: {{ user.diamonds }} of {{ stats.diamonds }}"}]
"""
    events = [gift(0, "Galaxy", 1000, 1, "ana"), gift(1, "Rose", 1, 1, "bob"), gift(2, "Rose", 1, 3, "ana")]
    assert texts(run_events(events, rules)) == ["ana: 1000 of 1000", "bob: 1 of 1001", "ana: 1003 of 1004"]


def test_custom_action_kind_with_data():
    rules = """
rules:
  - id: party
    on: follow
    do:
      - kind: confetti
        text: "{{ user.nickname }}"
        data: {colour: pink, who: "{{ user.unique_id }}", n: 3}
"""
    [a] = run_events([event("follow", 0, "ana")], rules)
    assert (a.kind, a.text, a.data) == ("confetti", "ana", {"colour": "pink", "who": "ana", "n": 3})


def test_streak_group_ids_keep_a_new_streak_apart_from_a_flushed_one():
    def frame(ts, count, group, end=False):
        ev = gift(ts, "Rose", 1, count, "ana", gift_id=5655, gift_type=1, streak_end=end)
        ev.data["group_id"] = group
        return ev

    lost = [frame(0, 1, "g1"), frame(300, 3, "g1")]  # its end never comes: flushed at 5.3 s
    late = [frame(6000, 3, "g1", end=True)]  # g1's end arrives late: absorbed
    new = [frame(7000, 5, "g2"), frame(7300, 6, "g2", end=True)]  # a new streak starting high: thanked
    engine = Engine(load_rules_text(THANKS))
    assert texts(run_events(lost + late + new, THANKS, engine=engine)) == [
        "Thanks ana for 3x Rose", "Thanks ana for 6x Rose"]
    assert engine.streaks.late_frames == 1


# -- issue 14, item 15 ------------------------------------------------------------------------------

def test_a_space_before_the_bang_is_still_a_command():
    from bot.engine.core import parse_command

    assert parse_command("  !Help me") == ("help", ["me"])
    assert parse_command("! help") == (None, []) and parse_command("hi !help") == (None, [])


def _readme_rules(rule_ids: tuple[str, ...]) -> str:
    """The README's YAML for these rules, exactly as documented."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    [block] = [b for b in blocks if all(f"- id: {r}\n" in b for r in rule_ids)]
    return "rules:\n" + block


def test_so_without_a_name_answers_with_its_usage_not_a_blank():
    from bot.engine.loader import load_rules_text
    from bot.testing import chat, run_events, user

    rs = load_rules_text(_readme_rules(("so", "so-usage")))
    mod = user("mia", is_moderator=True)
    actions = run_events([chat(0, "!so", mod), chat(10_000, " !so @ana", mod)], rs)
    assert [(a.rule, a.kind, a.text) for a in actions] == [("so-usage", "say", "Usage: !so @name"),
                                                           ("so", "shoutout", "Go follow @ana! 💜")]


def test_a_second_poll_tells_chat_one_is_running_and_votes_are_not_welcomed():
    from pathlib import Path

    from bot.engine.loader import load_rules
    from bot.testing import chat, run_events, user

    rs = load_rules(Path(__file__).resolve().parent.parent / "rules")
    mod = user("mia", is_moderator=True)
    events = [chat(0, "hello all", mod), chat(1000, "!poll", mod), chat(2000, "1", "ana"), chat(3000, " !poll", mod),
              chat(4000, "I like Minecraft", "ana"), chat(5000, "2", "bob")]
    actions = [a for a in run_events(events, rs, until=200_000) if a.kind in ("say", "poll", "poll_result")]
    said = [(a.ts, a.rule, a.text) for a in actions]
    welcomes = [t for _, r, t in said if r == "welcome"]
    assert welcomes == ["Welcome mia! 👋 Type !help to see what I can do.",
                        "Welcome ana! 👋 Type !help to see what I can do."]  # ana at 4 s, not for her vote "1"
    busy = [(ts, t) for ts, r, t in said if r == "poll" and t.startswith("A poll is already running")]
    assert len(busy) == 1 and "What should we play next?" in busy[0][1] and "(88 s left)" in busy[0][1]
