"""`livebot test`: rule tests that pass, fail with a readable diff, and report bad test files."""

from __future__ import annotations

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
    assert out.splitlines() == [
        f"ERROR {case}:5:5: unknown test case key 'expct' (did you mean 'expect'?)",
        f"ERROR {case}:4:19: bad duration 'soon': use a number with ms, s, m, h or d, e.g. 90s, 10m, 1h30m",
        f"ERROR {case}:4:31: unknown event type 'gfit' (did you mean 'gift'?)",
        "0 passed, 0 failed, 1 file error(s)",
    ]


def test_the_starter_pack_tests_pass():
    from pathlib import Path

    lines: list[str] = []
    assert run_paths([Path("rules/tests")], out=lines.append) == 0, "\n".join(lines)
    assert lines[-1].endswith("passed, 0 failed") and not lines[-1].startswith("0 passed")
