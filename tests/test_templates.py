"""The Jinja sandbox: data stays data, and rule text cannot reach Python internals or hang."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from bot.engine.templates import MAX_STRING, TemplateCompileError, Text, compile_condition

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
    with pytest.raises(SecurityError):
        render("{{ 'a' * 1000000000 }}")
    with pytest.raises(SecurityError):
        render("{{ 2 ** 100000 }}")
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
