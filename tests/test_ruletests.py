"""`livebot test`: rule tests that pass, fail with a readable diff, and report bad test files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ruletests import run_paths

RULES = """rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }}"}]
"""


def run(tmp_path, test_text):
    (tmp_path / "r.yaml").write_text(RULES)
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "t" / "case.yaml").write_text(test_text)
    lines: list[str] = []
    code = run_paths([tmp_path / "t"], out=lines.append)
    return code, "\n".join(lines)


def test_a_passing_case(tmp_path):
    code, out = run(tmp_path, """rules: ../r.yaml
tests:
  - name: thanks
    events: [{at: 2s, type: gift, user: ana}]
    expect: [{at: 2s, kind: say, text: thanks ana}]
    exact: true
""")
    assert (code, out) == (0, "1 passed, 0 failed")


def test_a_failing_case_shows_expected_and_got_with_times(tmp_path):
    code, out = run(tmp_path, """rules: ../r.yaml
tests:
  - name: wrong text
    events: [{at: 90s, type: gift, user: ana}]
    expect: [{at: 90s, match: "^Thank"}]
    absent: [{user: ana}]
""")
    assert code == 1
    assert out.splitlines() == [
        f"FAIL {tmp_path / 't' / 'case.yaml'}:3: wrong text",
        "  - expected, not found (line 5): 01:30.000 /^Thank/",
        "  - must not happen (line 6) but did: 01:30.000 say thanks 'thanks ana'",
        "  got:",
        "    01:30.000 say thanks 'thanks ana'",
        "0 passed, 1 failed",
    ]


def test_must_not_fire(tmp_path):
    code, out = run(tmp_path, """rules: ../r.yaml
tests:
  - name: nothing on a follow
    events: [{at: 0s, type: follow, user: ana}]
    expect: []
    exact: true
""")
    assert code == 0, out


def test_bad_test_files_are_errors_with_positions(tmp_path):
    code, out = run(tmp_path, """rules: ../r.yaml
tests:
  - name: typo
    events: [{at: soon, type: gfit}]
    expct: []
""")
    assert code == 1
    case = tmp_path / "t" / "case.yaml"
    assert out.splitlines() == [  # in line order
        f"ERROR {case}:4:19: bad duration 'soon': use a number with ms, s, m, h or d, e.g. 90s, 10m, 1h30m",
        f"ERROR {case}:4:31: unknown event type 'gfit' (did you mean 'gift'?)",
        f"ERROR {case}:5:5: unknown test case key 'expct' (did you mean 'expect'?)",
        "0 passed, 0 failed, 1 file error(s)",
    ]


def test_badly_typed_event_fields_are_errors_with_positions_and_the_run_goes_on(tmp_path):
    (tmp_path / "r.yaml").write_text(RULES)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a_bad.yaml").write_text("""rules: ../r.yaml
tests:
  - name: bad types
    events:
      - {at: 0s, type: gift, user: ana, diamonds: "5"}
      - {at: 1s, type: gift, user: ana, diamonds: lots}
      - {at: 2s, type: gift, user: {follow_role: high}}
      - {at: 3s, type: gift, user: [a, b]}
      - {at: 4s, type: chat, user: {is_moderator: yes}, diamonds: 5}
      - {at: 5s, type: [gift], count: 0}
      - {at: 6s, type: gift, count: 0, streak_end: 1}
    expect: []
    exact: yes
""")
    (tmp_path / "t" / "b_good.yaml").write_text("""rules: ../r.yaml
tests:
  - name: numbers are fine as names and text
    events: [{at: 0s, type: gift, user: {unique_id: 42, follow_role: 2, gifter_level: 3}, diamonds: 5, msg_id: 7}]
    expect: [{text: thanks 42}]
    exact: true
