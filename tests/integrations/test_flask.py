"""The Flask extension with Flask's test client: a real app, a real file
change, the real publisher and watcher in the test's child process."""

import json
import textwrap

import pytest

from tests.process import run_script

from . import HELPERS

pytest.importorskip("flask")

SCRIPT = HELPERS + textwrap.dedent(
    """
    import json, sys
    from flask import Flask, g, render_template_string
    from hotcfg import _api
    from hotcfg.integrations.flask import HotCfg, current_config

    path = sys.argv[1]
    app = Flask("probe")
    app.config["HOTCFG_SOURCE"] = path       # wins over the environment's
    app.config["HOTCFG_DEBOUNCE_MS"] = 10    # not a string: parsed as env is
    ext = HotCfg()
    ext.init_app(app)

    @app.get("/")
    def index():
        return {"value": current_config.get("value"), "g": g.hotcfg.get("value"),
                "pinned": _api.pinned() is g.hotcfg}

    @app.get("/twice")
    def twice():
        first = current_config.get("value")
        write(path, "value: during\\n")
        wait_for("value", "during")  # the reader moved on, not the pin
        return {"first": first, "second": current_config.get("value"),
                "page": render_template_string("{{ hotcfg.get('value') }}")}

    @app.get("/page")
    def page():
        return render_template_string("{{ hotcfg.get('value') }}")

    client = app.test_client()
    out = {"registered": app.extensions["hotcfg"] is ext}
    out["first"] = client.get("/").json
    out["leaked"] = _api.pinned() is not None
    out["twice"] = client.get("/twice").json
    out["after"] = client.get("/").json
    write(path, "value: three\\n")
    wait_for("value", "three")
    out["page"] = client.get("/page").get_data(as_text=True)
    token = _api.pin()                  # as Gunicorn's pre_request hook does
    write(path, "value: four\\n")
    wait_for("value", "four")
    out["hooked"] = client.get("/").json
    out["hook_pin_kept"] = _api.pinned() is not None
    _api.unpin(token)
    out["leaked"] = out["leaked"] or _api.pinned() is not None
    print(json.dumps(out))
    """
)


def test_extension_pins_per_request_and_follows_the_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    # The environment names a file that does not exist: app.config must win.
    out = json.loads(run_script(SCRIPT, tmp_path / "absent.yaml", config))
    assert out == {
        "registered": True,
        "first": {"value": "one", "g": "one", "pinned": True},
        "leaked": False,
        "twice": {"first": "one", "second": "one", "page": "one"},
        "after": {"value": "during", "g": "during", "pinned": True},
        "page": "three",
        "hooked": {"value": "three", "g": "three", "pinned": True},
        "hook_pin_kept": True,
    }


CONFLICT = textwrap.dedent(
    """
    import sys
    from flask import Flask
    import hotcfg
    from hotcfg.integrations.flask import HotCfg

    assert hotcfg.get("value") == "one"      # hotcfg runs from the environment
    same, other = Flask("same"), Flask("other")
    same.config["HOTCFG_SOURCE"] = sys.argv[1]
    HotCfg(same)                             # agrees: accepted
    other.config["HOTCFG_SOURCE"] = sys.argv[1] + ".other.yaml"
    try:
        HotCfg(other)
    except hotcfg.ConfigError as exc:
        print(exc)
    """
)


def test_settings_that_contradict_running_hotcfg_are_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    out = run_script(CONFLICT, config, config)
    assert out.startswith("HOTCFG_SOURCE: differs from the value hotcfg already")
