"""An ASGI app for servers that spawn workers without hooks (uvicorn,
Hypercorn): at import, each worker joins hotcfg's peers and records every
generation it applies in ``$PEERS_OUT/gen-<pid>`` (from its ``on_change``
callback, so idle workers show what they applied too; what it started on
goes to ``init-<pid>``), then says it is ready in ``$PEERS_OUT/ready-<pid>``."""

import json
import os

import hotcfg

OUT = os.environ["PEERS_OUT"]


def _record(kind, generation, value):
    with open(os.path.join(OUT, f"{kind}-{os.getpid()}"), "a") as f:
        f.write(f"{generation} {value}\n")


@hotcfg.on_change()
def _changed(old, new):
    # In the order applied (callbacks run one switch at a time).
    _record("gen", new.generation, new["value"])


# Apart: the applier may switch (and call back) before this line is written.
_now = hotcfg.snapshot()
_record("init", _now.generation, _now["value"])
open(os.path.join(OUT, f"ready-{os.getpid()}"), "w").close()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    snap = hotcfg.snapshot()
    body = json.dumps(
        {"pid": os.getpid(), "generation": snap.generation, "value": snap["value"]}
    ).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
