"""The Jinja sandbox: data stays data, and rule text cannot reach Python internals or hang."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from bot.engine.templates import MAX_SAFE_INT, MAX_STRING, TemplateCompileError, Text, Value, compile_condition

NAMES = frozenset({"event", "user"})


def render(source: str, **context) -> str:
    return Text(source, NAMES | frozenset(context)).render(context)


def test_plain_text_skips_jinja():
    assert Text("hello").is_static and Text("hello").render({}) == "hello"


def test_values_are_never_evaluated():
    assert render("{{ user.nickname }}", user={"nickname": "{{ 7*7 }}"}) == "{{ 7*7 }}"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ user.__class__ }}",
    "{{ (1).__class__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
])
def test_python_internals_are_out_of_reach(source):
    with pytest.raises(Exception) as info:
        render(source, user={"nickname": "x"})
    assert isinstance(info.value, (SecurityError, TemplateCompileError)) or "undefined" in str(info.value).lower()


def test_huge_repetition_is_refused():
    with pytest.raises(TemplateCompileError, match="too long"):  # a constant: refused at load
        render("{{ 'a' * 1000000000 }}")
    with pytest.raises(TemplateCompileError, match="too large"):
        render("{{ 2 ** 100000 }}")
    with pytest.raises(SecurityError):  # from data: refused when it runs
        render("{{ 'a' * n }}", n=1000000000)
    with pytest.raises(SecurityError):
        render("{{ 2 ** n }}", n=100000)
    assert render("{{ 'ab' * 3 }}") == "ababab"


def test_rendered_text_is_capped():
    out = render("{{ user.nickname }}", user={"nickname": "x" * (MAX_STRING * 5)})
    assert len(out) == MAX_STRING


@pytest.mark.parametrize("source", [
    "{% for i in range(10) %}{% for j in range(10) %}x{% endfor %}{% endfor %}",
    "{% macro m() %}x{% endmacro %}",
    "{% include 'x' %}",
    "{% import 'x' as y %}",
])
def test_loops_macros_and_includes_are_refused_at_load(source):
    with pytest.raises(TemplateCompileError):
        Text(source, NAMES)


def test_conditions():
    cond = compile_condition("event.count >= 10 and user.nickname != 'x'", NAMES)
    assert cond({"event": {"count": 10}, "user": {"nickname": "a"}}) is True
    assert cond({"event": {"count": 9}, "user": {"nickname": "a"}}) is False
    with pytest.raises(TemplateCompileError, match="bare expressions"):
        compile_condition("{{ event.count }}", NAMES)
    with pytest.raises(TemplateCompileError, match="unknown variable 'evnt'"):
        compile_condition("evnt.count > 1", NAMES)


def test_num_filter():
    assert render("{{ 1234567 | num }}") == "1,234,567"


# -- data values: a lone {{ expr }} keeps a number, bool or none ---------------------------------------

def value(source: str, **context):
    return Value(source, NAMES | frozenset(context)).value(context)


@pytest.mark.parametrize("source, context, expected", [
    ("{{ event.total_diamonds }}", {"event": {"total_diamonds": 5000}}, 5000),
    ("{{event.total_diamonds}}", {"event": {"total_diamonds": 5000}}, 5000),
    ("{{   event.count * 2   }}", {"event": {"count": 3}}, 6),
    ("{{ event.count / 4 }}", {"event": {"count": 3}}, 0.75),
    ("{{ 1.5 }}", {}, 1.5),
    ("{{ event.count > 2 }}", {"event": {"count": 3}}, True),
    ("{{ false }}", {}, False),
    ("{{ none }}", {}, None),
    ("{{ user.last_thanked }}", {"user": {"last_thanked": None}}, None),
    (f"{{{{ {MAX_SAFE_INT} }}}}", {}, MAX_SAFE_INT),
    (f"{{{{ -{MAX_SAFE_INT} }}}}", {}, -MAX_SAFE_INT),
])
def test_a_lone_expression_keeps_its_native_value(source, context, expected):
    out = value(source, **context)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("source, context, expected", [
    ("{{ user.nickname }}", {"user": {"nickname": "123"}}, "123"),  # a str stays a str, even if it reads as a number
    ("{{ user.nickname }}", {"user": {"nickname": "true"}}, "true"),
    ("{{ event.count | string }}", {"event": {"count": 3}}, "3"),
    ("{{ event.count }} diamonds", {"event": {"count": 3}}, "3 diamonds"),  # mixed text stays text
    (" {{ event.count }}", {"event": {"count": 3}}, " 3"),
    ("{{ event.count }}{{ event.count }}", {"event": {"count": 3}}, "33"),
    ("{{ event.count }}\n", {"event": {"count": 3}}, "3"),
    ("{% if true %}{{ event.count }}{% endif %}", {"event": {"count": 3}}, "3"),
    ("5000", {}, "5000"),  # plain text with no template stays text
    ("{{ '}}' }}", {}, "}}"),
    ("{{ [1, 2] }}", {}, "[1, 2]"),
    ("{{ {'a': 1} }}", {}, "{'a': 1}"),
    ("{{ 2 ** 53 }}", {}, "9007199254740992"),  # beyond what JSON readers hold exactly: text
    ("{{ -(2 ** 60) }}", {}, "-1152921504606846976"),
    ("{{ 1e308 * 10 }}", {}, "inf"),  # not JSON: text
    ("{{ (1e308 * 10) - (1e308 * 10) }}", {}, "nan"),
])
def test_anything_else_renders_as_the_text_it_renders_to_today(source, context, expected):
    out = value(source, **context)
    assert out == expected and type(out) is str
    assert out == render(source, **context)  # exactly what a text template prints


def test_a_data_expression_fails_like_a_text_and_is_bounded():
    with pytest.raises(Exception) as info:
        value("{{ event.missing }}", event={})
    assert "missing" in str(info.value)  # StrictUndefined: an error, not None
    for source in ("{{ ''.__class__.__mro__ }}", "{{ 2 ** 100000 }}", "{{ 'a' * 1000000000 }}"):
        with pytest.raises(TemplateCompileError):  # refused at load
            value(source)
    with pytest.raises(SecurityError):  # from data: when it runs
        value("{{ 'a' * n }}", n=1000000000)
    assert len(value("{{ user.nickname }}", user={"nickname": "x" * (MAX_STRING * 5)})) == MAX_STRING


@pytest.mark.parametrize("source", ["{{ [1, 2]|random }}", "{{ cycler.__init__.__globals__ }}", "{{ config }}",
                                    "{{ user.nickname | evil }}", "{{ user.nickname "])
def test_a_data_expression_is_checked_at_load_like_any_template(source):
    with pytest.raises(TemplateCompileError):
        Value(source, NAMES)
