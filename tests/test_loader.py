"""Rule files: every problem reported at once as file:line:col, good files loaded as written."""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.engine import views
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules, load_rules_text
from bot.engine.templates import ENV
from bot.engine.views import event_fields
from bot.events.model import DATA_FIELDS, EVENT_TYPES, Event
from bot.testing import chat, run_events, user


def problems(text: str) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        load_rules_text(text, "r.yaml")
    return info.value.problems


def test_the_starter_pack_loads():
    ruleset = load_rules("rules")
    ids = {r.id for r in ruleset.rules}
    assert {"thank-gift", "gifter-milestone", "new-top-gifter", "thank-follow", "welcome", "help", "socials", "top",
            "poll", "trivia", "vip", "follow-reminder", "share-reminder", "quiet-prompt", "keep-it-friendly",
            "greet-cohost", "battle-start", "battle-rally", "battle-win", "battle-mvp"} == ids
    assert ruleset.settings.chat_per_minute == 20 and ruleset.settings.snippets["socials"]


def test_bare_on_key_is_the_trigger_not_a_boolean():
    ruleset = load_rules_text("rules:\n  - id: a\n    on: chat\n    do: [{say: hi}]\n")
    assert ruleset.rules[0].on == {"chat"}


def test_yes_and_no_stay_text():
    ruleset = load_rules_text("rules:\n  - id: a\n    on: chat\n    do: [{say: no}]\n")
    assert [a.text for a in run_events([chat(0, "x")], ruleset)] == ["no"]


def test_every_problem_is_reported_at_once_with_positions():
    text = """rules:
  - id: one
    on: chatt
    do: [{say: hi}]
  - id: two
    on: gift
    wen: event.count > 1
    do: [{say: hi}]
  - id: three
    on: gift
    when: "{{ event.count > 1 }}"
    do:
      - sya: hi
"""
    found = problems(text)
    assert found == [
        "r.yaml:3:9: rule one: unknown event type 'chatt' (did you mean 'chat'?)",
        "r.yaml:7:5: rule two: unknown key 'wen' (did you mean 'when'?)",
        "r.yaml:11:11: rule three: in 'when': conditions are bare expressions: drop the {{ }} (write `when: x > 1`)",
        "r.yaml:13:9: rule three: unknown action 'sya' (did you mean 'say'?)",
    ]


def test_template_problems_are_found_at_load():
    text = """rules:
  - id: a
    on: gift
    do:
      - say: "{{ usr.nickname }}"
      - say: "{% for i in range(10) %}x{% endfor %}"
      - say: "{{ user.nickname "
  - id: b
    every: 10m
    do:
      - cta: "{{ user.nickname }}"
"""
    found = problems(text)
    assert len(found) == 4
    assert found[0].startswith("r.yaml:5:14: rule a: in text: unknown variable 'usr'")
    assert found[1] == "r.yaml:6:14: rule a: in text: 'for' is not allowed in rule text"
    assert found[2].startswith("r.yaml:7:14: rule a: in text:")
    assert found[3].startswith("r.yaml:11:14: rule b: in text: unknown variable 'user'")


def test_structure_problems():
    assert problems("- id: a\n") == ["r.yaml:1:1: a rule file is a mapping with a 'rules:' list"]
    assert problems("rules:\n  - id: a\n    on: chat\n") == ["r.yaml:2:5: rule a: a rule needs 'do' (a list of actions) or 'tiers'"]
    assert problems("rules:\n  - id: a\n    on: chat\n    do: []\n") == ["r.yaml:4:9: rule a: 'do' must be a non-empty list of actions"]
    assert problems("rules:\n  - on: chat\n    do: [{say: x}]\n") == [
        "r.yaml:2:5: every rule needs an 'id': letters, digits, '_', '-' or '.'"]
    assert problems("rules:\n  - id: a\n    do: [{say: x}]\n")[0].endswith(
        "a rule needs one of 'on' (event types), 'every' (a timer), 'after' (chat silence) or 'command'")
    assert problems("rules:\n  - id: a\n    on: chat\n    every: 1m\n    do: [{say: x}]\n")[0].endswith(
        "a rule needs only one of 'on' (event types), 'every' (a timer), 'after' (chat silence) or 'command'")


def test_duplicate_ids_and_keys():
    dup = "rules:\n  - id: a\n    on: chat\n    do: [{say: x}]\n  - id: a\n    on: gift\n    do: [{say: y}]\n"
    assert problems(dup) == ["r.yaml:5:9: rule a: duplicate rule id (first defined at r.yaml:2:9)"]
    assert problems("rules:\n  - id: a\n    on: chat\n    on: gift\n    do: [{say: x}]\n") == [
        "r.yaml:4:5: duplicate key 'on'"]


