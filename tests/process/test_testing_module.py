"""``hotcfg.testing``: a config for the code under test, changed and reset,
in this process and without Gunicorn."""

import json
import os

import pytest

import hotcfg
from hotcfg import _runtime
from hotcfg.testing import use_config


def test_set_change_and_reset(tmp_path):
    changes = []
    hotcfg.on_change("feature.banner")(lambda old, new: changes.append((old, new)))
    with use_config({"feature": {"banner": True}, "limit": 3}) as config:
        assert hotcfg.get("feature.banner") is True
        segment_dir = _runtime.settings().resolved_segment_dir
        assert config.set({"feature": {"banner": False}, "limit": 3}) == 2
        assert hotcfg.get("feature.banner") is False
        assert config.update("limit", 4) == 3
        assert (hotcfg.get("limit"), hotcfg.get("feature.banner")) == (4, False)
        assert os.listdir(segment_dir)
    assert changes == [(True, False)]
    assert not os.path.exists(segment_dir)
    assert _runtime._publisher is None
    assert _runtime._reader is None


def test_a_refused_config_raises_and_the_last_good_stays(tmp_path):
    with use_config({"value": 1}) as config:
        with pytest.raises(hotcfg.ParseError, match=r"config\.json:1"):
            config.set("{not json")
        assert hotcfg.get("value") == 1
        assert config.generation == 1


def test_validators_run_as_in_the_master():
    with use_config(
        {"value": "ok"}, validator="tests.apps.validators:no_forbidden"
    ) as config:
        with pytest.raises(hotcfg.ValidationError, match="may not be"):
            config.set({"value": "forbidden"})
        assert hotcfg.get("value") == "ok"


def test_a_file_is_copied_never_written(tmp_path):
    original = tmp_path / "app.yaml"
    original.write_text("value: from-file\n")
    with use_config(original) as config:
        assert hotcfg.get("value") == "from-file"
        config.set({"value": "changed"})
        assert hotcfg.get("value") == "changed"
    assert original.read_text() == "value: from-file\n"


def test_blocks_nest_and_give_back_the_outer_config():
    with use_config({"value": "outer"}):
        with use_config({"value": "inner"}):
            assert hotcfg.get("value") == "inner"
        assert hotcfg.get("value") == "outer"


def test_values_serialize_as_they_are():
    with use_config({"features": {"a": True, "list": [1, 2]}}):
        assert json.loads(json.dumps(hotcfg.get("features"))) == {
            "a": True,
            "list": [1, 2],
        }
