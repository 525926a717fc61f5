"""A Flask app whose own config names another file than the master's."""

from flask import Flask

from hotcfg.integrations.flask import Hotcfg

app = Flask(__name__)
app.config["HOTCFG_SOURCE"] = "/nonexistent/elsewhere.yaml"
Hotcfg(app)