def test_bad_values():
    text = """rules:
  - id: a
    on: chat
    cooldown: 10 minutes
    priority: high
    stop: maybe
    once: room
    do: [{say: x}]
  - id: b
    every: 0.5s
    do: [{say: x}]
"""
    found = problems(text)
    assert [p.split(": ", 1)[0] for p in found] == ["r.yaml:4:15", "r.yaml:5:15", "r.yaml:6:11", "r.yaml:7:11",
                                                    "r.yaml:10:12"]  # in line order


def test_yaml_syntax_error_has_a_position():
    [problem] = problems("rules:\n  - id: a\n    on: [chat\n")
    assert problem.startswith("r.yaml:4:1: YAML syntax:")


def test_disabled_rules_are_checked_but_not_loaded():
    ruleset = load_rules_text("rules:\n  - id: a\n    on: chat\n    enabled: false\n    do: [{say: x}]\n")
    assert ruleset.rules == []


def test_anchors_and_merge_keys_work_as_snippets():
    text = """rules:
  - &thanks
    id: a
    on: gift
    do: [{say: "thanks {{ user.nickname }}"}]
  - <<: *thanks
    id: b
    on: follow
"""
    assert [r.id for r in load_rules_text(text).rules] == ["a", "b"]


def test_a_folder_loads_its_yaml_files_in_name_order(tmp_path):
    (tmp_path / "b.yaml").write_text("rules:\n  - id: b\n    on: chat\n    do: [{say: b}]\n")
    (tmp_path / "a.yml").write_text("rules:\n  - id: a\n    on: chat\n    do: [{say: a}]\n")
    (tmp_path / "notes.txt").write_text("not rules")
    assert [r.id for r in load_rules(tmp_path).rules] == ["a", "b"]


def test_validate_command_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: a\n    on: gift\n    when: event.count >\n    do: [{say: x}]\n")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bad}:4:11: rule a: in 'when':")
    assert main(["validate", "rules"]) == 0


def test_unknown_filters_and_tests_are_load_errors_with_positions(tmp_path, capsys):
    text = """rules:
  - id: a
    on: chat
    when: event.text is palindrome
    merge: "{{ names | joinn }}"
    do:
      - say: "{{ event.text | upperr }}"
      - set: {var: x, value: "{{ event.text | lenght }}"}
      - say: "{% if event.text %}{{ event.text | titel }}{% endif %}"
"""
    assert problems(text) == [
        "r.yaml:4:11: rule a: in 'when': unknown test 'palindrome' (known: " + ", ".join(sorted(ENV.tests)) + ")",
        "r.yaml:5:12: rule a: in text: unknown filter 'joinn' (did you mean 'join'?)",
        "r.yaml:7:14: rule a: in text: unknown filter 'upperr' (did you mean 'upper'?)",
        "r.yaml:8:30: rule a: in text: unknown filter 'lenght' (did you mean 'length'?)",
        "r.yaml:9:14: rule a: in text: unknown filter 'titel' (did you mean 'title'?)",
    ]
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["validate", str(tmp_path / "bad.yaml")]) == 1  # no traceback
    assert capsys.readouterr().out.splitlines()[2] == (
        f"{tmp_path / 'bad.yaml'}:7:14: rule a: in text: unknown filter 'upperr' (did you mean 'upper'?)")


def test_misspelled_fields_are_load_errors():
    text = """rules:
  - id: a
    on: chat
    when: event.txt
    do:
      - say: "{{ user.nicknam }}"
      - say: "{{ user.lifetime.diamondz }}"
      - say: "{{ event['txt'] }}"
  - id: b
    on: gift
    do: [{say: "{{ event.text }}"}]
  - id: c
    every: 10m
    do: [{say: "{{ stats.chatz }}"}]
  - id: d
    command: "!quiz"
    do: [{quiz: {text: q, answer: a, win: "{{ winner.nickame }}"}}]
"""
    assert problems(text) == [
        "r.yaml:4:11: rule a: in 'when': unknown field 'event.txt' for chat events (did you mean 'event.text'?)",
        "r.yaml:6:14: rule a: in text: unknown field 'user.nicknam' (did you mean 'user.nickname'?)",
        "r.yaml:7:14: rule a: in text: unknown field 'user.lifetime.diamondz' (did you mean 'user.lifetime.diamonds'?)",
        "r.yaml:8:14: rule a: in text: unknown field 'event.txt' for chat events (did you mean 'event.text'?)",
        "r.yaml:11:16: rule b: in text: unknown field 'event.text' for gift events (known: type, ts, msg_id, "
        "room_id, gift_id, name, diamonds, count, gift_type, streak_end, group_id, display_name, total_diamonds, "
            "flushed)",
        "r.yaml:14:16: rule c: in text: unknown field 'stats.chatz' (did you mean 'stats.chats'?)",
        "r.yaml:17:43: rule d: in text: unknown field 'winner.nickame' (did you mean 'winner.nickname'?)",
    ]


