"""The ASGI middleware called as a server calls it, on a real event loop,
with the real publisher and watcher in the test's child process."""

import json
import textwrap

from tests.process import run_script

from . import HELPERS

SCRIPT = HELPERS + textwrap.dedent(
    """
    import asyncio, json, sys
    import hotcfg
    from hotcfg.integrations.asgi import HotcfgMiddleware

    path = sys.argv[1]
    seen = {}
    switched = asyncio.Event()

    async def app(scope, receive, send):
        name = scope.get("path", scope["type"])
        if scope["type"] == "lifespan":
            seen[name] = ("hotcfg" in scope, _api.pinned() is not None)
            return
        first = hotcfg.get("value")
        if name == "/slow":             # holds its pin across a publish
            write(path, "value: two\\n")
            while _api.reader().refresh().get("value") != "two":
                await asyncio.sleep(0.01)
            switched.set()
            await asyncio.sleep(0.05)   # let /fast run meanwhile
        elif name == "/fast":
            await switched.wait()
        seen[name] = (first, hotcfg.get("value"), scope["hotcfg"].get("value"))

    wrapped = HotcfgMiddleware(app)

    async def call(scope):
        async def receive():
            return {"type": "http.disconnect"}
        async def send(message):
            pass
        await wrapped(scope, receive, send)

    async def main():
        await call({"type": "lifespan"})
        slow = asyncio.create_task(call({"type": "http", "path": "/slow"}))
        await switched.wait()
        await call({"type": "http", "path": "/fast"})
        await slow
        await call({"type": "websocket", "path": "/ws"})
        seen["leaked"] = _api.pinned() is not None
        token = _api.pin()              # as Gunicorn's pre_request hook does
        write(path, "value: three\\n")
        wait_for("value", "three")
        await call({"type": "http", "path": "/hooked"})
        seen["hook_pin_kept"] = _api.pinned() is not None
        _api.unpin(token)

    asyncio.run(main())
    print(json.dumps(seen))
    """
)


def test_pins_per_request_task_and_passes_lifespan_through(tmp_path):
    """Also: under a server hook's pin (Gunicorn's pre_request) the middleware
    exposes that snapshot, not a newer one, and leaves the pin to the hook."""
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    out = json.loads(run_script(SCRIPT, config, config, HOTCFG_DEBOUNCE_MS="10"))
    assert out == {
        "lifespan": [False, False],
        "/slow": ["one", "one", "one"],
        "/fast": ["two", "two", "two"],
        "/ws": ["two", "two", "two"],
        "leaked": False,
        "/hooked": ["two", "two", "two"],
        "hook_pin_kept": True,
    }