""")
    lines: list[str] = []
    assert run_paths([tmp_path / "t"], out=lines.append) == 1
    bad = tmp_path / "t" / "a_bad.yaml"
    assert lines == ["\n".join([
        f"ERROR {bad}:5:51: 'diamonds' must be a whole number of at least 0, not text ('5')",
        f"ERROR {bad}:6:51: 'diamonds' must be a whole number of at least 0, not text ('lots')",
        f"ERROR {bad}:7:50: 'follow_role' must be a whole number from 0 to 3, not text ('high')",
        f"ERROR {bad}:8:36: 'user' is a name such as ana, or a mapping of user_id, unique_id, nickname, "
        "follow_role, is_moderator, is_subscriber, gifter_level; not a list",
        f"ERROR {bad}:9:51: 'is_moderator' must be true or false, not text ('yes')",
        f"ERROR {bad}:9:57: 'diamonds' is not a field of chat events (they have: text)",
        f"ERROR {bad}:10:24: 'type' is one event type such as gift, not a list",
        f"ERROR {bad}:11:37: 'count' must be a whole number of at least 1, not 0",
        f"ERROR {bad}:11:52: 'streak_end' must be true or false, not 1",
        f"ERROR {bad}:13:12: 'exact' must be true or false, not text ('yes')",
    ]), "1 passed, 0 failed, 1 file error(s)"]


def test_the_starter_pack_tests_pass():
    lines: list[str] = []
    assert run_paths([Path("rules/tests")], out=lines.append) == 0, "\n".join(lines)
    assert lines[-1].endswith("passed, 0 failed") and not lines[-1].startswith("0 passed")


def test_the_readme_python_example_is_true(monkeypatch):
    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Testing rules in Python"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("```", start)]
    monkeypatch.chdir(root)  # the example names "rules/"
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


@pytest.mark.parametrize("rules, col, shown", [
    ("42", 8, "42"), ("{a: 1}", 8, "a mapping"), ("[../r.yaml, 7]", 20, "7"), ("[]", 8, None), ("''", 8, "''"),
])
def test_rules_that_are_not_file_names_are_errors_with_positions(tmp_path, rules, col, shown):
    code, out = run(tmp_path, f"""rules: {rules}
tests:
  - name: n
    events: []
    expect: []
""")
    assert code == 1
    case = tmp_path / "t" / "case.yaml"
    [error, summary] = out.splitlines()
    assert error.startswith(f"ERROR {case}:1:{col}: 'rules' names "), error
    if shown is not None:
        assert error.endswith(f"not {shown}") or shown in error, error
    assert summary == "0 passed, 0 failed, 1 file error(s)"


def test_battle_events_with_lists_and_mappings_in_rule_tests(tmp_path):
    """Issue 13's kinds carry lists and mappings (top, mvp, opponents): rule tests take them as YAML."""
    (tmp_path / "battle.yaml").write_text("""rules:
  - id: mvp
    on: battle_end
    when: event.winner == 'us' and event.mvp
    do: [{say: "GG! MVP {{ event.mvp.nickname }} ({{ event.our_score }}-{{ event.their_score }})"}]
  - id: rally
    on: battle_update
    when: event.time_left_s <= 30 and event.our_score < event.their_score
    do: [{say: "{{ event.time_left_s }} s left, behind by {{ event.their_score - event.our_score }}!"}]
""")
    code, out = run(tmp_path, """rules: ../battle.yaml
tests:
  - name: rally then mvp
    events:
      - {at: 0s, type: battle_update, battle_id: b1, our_score: 10, their_score: 50, time_left_s: 20}
      - {at: 1s, type: battle_end, battle_id: b1, our_score: 90, their_score: 50, winner: us,
         mvp: {user_id: "1", unique_id: ana, nickname: Ana, score: 80}, top: [{user_id: "1", nickname: Ana}]}
    expect:
      - {kind: say, text: "20 s left, behind by 40!"}
      - {kind: say, text: "GG! MVP Ana (90-50)"}
""")
    assert code == 0, out
    code, out = run(tmp_path, """rules: ../battle.yaml
tests:
  - name: a list where a mapping belongs
    events:
      - {at: 0s, type: battle_end, battle_id: b1, winner: us, mvp: [1]}
""")
    assert code == 1 and "'mvp' must be a mapping or null" in out, out
