"""Snapshot.as_model() and the HOTCFG_MODEL validator, on dataclasses and pydantic."""

import json
import math
from dataclasses import dataclass
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotcfg import Snapshot, ValidationError
from hotcfg._content.typed import import_model, model_validator, to_model
from hotcfg._content.validate import run_validators
from hotcfg._errors import ConfigError
from hotcfg._sources.files import load_document
from tests.apps.models import App, Db, Pool, PydApp

GOOD = {
    "db": {"url": "sqlite://", "pool": {"size": 5}, "replicas": ["a", "b"]},
    "limits": {"rps": 10},
    "ports": [80, 443],
    "pair": [1, "x"],
}
SECRET = "hunter2-s3cret"


def frozen(value):
    """As the codec hands values to workers: read-only mappings and tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    return value


def test_dataclass_nested_and_typed():
    app = Snapshot(1, frozen(GOOD)).as_model(App)
    assert app.db == Db(url="sqlite://", pool=Pool(size=5), replicas=("a", "b"))
    assert app.db.pool.timeout == 5.0
    assert app.ports == [80, 443]
    assert app.limits == {"rps": 10}
    assert app.pair == (1, "x")
    assert app.owner is None


def test_sub_path_and_memo():
    snap = Snapshot(3, frozen(GOOD))
    pool = snap.as_model(Pool, "db.pool")
    assert pool == Pool(size=5)
    assert snap.as_model(Pool, "db.pool") is pool  # built once per snapshot
    assert snap.as_model(Pool, ("db", "pool")) is pool
    assert Snapshot(4, frozen(GOOD)).as_model(Pool, "db.pool") is not pool


@pytest.mark.parametrize(
    ("patch", "path", "reason"),
    [
        (
            {"db": {"url": "u", "pool": {"size": SECRET}}},
            "db.pool.size",
            "expected int, got str",
        ),
        (
            {"db": {"url": "u", "pool": {"size": True}}},
            "db.pool.size",
            "expected int, got bool",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1, "timeout": "1"}}},
            "db.pool.timeout",
            "expected float, got str",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1, "timeout": False}}},
            "db.pool.timeout",
            "expected float, got bool",
        ),
        ({"db": {"url": "u", "pool": {}}}, "db.pool.size", "required key missing"),
        (
            {"db": {"url": "u", "pool": {"size": 1, "sise": 2}}},
            "db.pool.sise",
            "unknown key",
        ),
        (
            {"db": {"url": "u", "pool": [SECRET]}},
            "db.pool",
            "expected a mapping (Pool), got list",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}, "mode": SECRET}},
            "db.mode",
            "expected one of 'ro', 'rw', got str",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}, "replicas": ["a", 7]}},
            "db.replicas.1",
            "expected str, got int",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "debug": 1},
            "debug",
            "expected bool, got int",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "limits": {"rps": SECRET}},
            "limits.rps",
            "expected int, got str",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "limits": [1]},
            "limits",
            "expected a mapping, got list",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "ports": SECRET},
            "ports",
            "expected a list, got str",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "owner": 3},
            "owner",
            "expected str, got int",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "pair": [1]},
            "pair",
            "expected a list of 2 items, got list",
        ),
        (
            {"db": {"url": "u", "pool": {"size": 1}}, "either": 1.5},
            "either",
            "expected int | str, got float",
        ),
    ],
)
def test_misfits_name_the_key_path_not_the_value(patch, path, reason):
    with pytest.raises(ValidationError) as info:
        Snapshot(1, frozen(patch), source="file:/etc/app.yaml").as_model(App)
    assert info.value.key_path == path
    assert reason in info.value.reason
    assert SECRET not in str(info.value)
    assert "file:/etc/app.yaml" in str(info.value)


def test_missing_path_and_unsupported_model():
    snap = Snapshot(1, frozen(GOOD))
    with pytest.raises(ValidationError, match=r"at db\.nope: required key missing"):
        snap.as_model(Pool, "db.nope")
    with pytest.raises(TypeError):
        snap.as_model(dict)

    @dataclass
    class Odd:
        when: complex

    with pytest.raises(TypeError):
        to_model(Odd, {"when": 1})


def test_int_is_float_but_bool_is_not_int_and_literal_is_typed():
    assert to_model(Pool, {"size": 2, "timeout": 3}).timeout == 3.0
    assert isinstance(to_model(Pool, {"size": 2, "timeout": 3}).timeout, float)
    assert (
        to_model(App, {"db": {"url": "u", "pool": {"size": 1}}, "either": "s"}).either
        == "s"
    )


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats()
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(size=JSON, timeout=JSON)
def test_any_value_gives_a_model_or_a_validation_error(size, timeout):
    """Invariant: whatever a config holds, as_model fits it or raises ValidationError
    at the right key; an accepted pool's fields have exactly the declared types."""
    size_fits = type(size) is int
    timeout_fits = type(timeout) in (int, float)
    if not (size_fits and timeout_fits):
        with pytest.raises(ValidationError) as info:
            to_model(Pool, {"size": size, "timeout": timeout})
        assert info.value.key_path == ("timeout" if size_fits else "size")
        return
    pool = to_model(Pool, {"size": size, "timeout": timeout})
    assert type(pool.size) is int
    assert type(pool.timeout) is float
    # An int is widened as Python widens it: 2**53 + 1 becomes 2**53.
    assert math.isnan(pool.timeout) or pool.timeout == float(timeout)


