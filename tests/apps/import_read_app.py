"""The probe app, reading its config once at import too: with ``--preload``
that read happens in the Gunicorn master, before ``on_starting``."""

import hotcfg
from tests.apps.probe_app import app

VALUE_AT_IMPORT = hotcfg.get("value")

__all__ = ["app"]