def test_fields_that_may_be_there_are_fine():
    text = """rules:
  - id: a
    on: [chat, gift]
    when: event.text is defined or event.count > 1
    do:
      - say: >-
          {{ event.text }} {{ event.get('txt', '') }} {{ event.count | default(1) }} {{ event.flushed | d(false) }}
          {{ user.lifetime.diamonds }} {{ user.lifetime.sessions }} {{ user.vars.points | default(0) }}
          {{ user.items() | list | length }} {{ user.nickname.upper() }} {{ vars.anything }}
          {% set e = event %}{{ e.whatever | default('') }} {{ leaderboard[0].nickname if leaderboard else '' }}
  - id: b
    on: gift
    milestones: {of: user.diamonds, at: [10]}
    tiers: [{min: 0, name: any, do: [{say: "{{ tier.name }} {{ milestone }} {{ since.gift }} {{ rule.fired }}"}]}]
"""
    ruleset = load_rules_text(text)
    assert [r.id for r in ruleset.rules] == ["a", "b"]


def test_the_known_fields_are_those_the_engine_gives():
    engine = Engine(load_rules_text("rules: []\n"))
    values = {"text": "x", "name": "Rose", "diamonds": 1, "count": 2, "gift_id": 1, "gift_type": 2,
              "streak_end": True, "group_id": "g", "total": 3, "months": 1, "kind": "k", "rank": 1,
              "previous_rank": None, "source": "s", "reason": "r", "display_name": "Rosa", "battle_id": "b",
              "opponents": [], "duration_s": 300, "our_score": 1, "their_score": 2, "time_left_s": 30,
              "winner": "us", "mvp": None, "top": [], "channel_id": "c", "action": "a", "users": [], "coins": 5,
              "people": 2, "emote_id": "e", "goal_id": "g", "description": "d", "progress": 1, "target": 2,
              "poll_id": "p", "title": "t", "options": [], "phase": "start", "rank_type": "r", "msg_ids": [],
              "pinned_by": None}
    values.update(goal_id="g", title="t", target=10, progress=11, step=1, steps=2, scope="stream", goal_type="likes",
                  added_ms=0, op="pause", ms=0, user_key="k", points=5,
                  strikes=1, muted_until=5, checks=[], question="q", duration_ms=0)  # on-stream features (bot/engine/features.py)
    for kind in sorted(EVENT_TYPES):
        ev = Event(kind, 0, "room", "m1", user("ana"), {f: values[f] for f in DATA_FIELDS.get(kind, ())})
        engine.state.record(ev, 0)
        context = engine._event_context(ev, [])
        optional = {"flushed", "error"}  # only on flushed streaks and malformed bundle messages
        assert set(context["event"]) <= set(event_fields(kind)) <= set(context["event"]) | optional, kind
    assert set(context["user"]) == set(views.USER)
    assert set(context["user"]["lifetime"]) == set(views.USER["lifetime"])
    assert set(engine.state.stats_view(0)) == set(views.STATS)
    rule = load_rules_text("rules:\n  - {id: r, on: chat, do: [{say: '{{ since.ms }}'}]}\n").rules[0]
    assert set(engine._since_view(rule, 0)) == set(views.SINCE)


def test_problems_are_listed_file_by_file_in_line_order(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - id: a\n    on: chat\n    cooldown: soon\n    priority: high\n"
        "    do: [{say: '{{ snippets.nope }}'}]\n")
    (tmp_path / "b.yaml").write_text("rules:\n  - id: b\n    on: chatt\n    do: [{say: x}]\n")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert [line.split(": ", 1)[0] for line in out.splitlines()] == [
        f"{tmp_path / 'a.yaml'}:4:15", f"{tmp_path / 'a.yaml'}:5:15", f"{tmp_path / 'a.yaml'}:6:16",
        f"{tmp_path / 'b.yaml'}:3:9"]


def test_a_nul_byte_is_an_error_with_a_position():
    assert problems("rules:\n  - id: a\n    on: chat\n    do: [{say: 'a\x00b'}]\n") == [
        "r.yaml:4:18: YAML: character #x0000 is not allowed: control characters such as NUL cannot appear in YAML"]


def test_errors_in_block_texts_point_at_their_line():
    text = """rules:
  - id: a
    on: chat
    when: |
      event.text and
      evnt.count > 1
    do:
      - say: |
          Hello {{ user.nickname }},
          welcome {{ user.nickname }
"""
    assert problems(text) == [
        "r.yaml:6:7: rule a: in 'when': unknown variable 'evnt' (known: args, event, goals, leaderboard, milestone, points, rule, "
        "since, snippets, sponsor, stats, tier, user, vars)",
        "r.yaml:10:11: rule a: in text: unexpected '}'",
    ]


