"""The probe app plus ``GET /hint``: does hotcfg's hint handler run in this worker?

``/hint`` clears the reader's stale flag, signals its own process with the
hint signal, yields (a gevent-friendly sleep once monkey-patched) and answers
whether the handler set the flag again, and which handler is installed.
"""

import json
import os
import signal
import time

from hotcfg import _runtime

from .probe_app import app as probe


def app(environ, start_response):
    if environ.get("PATH_INFO") != "/hint":
        return probe(environ, start_response)
    reader = _runtime.reader()
    signum = _runtime.settings().hint_signal
    handler = signal.getsignal(signum)
    reader._stale = False
    os.kill(os.getpid(), signum)
    deadline = time.monotonic() + 10
    while not reader._stale and time.monotonic() < deadline:
        time.sleep(0.01)
    body = {
        "pid": os.getpid(),
        "stale": reader._stale,
        "handler": getattr(handler, "__qualname__", repr(handler)),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
