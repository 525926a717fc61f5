"""``hotcfg diff``: the key paths that differ, and values only when asked."""

import math

from hypothesis import given
from hypothesis import strategies as st

from hotcfg._content.diff import (
    ADDED,
    CHANGED,
    REMOVED,
    Change,
    diff,
    format_path,
    render,
)

KEYS = st.sampled_from(["a", "b", "c", "d.e", ""])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
    st.text(max_size=3), st.lists(st.integers(0, 2), max_size=2),
)  # fmt: skip
DOCS = st.recursive(
    st.dictionaries(KEYS, LEAVES, max_size=4),
    lambda inner: st.dictionaries(KEYS, st.one_of(LEAVES, inner), max_size=4),
    max_leaves=20,
)


def apply(old, changes):
    """Replay changes on a copy of ``old``: the result must be ``new``."""
    result = _copy(old)
    for change in changes:
        *parents, last = change.path
        node = result
        for key in parents:
            node = node[key]
        if change.kind == REMOVED:
            del node[last]
        else:
            node[last] = _copy(change.new)
    return result


def _copy(value):
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(DOCS, DOCS)
def test_replaying_the_diff_turns_old_into_new(old, new):
    changes = diff(old, new)
    assert _same(apply(old, changes), new)
    assert len({c.path for c in changes}) == len(changes)
    for change in changes:
        in_old, in_new = _has(old, change.path), _has(new, change.path)
        assert (in_old, in_new) == {
            ADDED: (False, True), REMOVED: (True, False), CHANGED: (True, True)
        }[change.kind]  # fmt: skip


def _has(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return False
        doc = doc[key]
    return True


@given(DOCS)
def test_a_document_does_not_differ_from_itself(doc):
    assert diff(doc, _copy(doc)) == []


def test_types_differ_even_where_python_calls_them_equal():
    changes = diff({"a": 1, "b": 1, "c": 1.0}, {"a": True, "b": 1.0, "c": 1.0})
    assert [c.path for c in changes] == [("a",), ("b",)]
    assert diff({"x": math.nan}, {"x": math.nan}) == []


def test_nested_paths_and_quoting():
    old = {"db": {"host": "a", "password": "s3cret"}, "gone": 1}
    new = {"db": {"host": "b", "password": "s3cret"}, "servers": {"eu.west": 1}}
    assert diff(old, new) == [
        Change(CHANGED, ("db", "host"), "a", "b"),
        Change(REMOVED, ("gone",), old=1),
        Change(ADDED, ("servers",), new={"eu.west": 1}),
    ]
    assert format_path(("servers", "eu.west", "port")) == 'servers["eu.west"].port'
    assert format_path(("", "a")) == '[""].a'


def test_values_are_shown_only_when_asked():
    changes = diff({"password": "s3cret", "old": "x"}, {"password": "n3w", "new": 2})
    plain = "\n".join(render(changes, values=False))
    assert plain == "+ new\n- old\n~ password"
    assert "s3cret" not in plain
    assert "n3w" not in plain
    shown = render(changes, values=True)
    assert shown == ["+ new = 2", '- old (was "x")', '~ password: "s3cret" -> "n3w"']
