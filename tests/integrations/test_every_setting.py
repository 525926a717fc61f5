"""Every row of the settings table is accepted everywhere settings are:
``hotcfg.configure()``, Flask's ``app.config`` and Django's
``settings.HOTCFG``. The table is enumerated, so a new setting that one of
them drops fails here."""

import inspect
import signal
from dataclasses import fields

import pytest

import hotcfg
from hotcfg import _runtime
from hotcfg._settings import Settings, variable

#: For each setting: a value to give, and what the resolved Settings hold
#: then (never the default, so a dropped value cannot pass).
SAMPLES = {
    "source": ("/srv/app/config.json", "/srv/app/config.json"),
    "format": ("toml", "toml"),
    "debounce_ms": (25, 25.0),
    "hint_signal": ("SIGUSR1", signal.SIGUSR1),
    "validator": ("myapp.config:check", "myapp.config:check"),
    "schema": ("/srv/app/schema.json", "/srv/app/schema.json"),
    "model": ("myapp.config:Config", "myapp.config:Config"),
    "validator_warn_ms": (250, 250.0),
    "apply_warn_ms": ("2500", 2500.0),
    "max_bytes": (4096, 4096),
    "segment_dir": ("/run/myapp", "/run/myapp"),
    "name": ("myapp", "myapp"),
    "start_empty": (True, True),
    "watch": ("poll", "poll"),
    "poll_interval_ms": (250, 250.0),
    "worker_nice": (5, 5),
    "metrics": ("127.0.0.1:9109", "127.0.0.1:9109"),
    "applier": (False, False),
    "peers": ("off", "off"),
    "history": (3, 3),
    "etcd_timeout_ms": (750, 750.0),
    "etcd_progress_ms": (5000, 5000.0),
    "etcd_order": ("listed", "listed"),
    "etcd_user": ("myapp", "myapp"),
    "etcd_password_file": ("/run/secrets/etcd", "/run/secrets/etcd"),
    "etcd_ca_file": ("/etc/etcd/ca.pem", "/etc/etcd/ca.pem"),
    "etcd_cert_file": ("/etc/etcd/client.pem", "/etc/etcd/client.pem"),
    "etcd_key_file": ("/etc/etcd/client-key.pem", "/etc/etcd/client-key.pem"),
    "fleet": (False, False),
    "fleet_ttl_ms": (3000, 3000.0),
    "host": ("h1", "h1"),
    "http_timeout_ms": (1500, 1500.0),
    "http_token_file": ("/run/secrets/token", "/run/secrets/token"),
    "http_ca_file": ("/etc/ssl/internal-ca.pem", "/etc/ssl/internal-ca.pem"),
}
TABLE = [f.name for f in fields(Settings)]


def test_every_setting_has_a_sample_that_is_not_its_default():
    assert sorted(SAMPLES) == sorted(TABLE)
    for name, (_given, expected) in SAMPLES.items():
        assert getattr(Settings(), name) != expected, name


def test_configure_has_one_keyword_per_setting():
    """Typed keywords for callers, one per row: none missing, none extra."""
    parameters = inspect.signature(hotcfg.configure).parameters
    assert list(parameters) == TABLE


def configure(name, value, request):
    hotcfg.configure(**{name: value})


def flask(name, value, request):
    flask = pytest.importorskip("flask")
    from hotcfg.integrations.flask import Hotcfg

    app = flask.Flask("settings")
    app.config[variable(name)] = value
    Hotcfg(app)


def django(name, value, request):
    install = request.getfixturevalue("django_app")
    key = variable(name).removeprefix("HOTCFG_")  # settings.HOTCFG: unprefixed
    install(INSTALLED_APPS=["hotcfg.integrations.django"], HOTCFG={key: value})


@pytest.mark.parametrize("path", [configure, flask, django])
@pytest.mark.parametrize("name", TABLE)
def test_each_setting_reaches_the_resolved_settings(
    name, path, fresh_hotcfg, monkeypatch, request
):
    monkeypatch.delenv(variable(name), raising=False)
    given, expected = SAMPLES[name]
    path(name, given, request)
    assert getattr(_runtime.settings(), name) == expected
