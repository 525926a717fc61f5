"""The Flask extension with Flask's test client: a real app, a real file
change, the real publisher and watcher in the test's process."""

import pytest

import hotcfg
from hotcfg import _api

pytest.importorskip("flask")

from flask import Flask, g, render_template_string

# The module, not its current_config: pytest's collector would look into
# that proxy, and so start hotcfg outside any test.
from hotcfg.integrations import flask as hotcfg_flask
from hotcfg.integrations.flask import Hotcfg


def test_extension_pins_per_request_and_follows_the_file(
    tmp_path, monkeypatch, fresh_hotcfg
):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    # The environment names a file that does not exist: app.config must win.
    monkeypatch.setenv("HOTCFG_SOURCE", str(tmp_path / "absent.yaml"))
    current_config = hotcfg_flask.current_config
    app = Flask("probe")
    app.config["HOTCFG_SOURCE"] = str(config)
    app.config["HOTCFG_DEBOUNCE_MS"] = 10  # not a string: parsed as env is
    ext = Hotcfg()
    ext.init_app(app)

    @app.get("/")
    def index():
        return {"value": current_config.get("value"), "g": g.hotcfg.get("value"),
                "pinned": _api.pinned() is g.hotcfg}  # fmt: skip

    @app.get("/twice")
    def twice():
        first = current_config.get("value")
        fresh_hotcfg.save(config, "value: during\n")
        fresh_hotcfg.wait_for("value", "during")  # the reader moved on, not the pin
        page = render_template_string("{{ hotcfg.get('value') }}")
        return {"first": first, "second": current_config.get("value"), "page": page}

    @app.get("/page")
    def page():
        return render_template_string("{{ hotcfg.get('value') }}")

    client = app.test_client()
    assert app.extensions["hotcfg"] is ext
    assert client.get("/").json == {"value": "one", "g": "one", "pinned": True}
    assert _api.pinned() is None
    assert client.get("/twice").json == {"first": "one", "second": "one", "page": "one"}
    assert client.get("/").json == {"value": "during", "g": "during", "pinned": True}
    fresh_hotcfg.save(config, "value: three\n")
    fresh_hotcfg.wait_for("value", "three")
    assert client.get("/page").get_data(as_text=True) == "three"
    token = _api.pin()  # as Gunicorn's pre_request hook does
    fresh_hotcfg.save(config, "value: four\n")
    fresh_hotcfg.wait_for("value", "four")
    assert client.get("/").json == {"value": "three", "g": "three", "pinned": True}
    assert _api.pinned() is not None  # the hook's pin is left to the hook
    _api.unpin(token)
    assert _api.pinned() is None


def test_settings_that_contradict_running_hotcfg_are_refused(
    tmp_path, monkeypatch, fresh_hotcfg
):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    assert hotcfg.get("value") == "one"  # hotcfg runs from the environment
    same, other = Flask("same"), Flask("other")
    same.config["HOTCFG_SOURCE"] = str(config)
    Hotcfg(same)  # agrees: accepted
    other.config["HOTCFG_SOURCE"] = f"{config}.other.yaml"
    with pytest.raises(hotcfg.ConfigError) as refused:
        Hotcfg(other)
    message = str(refused.value)
    assert message.startswith("HOTCFG_SOURCE: differs from the value hotcfg already")
    assert "only with --preload" in message
    assert f"given '{config}.other.yaml', running with '{config}'" in message


def test_a_refused_url_shows_redacted(tmp_path, monkeypatch, fresh_hotcfg):
    """Both values are printed, a URL's token as the rest of hotcfg shows it."""
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    assert hotcfg.get("value") == "one"
    app = Flask("remote")
    app.config["HOTCFG_SOURCE"] = "https://config.invalid/c.yaml?token=s3cret"
    with pytest.raises(hotcfg.ConfigError) as refused:
        Hotcfg(app)
    message = str(refused.value)
    assert "s3cret" not in message
    assert "given 'https://config.invalid/c.yaml?token=***'" in message
    assert f"running with '{config}'" in message


def test_old_name_is_the_same_class():
    """``HotCfg``, the name before ``Hotcfg``, keeps working, without a warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from hotcfg.integrations.flask import HotCfg

    assert HotCfg is Hotcfg