def test_pydantic_model():
    snap = Snapshot(
        1, frozen({"svc": {"name": "a", "pool": {"size": 2}, "tags": ["x"]}})
    )
    model = snap.as_model(PydApp, "svc")
    assert model.pool.size == 2
    assert model.tags == ["x"]
    assert snap.as_model(PydApp, "svc") is model
    with pytest.raises(ValidationError) as info:
        Snapshot(1, frozen({"svc": {"name": "a", "pool": {"size": SECRET}}})).as_model(
            PydApp, "svc"
        )
    assert info.value.key_path == "svc.pool.size"
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    with pytest.raises(ValidationError, match=r"at svc\.extra"):
        Snapshot(
            1, frozen({"svc": {"name": "a", "pool": {"size": 1}, "extra": 1}})
        ).as_model(PydApp, "svc")


def test_model_validator_rejects_before_publishing():
    validators = [("model", model_validator(import_model("tests.apps.models:App")))]

    def load(content, fmt, source):
        document = load_document(content, fmt=fmt, source=source)
        return run_validators(document, validators, source=source)

    assert load(json.dumps(GOOD).encode(), "json", "c.json") == GOOD
    bad = b'db: {url: u, pool: {size: "' + SECRET.encode() + b'"}}\n'
    with pytest.raises(ValidationError) as info:
        load(bad, "yaml", "c.yaml")
    assert str(info.value).startswith("c.yaml: at db.pool.size: expected int, got str")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        "nocolon",
        "tests.apps.models:Nope",
        "no_such_module_x:A",
        "tests.apps.models:dataclass",
    ],
)
def test_import_model_errors(spec):
    with pytest.raises(ConfigError) as info:
        import_model(spec)
    assert info.value.source == "HOTCFG_MODEL"


def test_cli_validate_with_a_model(tmp_path, capsys):
    from hotcfg.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(f"db: {{url: u, pool: {{size: {SECRET}}}}}\n")
    assert main(["validate", str(path), "--model", "tests.apps.models:App"]) == 1
    err = capsys.readouterr().err
    assert "at db.pool.size: expected int, got str" in err
    assert SECRET not in err
    path.write_text("db: {url: u, pool: {size: 3}}\n")
    assert main(["validate", str(path), "--model", "tests.apps.models:App"]) == 0
