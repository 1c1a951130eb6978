"""Rule files: every problem reported at once as file:line:col, good files loaded as written."""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.engine.loader import RuleLoadError, load_rules, load_rules_text
from bot.testing import chat, run_events


def problems(text: str) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        load_rules_text(text, "r.yaml")
    return info.value.problems


def test_the_starter_pack_loads():
    ruleset = load_rules("rules")
    ids = {r.id for r in ruleset.rules}
    assert {"thank-gift", "gifter-milestone", "new-top-gifter", "thank-follow", "welcome", "help", "socials", "top",
            "poll", "trivia", "vip", "follow-reminder", "share-reminder", "quiet-prompt"} == ids
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
    assert [p.split(": ", 1)[0] for p in found] == ["r.yaml:5:15", "r.yaml:6:11", "r.yaml:4:15", "r.yaml:7:11",
                                                    "r.yaml:10:12"]


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
