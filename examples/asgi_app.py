"""A plain ASGI app (no framework) whose configuration changes live.

    HOTCFG_SOURCE=examples/config.yaml gunicorn -k asgi -c gunicorn_conf.py \\
        --pythonpath examples asgi_app:app
    curl -s 127.0.0.1:8000/

then edit examples/config.yaml and curl again. The same middleware wraps a
Starlette or FastAPI app: ``app.add_middleware(HotcfgMiddleware)``.
"""

import json
import os

import hotcfg
from hotcfg.integrations.asgi import HotcfgMiddleware


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    snap = scope["hotcfg"]  # the request's pinned snapshot; hotcfg.get() agrees
    body = json.dumps(
        {
            "pid": os.getpid(),
            "generation": snap.generation,
            "greeting": snap.get("greeting", "hello"),
            "new_checkout": hotcfg.get("features.new_checkout", False),
        }
    ).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = HotcfgMiddleware(_app)
