"""The keys under an etcd prefix as one nested mapping (pure: ``_keytree``),
and the settings and command line around a prefix source."""

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotcfg import cli
from hotcfg._errors import SourceError
from hotcfg._settings import Settings
from hotcfg._sources.etcd.keytree import nest, path_of, range_end
from hotcfg._sources.locations import parse_etcd

PREFIX = "/app/config/"
SOURCE = "etcd://127.0.0.1:2379/app/config/"

# Path segments: any text without "/" (etcd keys may hold anything else).
segments = st.text(
    alphabet=st.characters(blacklist_characters="/", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=6,
)
leaves = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none())
trees = st.recursive(
    leaves,
    lambda inner: st.dictionaries(segments, inner, min_size=1, max_size=4),
    max_leaves=12,
)
mappings = st.dictionaries(segments, trees, min_size=1, max_size=4)


def keys_of(mapping, prefix=PREFIX):
    """The test's own inverse of nest(): each leaf's whole etcd key."""
    keys = {}
    for name, value in mapping.items():
        if isinstance(value, dict):
            keys.update(keys_of(value, f"{prefix}{name}/"))
        else:
            keys[f"{prefix}{name}"] = value
    return keys


@given(mappings)
def test_a_mapping_to_keys_and_back_is_the_same_mapping(mapping):
    assert nest(keys_of(mapping), prefix=PREFIX, source=SOURCE) == mapping


# Few names, so that one path is often the start of another.
few_segments = st.sampled_from(["a", "b", "a.b", "é"])


@given(st.sets(st.lists(few_segments, min_size=1, max_size=3).map(tuple), max_size=8))
def test_keys_nest_unless_one_is_the_parent_of_another(paths):
    values = {PREFIX + "/".join(path): n for n, path in enumerate(sorted(paths))}
    conflicts = {
        (PREFIX + "/".join(leaf), PREFIX + "/".join(child))
        for leaf in paths
        for child in paths
        if len(child) > len(leaf) and child[: len(leaf)] == leaf
    }
    if not conflicts:
        assert keys_of(nest(values, prefix=PREFIX, source=SOURCE)) == values
        return
    with pytest.raises(SourceError) as info:
        nest(values, prefix=PREFIX, source=SOURCE)
    reason = info.value.reason
    # Both keys of one real conflict are named, the value holder first.
    named = [
        (leaf, child)
        for leaf, child in conflicts
        if f"key {leaf} holds a value and is also the parent of key {child}:" in reason
    ]
    assert named, reason
    assert info.value.source == SOURCE


def test_a_leaf_and_a_parent_name_both_keys_whatever_the_order():
    values = {"/app/config/db": "x", "/app/config/db/timeout": 5}
    for ordered in (values, dict(reversed(values.items()))):
        with pytest.raises(SourceError) as info:
            nest(ordered, prefix=PREFIX, source=SOURCE)
        assert str(info.value) == (
            f"{SOURCE}: key /app/config/db holds a value and is also the parent "
            "of key /app/config/db/timeout: a key is either a value or a folder "
            "of keys; delete or move one of them"
        )


def test_a_value_may_itself_be_a_mapping():
    values = {"/app/config/db": {"timeout": 5}, "/app/config/name": "svc"}
    assert nest(values, prefix=PREFIX, source=SOURCE) == {
        "db": {"timeout": 5},
        "name": "svc",
    }


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("/app/config/db//timeout", "key /app/config/db//timeout has an empty path"),
        ("/app/config/db/", "key /app/config/db/ has an empty path segment"),
        ("/app/config//db", "key /app/config//db has an empty path segment"),
        ("/app/config/", "key /app/config/ is the prefix itself"),
        ("/app/config/\udcff", r"key /app/config/\xff is not UTF-8 text"),
    ],
)
def test_a_key_without_a_place_in_the_mapping_is_refused_by_name(key, reason):
    with pytest.raises(SourceError) as info:
        path_of(key, prefix=PREFIX, source=SOURCE)
    assert info.value.reason.startswith(reason)
    assert info.value.source == SOURCE
    with pytest.raises(SourceError) as info:
        nest({key: 1, "/app/config/ok": 2}, prefix=PREFIX, source=SOURCE)
    assert info.value.reason.startswith(reason)


def test_range_end_is_etcds_prefix_convention():
    assert range_end(b"/app/config/") == b"/app/config0"
    assert range_end(b"a\xff") == b"b"
    assert range_end(b"\xff\xff") == b"\0"


@given(st.binary(min_size=1, max_size=4), st.binary(max_size=6))
def test_range_end_covers_exactly_the_keys_with_the_prefix(prefix, key):
    end = range_end(prefix)
    in_range = prefix <= key and (end == b"\0" or key < end)
    assert in_range == key.startswith(prefix)


def test_keytree_imports_nothing_that_does_io():
    code = (
        "import json, sys, hotcfg._sources.etcd.keytree; "
        "print(json.dumps(list(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert {
        "socket",
        "http.client",
        "threading",
        "mmap",
        "hotcfg._sources.etcd.source",
        "hotcfg._sources.etcd.client",
        "hotcfg._sources.etcd.connection",
        "hotcfg._sources.etcd.watch",
    }.isdisjoint(loaded)


def test_a_prefix_source_reads_yaml_unless_a_format_is_set():
    settings = Settings.resolve({}, source=SOURCE)
    assert settings.format == "yaml"
    assert parse_etcd(settings.source).is_prefix
    assert not parse_etcd("etcd://h/app/config.yaml").is_prefix
    assert Settings.resolve({"HOTCFG_FORMAT": "json"}, source=SOURCE).format == "json"


def test_push_to_a_prefix_is_refused_before_anything_is_read(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    # Port 1: nothing listens there; a refusal that tried etcd would say so.
    assert cli.main(["push", str(config), "etcd://127.0.0.1:1/app/config/"]) == 2
    err = capsys.readouterr().err
    assert "hotcfg push writes one key" in err
    assert "names a prefix" in err
    assert "unreachable" not in err
