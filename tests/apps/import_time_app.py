"""A WSGI app that reads its configuration at import time (the mistake
``_worker.import_time`` warns about) and in each request (the right way).

GET /    {"pid", "frozen": the value at import, "value": the value now}
"""

import json
import os

import hotcfg

FROZEN = hotcfg.get("value")  # tests look for this line's number: keep it 12


def app(environ, start_response):
    body = {"pid": os.getpid(), "frozen": FROZEN, "value": hotcfg.get("value")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
