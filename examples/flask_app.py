"""A Flask app whose configuration changes live under Gunicorn.

    make demo        # Gunicorn, 4 workers, 127.0.0.1:8000
    curl -s 127.0.0.1:8000/
    curl -s 127.0.0.1:8000/page

then edit examples/config.yaml and curl again. Without Gunicorn,
``flask --app examples/flask_app.py run`` watches the same file in one
process. The ``Hotcfg`` extension pins one snapshot per request, so every
read in a request (view or template) sees one generation.
"""

import logging
import os
from pathlib import Path

from flask import Flask, jsonify, render_template_string

import hotcfg
from hotcfg.integrations.flask import Hotcfg, current_config

app = Flask(__name__)
# Any HOTCFG_* setting can live in app.config; under Gunicorn the master
# reads its environment or gunicorn.conf.py (app.config only with
# --preload), so both must name the same file.
app.config["HOTCFG_SOURCE"] = os.environ.get(
    "HOTCFG_SOURCE", str(Path(__file__).with_name("config.yaml"))
)
Hotcfg(app)

PAGE = """<!doctype html>
<title>{{ hotcfg.get("greeting", "hello") }}</title>
<h1 data-pid="{{ pid }}" data-generation="{{ hotcfg.generation }}">
  {{- hotcfg.get("greeting", "hello") -}}
</h1>
{% if hotcfg.get("features.new_checkout") %}<p>Try the new checkout!</p>{% endif %}
"""


@hotcfg.on_change("log.level")
def apply_log_level(old, new):
    # Runs in each worker, at the first request after the change.
    logging.getLogger().setLevel(new or "INFO")
    app.logger.info("log level %s -> %s", old, new)


@app.get("/")
def index():
    return jsonify(
        pid=os.getpid(),
        generation=current_config.generation,
        greeting=current_config.get("greeting", "hello"),
        new_checkout=current_config.get("features.new_checkout", False),
        rate_limit_per_minute=current_config.get("rate_limit.per_minute", 60),
    )


@app.get("/page")
def page():
    return render_template_string(PAGE, pid=os.getpid())


@app.get("/config")
def config():
    return jsonify(current_config.to_dict())
