"""Snapshot values are immutable and serialize as they are, with no conversion.

Mappings decode to ``FrozenDict`` (a read-only ``dict``) and arrays to tuples,
so the serializers users reach for take ``hotcfg.get(...)`` directly.
"""

import copy
import json
import pickle

import msgpack
import pytest

from hotcfg._content.frozen import FrozenDict, thaw
from hotcfg._segment import payload
from hotcfg._worker.reader import same_value

DOC = {
    "features": {"beta": True, "limits": {"rps": 10, "burst": 2.5}},
    "hosts": ["a", "b", {"c": None}],
    "name": "svc",
}


@pytest.fixture
def features():
    snap = payload.decode_payload(payload.encode(DOC))
    return snap.get("features")


@pytest.fixture
def snap():
    return payload.decode_payload(payload.encode(DOC))


def test_values_are_frozen_dicts_and_tuples(snap):
    assert type(snap["features"]) is FrozenDict
    assert type(snap.get("features.limits")) is FrozenDict
    assert snap["hosts"] == ("a", "b", {"c": None})
    assert type(snap["hosts"][2]) is FrozenDict


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.__setitem__("beta", False),
        lambda d: d.__delitem__("beta"),
        lambda d: d.clear(),
        lambda d: d.pop("beta"),
        lambda d: d.pop("nope", None),
        lambda d: d.popitem(),
        lambda d: d.setdefault("new", 1),
        lambda d: d.update(new=1),
        lambda d: d.update({"new": 1}),
        lambda d: d.__ior__({"new": 1}),
    ],
    ids=[
        "setitem", "delitem", "clear", "pop", "pop-default", "popitem",
        "setdefault", "update-kw", "update", "ior",
    ],
)  # fmt: skip
def test_every_mutation_is_refused(features, mutate):
    before = dict(features)
    with pytest.raises(TypeError, match="read-only"):
        mutate(features)
    assert features == before


def test_augmented_or_is_refused(features):
    value = features
    with pytest.raises(TypeError, match="read-only"):
        value |= {"new": 1}
    assert "new" not in features


def test_copies_are_plain_mutable_dicts(features):
    for copied in (features.copy(), features | {"new": 1}, {"new": 1} | features):
        assert type(copied) is dict
        copied["x"] = 1  # a copy is the caller's own
    assert "x" not in features


def test_pickle_and_copy_keep_it_frozen(features):
    for clone in (
        pickle.loads(pickle.dumps(features)),
        copy.copy(features),
        copy.deepcopy(features),
    ):
        assert type(clone) is FrozenDict
        assert clone == features
        with pytest.raises(TypeError):
            clone["beta"] = False


def test_json_dumps(snap):
    assert json.loads(json.dumps(snap.get("features"))) == DOC["features"]
    assert json.loads(json.dumps(snap.get("hosts"))) == DOC["hosts"]


def test_msgpack_packb(snap):
    packed = msgpack.packb(snap.get("features"))
    assert msgpack.unpackb(packed) == DOC["features"]


def test_orjson_dumps(snap):
    orjson = pytest.importorskip(
        "orjson", reason="orjson is in the dev extra; not installed here"
    )
    assert orjson.loads(orjson.dumps(snap.get("features"))) == DOC["features"]
    assert orjson.loads(orjson.dumps(snap.get("hosts"))) == DOC["hosts"]


def test_flask_jsonify(snap):
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)
    with app.app_context():
        response = flask.jsonify(snap.get("features"))
    assert response.get_json() == DOC["features"]


def test_django_json_response(snap):
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.http import JsonResponse

    # safe=True (the default) takes only a dict: a FrozenDict is one.
    response = JsonResponse(snap.get("features"))
    assert json.loads(response.content) == DOC["features"]


def test_thaw_same_value_and_lazy_sections_still_work(snap, monkeypatch):
    assert thaw(snap["features"]) == DOC["features"]
    assert type(thaw(snap["features"])) is dict
    assert same_value(snap["features"], thaw(snap["features"]))
    assert not same_value(snap["features"], {**DOC["features"], "beta": False})
    monkeypatch.setattr(payload, "LAZY_MIN_BYTES", 0)
    monkeypatch.setattr(payload, "SECTION_MIN_BYTES", 0)
    lazy = payload.decode_payload(payload.encode(DOC), lazy=True)
    assert type(lazy["features"]) is FrozenDict
    assert json.loads(json.dumps(lazy.get("features.limits"))) == {
        "rps": 10,
        "burst": 2.5,
    }
