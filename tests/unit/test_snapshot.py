"""Snapshot lookups: dotted paths, defaults, and the per-snapshot answer memo."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from hotcfg import MissingKeyError, Snapshot
from hotcfg._segment.snapshot import MEMO_MAX

DATA = MappingProxyType(
    {
        "db": MappingProxyType({"timeout": 5, "hosts": ("a", "b")}),
        "name": "svc",
        "dotted.key": 1,
    }
)


@pytest.fixture
def snap() -> Snapshot:
    return Snapshot(generation=3, data=DATA)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("db.timeout", 5),
        ("db.hosts", ("a", "b")),
        ("name", "svc"),
        (("dotted.key",), 1),
        (["db", "timeout"], 5),
        ("db.missing", "default"),
        ("name.length", "default"),  # a step into a str
        ("db.hosts.0", "default"),  # a step into a tuple by a str key
        ("db.timeout.x", "default"),  # a step into an int
        ("", DATA),  # the empty path is the whole mapping
    ],
)
def test_get_twice_gives_the_same_answer(snap: Snapshot, path, expected) -> None:
    # The second call is answered from the memo; both must agree.
    assert snap.get(path, "default") == expected
    assert snap.get(path, "default") == expected


def test_default_is_not_memoized(snap: Snapshot) -> None:
    assert snap.get("db.nope", 1) == 1
    assert snap.get("db.nope", 2) == 2
    assert snap.get("db.nope") is None


def test_require_raises_for_missing_even_after_get(snap: Snapshot) -> None:
    assert snap.get("db.nope") is None
    with pytest.raises(MissingKeyError, match=r"db\.nope"):
        snap.require("db.nope")
    assert snap.require("db.timeout") == 5


def test_memo_is_bounded(snap: Snapshot) -> None:
    for i in range(MEMO_MAX * 2):
        assert snap.get(f"missing.{i}", i) == i
    assert len(snap._memo) == MEMO_MAX


def test_memo_does_not_affect_equality() -> None:
    a = Snapshot(generation=1, data=DATA)
    b = Snapshot(generation=1, data=DATA)
    a.get("db.timeout")
    assert a == b
