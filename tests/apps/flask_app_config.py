"""A Flask app that names its source in ``app.config`` only (from
``APP_CONFIG_FILE``), not in the environment Gunicorn's master reads."""

import os

from flask import Flask

import hotcfg
from hotcfg.integrations.flask import Hotcfg

app = Flask(__name__)
app.config["HOTCFG_SOURCE"] = os.environ["APP_CONFIG_FILE"]
Hotcfg(app)


@app.get("/")
def index():
    return {"pid": os.getpid(), "value": hotcfg.get("value")}