def test_a_broken_condition_is_explained_in_its_own_terms():
    def when(expr: str) -> str:
        [problem] = problems(f"rules:\n  - id: a\n    on: gift\n    when: {expr}\n    do: [{{say: x}}]\n")
        return problem.split("in 'when': ", 1)[1]

    assert when("event.count >") == "'event.count >' is incomplete"
    assert when("(event.count > 1") == "'(event.count > 1' is incomplete: expected ')'"
    assert when("event.count > 1)") == "unexpected ')'"
    assert when("event.count 1") == "unexpected '1' after a complete expression (a missing operator, 'and' or 'or'?)"


# -- issue 14, item 10 -----------------------------------------------------------------------------

def test_every_problem_of_a_template_is_reported_at_once(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text('rules:\n  - id: a\n    on: chat\n    do: [{say: "{{ user.nicknam }} {{ event.txt }} {{ foo.bar }}"}]\n')
    with pytest.raises(RuleLoadError) as info:
        load_rules(f)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 3, text
    assert "unknown field 'user.nicknam'" in text and "'user.nickname'" in text
    assert "unknown field 'event.txt'" in text and "'event.text'" in text
    assert "unknown variable 'foo'" in text


def test_a_latin1_file_names_the_line_of_its_first_bad_byte(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_bytes(b"rules:\n  - id: a\n    on: chat\n    do: [{say: \"caf\xe9\"}]\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(f)
    assert info.value.problems == [f"{f}:4:20: not UTF-8 text: byte 0xe9 cannot be read (save the file as UTF-8)"]


def test_messages_name_yaml_shapes_not_internal_types(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("rules:\n  - id: a\n    on: chat\n    cooldown: [1]\n    do: [{say: x}]\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(f)
    assert info.value.problems == [f"{f}:4:15: rule a: expected a duration such as 30s or 10m, got a list"]


def test_too_many_rules_is_one_message_naming_the_limit(tmp_path, monkeypatch):
    from bot.engine import loader
    from bot.engine import yamlfile

    monkeypatch.setattr(loader, "MAX_RULES", 5)
    monkeypatch.setattr(yamlfile, "MAX_VALUES", 10)  # a file's own values are not what the alias limit counts
    why = "the limit is 5: every event is checked against every rule of its type"
    f = tmp_path / "r.yaml"
    f.write_text("rules:\n" + "".join(f"  - {{id: r{i}, on: chat, do: [{{say: hi}}]}}\n" for i in range(6)))
    with pytest.raises(RuleLoadError) as info:  # refused where the file passes the limit, not read further
        load_rules(f)
    assert info.value.problems == [f"{f}:7:5: too many rules: more than 5 in this file ({why})"]
    f.write_text("rules:\n" + "".join(f"  - {{id: r{i}, on: chat, do: [{{say: hi}}]}}\n" for i in range(5)))
    assert len(load_rules(f).rules) == 5
    (tmp_path / "more").mkdir()
    for n in (1, 2):
        (tmp_path / "more" / f"{n}.yaml").write_text(
            "rules:\n" + "".join(f"  - {{id: r{n}{i}, on: chat, do: [{{say: hi}}]}}\n" for i in range(3)))
    with pytest.raises(RuleLoadError) as info:  # several files: the set's total
        load_rules(tmp_path / "more")
    assert info.value.problems == [f"{tmp_path / 'more' / '2.yaml'}:2:3: too many rules: 6 in this rule set ({why})"]


def test_validate_checks_what_a_load_checks(tmp_path):
    from bot.engine.templates import CheckOnly, check_only

    f = tmp_path / "r.yaml"
    f.write_text('rules:\n  - id: a\n    on: chat\n    when: "\'a\' * 100000000"\n'
                 '    do: [{say: "{{ user.nicknam }} {{ event.txt }} {{ foo.bar }}"}]\n'
                 '  - id: b\n    on: chat\n    when: "\'\'.__class__"\n    do: [{say: "x"}]\n')
    with pytest.raises(RuleLoadError) as loaded:
        load_rules(f)
    with pytest.raises(RuleLoadError) as checked, check_only():
        load_rules(f)
    assert checked.value.problems == loaded.value.problems and len(loaded.value.problems) == 5
    f.write_text('rules:\n  - id: a\n    on: chat\n    when: "event.text == \'x\'"\n    do: [{say: "hi {{ user.nickname }}"}]\n')
    with check_only():
        rs = load_rules(f)
    engine, errors = Engine(rs), []
    engine.on_rule_error = lambda rule, part, exc: errors.append(exc)
    assert engine.feed(chat(0, "x", "ana"), 0) == []  # a checked-only set cannot run by mistake
    assert [type(e) for e in errors] == [CheckOnly]
