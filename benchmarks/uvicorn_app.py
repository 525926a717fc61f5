"""The ASGI app benchmarks/servers.py runs under ``uvicorn --workers``.

At startup (the lifespan event) each worker registers an ``on_change``
callback and reads hotcfg once, so its reader (and, standalone, its own
publisher) starts before any change. The callback appends
``applied <pid> <value> <CLOCK_MONOTONIC ns>`` to ``SERVERS_LOG`` with one
``write`` on an ``O_APPEND`` descriptor, so lines from four processes never
interleave and their times are on the benchmark's own clock.

Every parse of a config document in the process (hotcfg's loader, wrapped
here) appends ``parse <pid> <ns>``: the benchmark counts parses per change
from the lines, whichever process parses. GET / answers pid and value.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import hotcfg
from hotcfg._content import loaders
from hotcfg.integrations.asgi import HotcfgMiddleware

_LOG = os.open(os.environ["SERVERS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
_parse = loaders.parse


def _counted_parse(content: bytes, *, fmt: str, source: str) -> Any:
    os.write(_LOG, f"parse {os.getpid()} {time.monotonic_ns()}\n".encode())
    return _parse(content, fmt=fmt, source=source)


loaders.parse = _counted_parse  # hotcfg's sources call loaders.parse(...)


def _applied(old: Any, new: Any) -> None:
    line = f"applied {os.getpid()} {new.get('value')} {time.monotonic_ns()}\n"
    os.write(_LOG, line.encode())


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            hotcfg.on_change()(_applied)
            hotcfg.generation()  # start hotcfg now, not at the first request
            os.write(_LOG, f"ready {os.getpid()} 0 {time.monotonic_ns()}\n".encode())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = json.dumps({"pid": os.getpid(), "value": hotcfg.get("value")}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = HotcfgMiddleware(_app)
