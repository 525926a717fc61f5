"""Flask extension: one snapshot per request, in views and templates.

::

    from hotcfg.integrations.flask import HotCfg, current_config

    app = Flask(__name__)
    app.config["HOTCFG_SOURCE"] = "config.yaml"   # any HOTCFG_* setting
    HotCfg(app)                                   # or HotCfg().init_app(app)

In a view, ``current_config.get("feature.banner")`` (also ``g.hotcfg``); in
a template, ``{{ hotcfg.get("feature.banner") }}``. Under Gunicorn with
hotcfg's hooks the ``pre_request`` hook has pinned the snapshot already and
the extension only exposes it; under ``flask run`` it pins and unpins
itself, and the first request starts the in-process publisher and watcher.
"""

from __future__ import annotations

import contextvars
from typing import Any

from flask import Flask, g
from werkzeug.local import LocalProxy

from hotcfg import _api
from hotcfg._snapshot import Snapshot

_TOKEN = "_hotcfg_token"

#: The snapshot of the current request (outside one, the latest).
current_config: Snapshot = LocalProxy(_api.current)  # type: ignore[assignment]


class HotCfg:
    """Pins one hotcfg snapshot per request of the apps it is initialised on.

    Settings come from the app's ``HOTCFG_*`` config keys (same names and
    meaning as the environment variables, and winning over them).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the request hooks and the template variable ``hotcfg``.

        Raises:
            ConfigError: a ``HOTCFG_*`` key is unknown or has a bad value, or
                contradicts the settings of an already running hotcfg.
        """
        options = {k: v for k, v in app.config.items() if k.startswith("HOTCFG_")}
        if options:
            _api.configure_from(options)
        app.extensions["hotcfg"] = self
        app.before_request(_pin)
        app.teardown_request(_unpin)
        app.context_processor(_template_context)


def _pin() -> None:
    token = _api.pin_once()
    if token is not None:
        setattr(g, _TOKEN, token)
    g.hotcfg = _api.current()


def _unpin(exc: BaseException | None) -> None:
    token: contextvars.Token[Snapshot | None] | None = g.pop(_TOKEN, None)
    if token is not None:
        _api.unpin(token)


def _template_context() -> dict[str, Any]:
    return {"hotcfg": _api.current()}
