"""Fuzzing the rule loader, templates and conditions, the engine with hostile events, and
``livebot test`` on random test files.

Properties: a rule text either loads or raises ``RuleLoadError`` whose every problem is one line
``file:line:col: message`` (never another exception, never a hang); a loaded rule set, fed events
with hostile values, never raises out of the engine (a firing that fails is dropped and counted);
``livebot test`` on any file answers with an exit code and positioned errors.

``LIVEBOT_FUZZ_EXAMPLES=20000`` runs each target that many times (see RELIABILITY.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from bot.engine.core import Engine
from bot.engine.loader import RULE_KEYS, RuleLoadError, load_rules, load_rules_text
from bot.engine.rules import RuleSet
from bot.engine.yamlfile import MAX_NESTING, MAX_VALUES
from bot.events.model import DATA_FIELDS, EVENT_TYPES, MAX_INT, Event, User
from bot.ruletests import run_paths
from fuzzing import PROBLEM, fuzz, mutate_lines

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))
RUNNER_PROBLEM = re.compile(r"^[^\n]+?:\d+:\d+: [^\n]+$")  # a rule path named in a test file may hold a colon


def check_rules(text: str, file: str = "fuzz.yaml") -> RuleSet | None:
    """Load ``text``; assert every refusal is a list of positioned one-line problems."""
    try:
        ruleset = load_rules_text(text, file)
    except RuleLoadError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), repr(problem)
            assert len(problem) < 2000, problem[:200]
        return None
    for rule in ruleset.rules:  # times the engine keeps (and saves) stay whole numbers JSON can carry
        assert all(0 <= getattr(rule, f) <= MAX_INT for f in ("every_ms", "after_ms", "jitter_ms", "cooldown_ms",
                                                               "user_cooldown_ms")), rule
    return ruleset


# -- random text and random YAML --------------------------------------------------------------------

YAML_TOKENS = ["rules:", "\n", "\n  ", "\n    ", "- ", "id: ", "on: ", "do: ", "say: ", "when: ", "every: ",
               "after: ", "command: ", "tiers:", "min: ", "{", "}", "[", "]", ", ", ": ", "&a ", "*a", "<<: *a",
               "!!python/object:os.system ", "!!binary ", "!!str ", "!!int ", "!!set ", "? ", "|", ">-", "'", '"',
               "#", "---", "...", "%YAML 1.1", "\t", "\x00", "\ufeff", "\x85", "\u2028", "{{ user.nickname }}",
               "{% if x %}", "{{", "}}", "gift", "chat", "10s", "1e9", "-1", "true", "yes", "~", "null", "x" * 300]
YAML_ISH = st.lists(st.sampled_from(YAML_TOKENS) | st.text(max_size=6), max_size=40).map("".join)


@fuzz(300)
@given(st.text(max_size=300) | YAML_ISH)
@example("rules: &a [*a]")
@example("[" * 100_000)
@example("rules:\n" + "".join("  " * i + "- \n" for i in range(500)))
@example("a: &a {b: *a}\nrules: [*a]")
def test_random_text(text):
    check_rules(text)


def billion_laughs(levels: int, fan: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels)]
    return "\n".join(lines + [f"rules: *a{levels - 1}"])


def merge_laughs(levels: int, fan: int = 9) -> str:
    """Each rule merges the one before it ``fan`` times (merge keys as snippets)."""
    lines = ["rules:", "  - &m0 {id: r0, on: chat, do: [{say: hi}]}"]
    lines += [f"  - &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * fan)}], id: r{i}}}" for i in range(1, levels)]
    return "\n".join(lines)


def test_alias_bombs_and_deep_nesting_are_refused_with_a_position():
    """'Billion laughs' once took minutes and gigabytes; nesting 1,000 deep raised RecursionError."""
    for text in (billion_laughs(9), billion_laughs(30, 2), "[" * 100_000, "rules: &a [*a]",
                 "rules: " + "{a: " * 900 + "1" + "}" * 900, "rules:\n" + "".join("  " * i + "- \n" for i in range(300))):
        assert check_rules(text) is None
    ok = check_rules(merge_laughs(40))  # merges of merges keep one entry per key: loads, small
    assert ok is not None and len(ok.rules) == 40 and ok.rules[-1].actions[0].text.source == "hi"
    assert check_rules("rules: " + "[" * (MAX_NESTING - 2) + "]" * (MAX_NESTING - 2)) is None  # deep but legal YAML
    with_limit = billion_laughs(6)  # 9**5 = 59,049 rule entries: loads as far as the rules go
    assert MAX_VALUES > 9**5 and check_rules(with_limit) is None


SCALAR = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
          | st.text(max_size=20) | st.sampled_from(["gift", "chat", "10s", "1h30m", "-5s", "0", "{{ user.nickname }}",
                                                   "user.gifts > 1", "!help", "say", "poll", "kind", "per"]))
KEY = st.sampled_from(list(RULE_KEYS) + ["rules", "settings", "include", "say", "alert", "poll", "quiz", "set",
                                         "incr", "kind", "text", "data", "options", "answer", "var", "by", "per",
                                         "min", "of", "at", "global", "user", "chat", "leaderboard", "snippets",
                                         "per_minute", "burst", "top", "name", "disclosure"]) | st.text(max_size=8)
TREE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=4),
                    max_leaves=12)


def dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


@fuzz(150)
@given(st.dictionaries(st.sampled_from(["rules", "settings", "include"]), TREE, min_size=1)
       .filter(lambda d: not isinstance(d.get("include"), (str, list))))
def test_random_rule_documents(doc):
    check_rules(dump(doc))


@fuzz(200)
@given(st.lists(st.dictionaries(KEY, TREE, max_size=8), min_size=1, max_size=3))
@example([{"id": "t", "every": float("inf"), "do": [{"say": "x"}]}])  # was OverflowError
@example([{"id": "t", "every": "1" * 400 + "s", "do": [{"say": "x"}]}])  # was OverflowError
@example([{"id": "t", "on": "chat", "cooldown": float("nan"), "do": [{"say": "x"}]}])
@example([{"id": "t", "every": 1.9e16, "do": [{"say": "x"}]}])  # 1.9e19 ms: beyond what JSON and state can carry
@example([{"id": "t", "on": "a\nb\u2028c", "do": [{"say": "x"}]}])  # a line break inside a problem
@example([{"id": "t", "on": "chat", "do": [{"say": "{{ user.nickname\n\n"}]}])
def test_random_rules(rules):
    check_rules(dump({"rules": rules}))


# -- the real rule files, mutated ----------------------------------------------------------------------

REAL = {f.name: f.read_text(encoding="utf-8") for f in RULE_FILES}


@st.composite
def mutated_file(draw: Any) -> str:
    return mutate_lines(draw, REAL[draw(st.sampled_from(sorted(REAL)))],
                        ["delete", "duplicate", "indent", "dedent", "insert", "splice", "truncate", "swap"],
                        st.sampled_from(YAML_TOKENS))


@fuzz(300)
@given(mutated_file())
def test_mutated_rule_files(text):
    check_rules(text, "rules/mutated.yaml")


# -- templates and conditions --------------------------------------------------------------------------

TEMPLATE_TOKENS = ["{{", "}}", "{%", "%}", "{#", "#}", " ", "user", "user.nickname", "user.gifts", "event", "event.text",
                   "event.count", "event.name", "leaderboard", "stats", "since.chat", "snippets.socials", ".", "|",
                   "num", "ranked", "default('x')", "upper", "attr('__class__')", "format", "(", ")", "[", "]", "*",
                   "**", "+", "~", "'", '"', "1", "9" * 20, "range(10)", "if", "else", "endif", "for", "in", "endfor",
                   "set", "x", "=", "macro", "include", "import", "raw", "endraw", "__class__", "__globals__", "mro",
                   "cycler", "lipsum", "self", "dict", "min", "max", "abs", "and", "or", "not", "is", "defined", "\n",
                   "%", ",", ":", "lambda", "-"]
TEMPLATE = st.lists(st.sampled_from(TEMPLATE_TOKENS) | st.text(max_size=3), max_size=25).map("".join)
EXPRESSION = st.lists(st.sampled_from([t for t in TEMPLATE_TOKENS if t not in ("{{", "}}", "{%", "%}")])
                      | st.text(max_size=3), min_size=1, max_size=15).map("".join)

HOSTILE_TEXT = st.sampled_from(["{{ 7*7 }}", "{% for x in range(10**9) %}x{% endfor %}", "{{ ''.__class__ }}",
                                "!poll", "!trivia", "!top", "!help me", "Mars", "1", "2", "\u202eevil", "\x00",
                                "Z̸̧̛̖̺̤͓̤̓̄̓͊̈́a̶̢̛͉̗l̴̰͍̑g̵o", "🌸" * 500, "x" * 100_000, "", " ", "!", "!!", "! ",
                                "%s %d {0} {}"]) | st.text(max_size=30)
HOSTILE_INT = st.sampled_from([0, 1, -1, MAX_INT, -MAX_INT, 2**31, -(2**31)]) | st.integers(-5, 10**6)


@st.composite
def hostile_event(draw: Any, ts: int) -> Event:
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    user = None if draw(st.integers(0, 5)) == 0 else User(
        user_id=draw(st.sampled_from(["1", "2", "3", ""]) | HOSTILE_TEXT), unique_id=draw(HOSTILE_TEXT),
        nickname=draw(HOSTILE_TEXT), follow_role=draw(st.sampled_from([0, 1, 2, -1, MAX_INT])),
        is_moderator=draw(st.booleans()), is_subscriber=draw(st.booleans()), gifter_level=draw(HOSTILE_INT))
    data: dict[str, Any] = {}
    for field in DATA_FIELDS.get(kind, ()):
        if draw(st.integers(0, 6)) == 0:
            continue  # a field may be missing
        if field in ("opponents", "top", "users", "options", "msg_ids"):
            data[field] = draw(st.lists(st.fixed_dictionaries(
                {"user_id": HOSTILE_TEXT, "unique_id": HOSTILE_TEXT, "nickname": HOSTILE_TEXT, "score": HOSTILE_INT,
                 "text": HOSTILE_TEXT, "votes": HOSTILE_INT}), max_size=3))
        elif field in ("mvp", "pinned_by"):
            data[field] = draw(st.none() | st.fixed_dictionaries(
                {"user_id": HOSTILE_TEXT, "unique_id": HOSTILE_TEXT, "nickname": HOSTILE_TEXT, "score": HOSTILE_INT}))
        elif field in ("text", "name", "group_id", "kind", "source", "reason", "display_name", "battle_id", "winner",
                       "channel_id", "action", "emote_id", "goal_id", "description", "poll_id", "title", "phase",
                       "rank_type"):
            data[field] = draw(HOSTILE_TEXT)
        elif field == "streak_end":
            data[field] = draw(st.booleans())
        elif field == "previous_rank":
            data[field] = draw(st.none() | HOSTILE_INT)
        else:
            data[field] = draw(HOSTILE_INT)
    return Event(kind, ts, "room", draw(st.sampled_from(["", "1", "2"]) | st.text(max_size=4)), user, data)


@st.composite
def hostile_events(draw: Any) -> list[Event]:
    ts, out = 1_763_665_200_000, []
    for _ in range(draw(st.integers(1, 15))):
        ts += draw(st.sampled_from([0, 1, 500, 5_000, 60_000, 600_000]))
        out.append(draw(hostile_event(ts)))
    return out


def run_engine(ruleset: RuleSet, events: list[Event]) -> Engine:
    """Feed every event and run every deadline; nothing may raise out of the engine."""
    engine = Engine(ruleset)
    now = 0
    for ev in events:
        now = max(now, ev.ts)
        for action in engine.feed(ev, now):
            assert isinstance(action.text, str)
    deadline = engine.next_deadline()
    for _ in range(50):
        if deadline is None:
            break
        engine.advance(deadline)
        deadline = engine.next_deadline()
    engine.close()
    return engine


def rule_with(text: str, when: str | None = None, on: str = "[chat, gift, join, like, follow, top_gifter]") -> str:
    rule = {"id": "fuzz", "on": "__ON__", "do": [{"say": text}, {"alert": {"text": "a", "data": {"v": text}}}]}
    if when is not None:
        rule["when"] = when
    return dump({"rules": [rule]}).replace("__ON__", on)


@fuzz(200)
@given(TEMPLATE, hostile_events())
@example("{{ ''.__class__.__mro__ }}", [])
@example("{{ 'a' * 10**9 }}", [])
@example("{{ 10**10**10 }}", [])
@example("{{ user.nickname ~ user.nickname * 1000 }}", [])
def test_random_templates_compile_or_are_refused_and_never_raise_at_run_time(template, events):
    ruleset = check_rules(rule_with(template))
    if ruleset is not None:
        run_engine(ruleset, events)


@fuzz(150)
@given(EXPRESSION, hostile_events())
@example("user.nickname.__class__", [])
@example("event.count ** event.count ** event.count", [])
@example("(event.text * 99999) | length > 1", [])
def test_random_conditions_compile_or_are_refused_and_never_raise_at_run_time(expression, events):
    ruleset = check_rules(rule_with("hi {{ user.nickname }}", when=expression))
    if ruleset is not None:
        run_engine(ruleset, events)


STARTER = load_rules(ROOT / "rules")


@fuzz(100)
@given(hostile_events())
def test_the_starter_pack_takes_hostile_events(events):
    """Every rule of the starter pack (tiers, milestones, polls, quizzes, commands, timers)."""
    engine = run_engine(STARTER, events)
    assert engine.counters["rule_errors"] >= 0


# -- livebot test on random test files -------------------------------------------------------------------

TEST_KEYS = st.sampled_from(["rules", "tests", "name", "events", "expect", "absent", "exact", "until", "at", "type",
                             "user", "msg_id", "kind", "rule", "text", "match", "count", "diamonds", "gift_type",
                             "streak_end", "nickname", "follow_role", "is_moderator"]) | st.text(max_size=6)
TEST_SCALAR = SCALAR | st.sampled_from(["gift", "chat", "say", "thank-gift", "0s", "5s", "1m", "(", "[a-", "*",
                                        "../gifts.yaml", "../chat.yaml", "../", "nope.yaml"])
TEST_TREE = st.recursive(TEST_SCALAR, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(TEST_KEYS, inner, max_size=6), max_leaves=20)
REAL_TESTS = {f.name: f.read_text(encoding="utf-8") for f in sorted((ROOT / "rules" / "tests").glob("*.yaml"))}


@fuzz(150)
@given(st.one_of(
    st.builds(lambda rules, tests: dump({"rules": rules, "tests": tests}),
              st.sampled_from(["../gifts.yaml", "../chat.yaml", ["../gifts.yaml", "../reminders.yaml"], "nope.yaml",
                               5, None, {"a": 1}]),
              st.lists(st.dictionaries(TEST_KEYS, TEST_TREE, max_size=6), max_size=3) | TEST_TREE),
    st.text(max_size=200),
    st.builds(lambda name, cut: REAL_TESTS[name][:cut], st.sampled_from(sorted(REAL_TESTS)), st.integers(0, 3000))))
def test_the_test_runner_on_random_test_files(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("ruletests") / "tests"
    folder.mkdir()
    for name, body in REAL.items():
        (folder.parent / name).write_text(body, encoding="utf-8")
    (folder / "case.yaml").write_text(text, encoding="utf-8")
    out: list[str] = []
    code = run_paths([folder], out=out.append)
    assert code in (0, 1)
    for line in "\n".join(out).splitlines():
        if line.startswith("ERROR "):
            assert RUNNER_PROBLEM.match(line[len("ERROR "):]), line


def _run_test_file(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    (tmp_path / "tests").mkdir(exist_ok=True)
    for name, body in REAL.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "tests" / "case.yaml").write_text(text, encoding="utf-8")
    out: list[str] = []
    return run_paths([tmp_path / "tests"], out=out.append), out


def test_the_test_runner_refuses_an_endless_duration(tmp_path):
    code, out = _run_test_file(tmp_path, "rules: ../gifts.yaml\ntests:\n  - {name: x, events: [{at: .inf, type: chat}]}\n")
    assert code == 1 and RUNNER_PROBLEM.match(out[0][len("ERROR "):])


def test_the_test_runner_keeps_each_problem_on_one_line(tmp_path):
    code, out = _run_test_file(tmp_path, 'rules: ../gifts.yaml\ntests:\n  - {name: x, events: [{at: 0s, type: "a\\nb"}]}\n')
    assert code == 1 and all(RUNNER_PROBLEM.match(line[len("ERROR "):]) for line in "\n".join(out).splitlines()
                             if not line.endswith("file error(s)"))


# -- coverage-guided, with atheris (not part of the test run) -----------------------------------------
#   .venv/bin/pip install atheris
#   .venv/bin/python tests/test_fuzz_rules.py -max_total_time=300      (libFuzzer flags)

def _atheris_main() -> None:
    import sys

    import atheris

    atheris.instrument_all()
    seeds = [text.encode() for text in REAL.values()]

    def one_input(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        if provider.ConsumeBool():  # a real rule file with a random part spliced in
            base = seeds[provider.ConsumeIntInRange(0, len(seeds) - 1)].decode()
            at = provider.ConsumeIntInRange(0, len(base))
            text = base[:at] + provider.ConsumeUnicodeNoSurrogates(64) + base[at + provider.ConsumeIntInRange(0, 64):]
        else:
            text = provider.ConsumeUnicodeNoSurrogates(4096)
        ruleset = check_rules(text)
        if ruleset is not None:
            run_engine(ruleset, [Event("chat", 1_000, "r", "m", User("1", "a", "{{ 7*7 }}"), {"text": "!help"}),
                                 Event("gift", 2_000, "r", "g", User("1", "a", "A"),
                                       {"gift_id": 1, "name": "Rose", "diamonds": 5, "count": 3, "gift_type": 1,
                                        "streak_end": True})])

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    _atheris_main()
