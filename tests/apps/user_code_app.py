"""A WSGI app whose change callback misbehaves: for ``value: exit`` it calls
``sys.exit()``, as a careless hook might. The worker must go on serving."""

import json
import os
import sys

import hotcfg

calls = []


@hotcfg.on_change("value")
def exits_on_request(old, new):
    calls.append(new)
    if new == "exit":
        sys.exit(5)


def app(environ, start_response):
    body = {"pid": os.getpid(), "value": hotcfg.get("value"), "calls": calls}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
