"""Flask extension: one snapshot per request, in views and templates.

::

    from hotcfg.integrations.flask import Hotcfg, current_config

    app = Flask(__name__)
    app.config["HOTCFG_SOURCE"] = "config.yaml"   # any HOTCFG_* setting
    Hotcfg(app)                                   # or Hotcfg().init_app(app)

In a view, ``current_config.get("feature.banner")`` (also ``g.hotcfg``); in
a template, ``{{ hotcfg.get("feature.banner") }}``. Under Gunicorn with
hotcfg's hooks the ``pre_request`` hook has pinned the snapshot already and
the extension only exposes it; under ``flask run`` it pins and unpins
itself, and the first request starts the in-process publisher and watcher.

Under Gunicorn the master starts hotcfg before any worker imports the app,
from its environment or ``gunicorn.conf.py``: ``app.config`` is read there
only when the master loads the app itself (``--preload``); otherwise it
must agree with the master's settings, and a worker refuses to boot when it
does not, printing both values.

``Hotcfg`` is spelled as in ``HotcfgMiddleware`` and ``HotcfgConfig``; the
old name ``HotCfg`` remains as an alias of the same class.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from werkzeug.local import LocalProxy

from hotcfg import _api, _runtime
from hotcfg._segment.snapshot import Snapshot

_SCOPE = "_hotcfg_scope"

#: The snapshot of the current request (outside one, the latest).
current_config: Snapshot = LocalProxy(_api.current)  # type: ignore[assignment]


class Hotcfg:
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
            _runtime.configure_from(options)
        app.extensions["hotcfg"] = self
        app.before_request(_pin)
        app.teardown_request(_unpin)
        app.context_processor(_template_context)


def _pin() -> None:
    scope = _api.RequestScope()
    setattr(g, _SCOPE, scope)
    g.hotcfg = scope.snapshot


def _unpin(exc: BaseException | None) -> None:
    scope: _api.RequestScope | None = g.pop(_SCOPE, None)
    if scope is not None:
        scope.close()


def _template_context() -> dict[str, Any]:
    return {"hotcfg": _api.current()}


#: The old name of :class:`Hotcfg`, kept for existing code: the same class.
HotCfg = Hotcfg
