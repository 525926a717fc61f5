"""The ASGI middleware called as a server calls it, on a real event loop,
with the real publisher and watcher in the test's process."""

import asyncio

import hotcfg
from hotcfg import _api
from hotcfg.integrations.asgi import HotcfgMiddleware


def test_pins_per_request_task_and_passes_lifespan_through(
    tmp_path, monkeypatch, fresh_hotcfg
):
    """Also: under a server hook's pin (Gunicorn's pre_request) the middleware
    exposes that snapshot, not a newer one, and leaves the pin to the hook."""
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    monkeypatch.setenv("HOTCFG_DEBOUNCE_MS", "10")
    seen = {}
    switched = asyncio.Event()  # bound to no loop until used (Python >= 3.10)

    async def app(scope, receive, send):
        name = scope.get("path", scope["type"])
        if scope["type"] == "lifespan":
            seen[name] = ("hotcfg" in scope, _api.pinned() is not None)
            return
        first = hotcfg.get("value")
        if name == "/slow":  # holds its pin across a publish
            fresh_hotcfg.save(config, "value: two\n")
            await fresh_hotcfg.wait_for_async("value", "two")
            switched.set()
            await asyncio.sleep(0.05)  # let /fast run meanwhile
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
        token = _api.pin()  # as Gunicorn's pre_request hook does
        fresh_hotcfg.save(config, "value: three\n")
        await fresh_hotcfg.wait_for_async("value", "three")
        await call({"type": "http", "path": "/hooked"})
        seen["hook_pin_kept"] = _api.pinned() is not None
        _api.unpin(token)

    asyncio.run(main())
    assert seen == {
        "lifespan": (False, False),
        "/slow": ("one", "one", "one"),
        "/fast": ("two", "two", "two"),
        "/ws": ("two", "two", "two"),
        "leaked": False,
        "/hooked": ("two", "two", "two"),
        "hook_pin_kept": True,
    }
