"""An app that changes directory when it is imported (some do, to find
their templates): with ``--preload`` that happens in the master, before
hotcfg starts."""

import os

from tests.apps.probe_app import app

os.chdir("/")

__all__ = ["app"]
