"""A plain WSGI app for the end-to-end tests: it answers what hotcfg gives it.

GET /            {"pid", "generation", "value"} for the key ``value``
GET /?key=a.b    the same, "value" being the value at ``a.b``
GET /twice?wait=PATH
                 reads ``value``, creates PATH.read, waits until PATH exists,
                 reads it again

With ``PROBE_IMPORT_GATE=PATH`` importing this module waits (at most 30 s)
until PATH exists: a worker that is slow to import its app.
"""

import json
import os
import time
from urllib.parse import parse_qs

import hotcfg

_gate = os.environ.get("PROBE_IMPORT_GATE")
if _gate:
    _deadline = time.monotonic() + 30
    while not os.path.exists(_gate) and time.monotonic() < _deadline:
        time.sleep(0.01)


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    body = {"pid": os.getpid()}
    if environ.get("PATH_INFO") == "/twice":
        first = hotcfg.get("value")
        first_generation = hotcfg.generation()
        marker = query["wait"][0]
        open(marker + ".read", "w").close()  # tell the test the first read is done
        deadline = time.monotonic() + 20
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        body.update(
            first=first,
            first_generation=first_generation,
            second=hotcfg.get("value"),
            second_generation=hotcfg.generation(),
        )
    else:
        key = query.get("key", ["value"])[0]
        body.update(generation=hotcfg.generation(), value=hotcfg.get(key))
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
