"""HOTCFG_WATCH, HOTCFG_POLL_INTERVAL_MS and HOTCFG_WORKER_NICE: understood,
or refused by name."""

import pytest

from hotcfg._errors import ConfigError
from hotcfg._settings import Settings


def test_defaults_watch_with_events_and_a_one_second_stat():
    settings = Settings.resolve({})
    assert settings.watch == "auto"
    assert settings.poll_interval_ms == 1000.0


def test_environment_sets_the_mode_and_interval():
    env = {"HOTCFG_WATCH": " Poll ", "HOTCFG_POLL_INTERVAL_MS": "250"}
    settings = Settings.resolve(env)
    assert settings.watch == "poll"
    assert settings.poll_interval_ms == 250.0
    assert Settings.resolve(env, watch="events").watch == "events"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HOTCFG_WATCH", "inotify"),
        ("HOTCFG_POLL_INTERVAL_MS", "0"),
        ("HOTCFG_POLL_INTERVAL_MS", "-5"),
        ("HOTCFG_POLL_INTERVAL_MS", "soon"),
        ("HOTCFG_POLL_INTERVAL_MS", "nan"),
        ("HOTCFG_WORKER_NICE", "20"),
        ("HOTCFG_WORKER_NICE", "-21"),
        ("HOTCFG_WORKER_NICE", "low"),
        ("HOTCFG_WORKER_NICE", "1.5"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.resolve({var: value})


def test_worker_nice_is_left_alone_unless_set():
    assert Settings.resolve({}).worker_nice is None
    assert Settings.resolve({"HOTCFG_WORKER_NICE": ""}).worker_nice is None
    assert Settings.resolve({"HOTCFG_WORKER_NICE": " 5 "}).worker_nice == 5
    assert Settings.resolve({"HOTCFG_WORKER_NICE": "-20"}).worker_nice == -20
