"""Gunicorn configuration with hotcfg, usable as shipped.

    HOTCFG_SOURCE=config.yaml gunicorn -c gunicorn_conf.py app:app

hotcfg reads its own settings from ``HOTCFG_*`` variables (see the README).
Bind address and worker count come from ``GUNICORN_BIND`` and
``WEB_CONCURRENCY``; command-line options override both.
"""

import os

from hotcfg.integrations.gunicorn import install

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))

install(globals())
