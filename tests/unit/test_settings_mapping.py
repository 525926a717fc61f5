"""Settings from a framework's configuration mapping."""

from pathlib import Path

import pytest

from hotcfg import ConfigError
from hotcfg._settings import Settings


def test_mapping_values_are_parsed_like_the_environment_and_win():
    env = {"HOTCFG_SOURCE": "/env.yaml", "HOTCFG_NAME": "from-env"}
    settings = Settings.from_mapping(
        {
            "HOTCFG_SOURCE": Path("/app.yaml"),
            "HOTCFG_DEBOUNCE_MS": 50,
            "HOTCFG_START_EMPTY": True,
            "HOTCFG_SIGNAL": "none",
            "HOTCFG_FORMAT": None,
        },
        environ=env,
    )
    assert settings.source == "/app.yaml"
    assert settings.debounce_ms == 50.0
    assert settings.start_empty is True
    assert settings.hint_signal is None
    assert settings.name == "from-env"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"HOTCFG_SORCE": "x.yaml"}, "HOTCFG_SORCE: unknown hotcfg setting"),
        ({"HOTCFG_DEBOUNCE_MS": -1}, "HOTCFG_DEBOUNCE_MS: invalid value"),
        ({"HOTCFG_START_EMPTY": "maybe"}, "HOTCFG_START_EMPTY: invalid value"),
    ],
)
def test_bad_mapping_names_the_setting(values, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_mapping(values, environ={})


def test_differences_compare_sources_as_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = Settings.from_mapping({"HOTCFG_SOURCE": "c.yaml"}, environ={})
    absolute = Settings.from_mapping(
        {"HOTCFG_SOURCE": str(tmp_path / "c.yaml"), "HOTCFG_NAME": "x"}, environ={}
    )
    assert relative.differences(absolute, ["HOTCFG_SOURCE"]) == []
    assert relative.differences(absolute, ["HOTCFG_SOURCE", "HOTCFG_NAME"]) == [
        "HOTCFG_NAME"
    ]
