"""A Flask app whose configuration changes live under Gunicorn.

    make demo        # Gunicorn, 4 workers, 127.0.0.1:8000
    curl -s 127.0.0.1:8000/

then edit examples/config.yaml and curl again. The Gunicorn hooks pin one
snapshot per request, so every ``hotcfg.get()`` in a request agrees.
"""

import logging
import os

from flask import Flask, jsonify

import hotcfg

app = Flask(__name__)


@hotcfg.on_change("log.level")
def apply_log_level(old, new):
    # Runs in each worker, at the first request after the change.
    logging.getLogger().setLevel(new or "INFO")
    app.logger.info("log level %s -> %s", old, new)


@app.get("/")
def index():
    return jsonify(
        pid=os.getpid(),
        generation=hotcfg.generation(),
        greeting=hotcfg.get("greeting", "hello"),
        new_checkout=hotcfg.get("features.new_checkout", False),
        rate_limit_per_minute=hotcfg.get("rate_limit.per_minute", 60),
    )


@app.get("/config")
def config():
    return jsonify(hotcfg.snapshot().to_dict())
