"""An app whose ``on_change`` callback leaves a trace per worker, for the
applier's end-to-end tests; WSGI (``app``) and ASGI (``asgi_app``).

With ``APPLIER_MARKERS=DIR`` the callback on ``value`` writes
``DIR/<pid>-<new value>`` holding the name of the thread that ran it.

GET /                     {"pid", "generation", "value"}
GET /gate?gate=PATH&id=N  reads ``value`` and the generation, creates
                          PATH.N.read, waits (cooperatively under gevent)
                          until PATH exists, reads both again
"""

import json
import os
import threading
import time
from urllib.parse import parse_qs

import hotcfg

_markers = os.environ.get("APPLIER_MARKERS")


@hotcfg.on_change("value")
def _leave_a_trace(old, new):
    if _markers:
        path = os.path.join(_markers, f"{os.getpid()}-{new}")
        with open(path, "w") as f:
            f.write(threading.current_thread().name)


def _answer(path, query):
    body = {"pid": os.getpid()}
    if path == "/gate":
        first, first_generation = hotcfg.get("value"), hotcfg.generation()
        gate = query["gate"][0]
        open(f"{gate}.{query['id'][0]}.read", "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        body.update(
            first=first,
            first_generation=first_generation,
            second=hotcfg.get("value"),
            second_generation=hotcfg.generation(),
        )
    else:
        body.update(generation=hotcfg.generation(), value=hotcfg.get("value"))
    return json.dumps(body).encode()


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    data = _answer(environ.get("PATH_INFO"), query)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = parse_qs(scope.get("query_string", b"").decode())
    data = _answer(scope["path"], query)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})
