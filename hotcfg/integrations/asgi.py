"""ASGI middleware: one snapshot per HTTP request or WebSocket connection.

::

    from hotcfg.integrations.asgi import HotcfgMiddleware
    app = HotcfgMiddleware(app)           # Starlette: Middleware(HotcfgMiddleware)

The pin is a context variable set in the task that runs the request, so
concurrent requests on one event loop each keep their own, and tasks the
app spawns inherit it. The snapshot is also in ``scope["hotcfg"]``
(Starlette: ``request.scope["hotcfg"]``). A WebSocket keeps the snapshot
of its connect for its whole life; read ``hotcfg.get()`` in a new
request to see later changes.

Lifespan events pass through; at ``lifespan.startup`` the process joins
hotcfg before its first request: under ``uvicorn --workers N`` (or
Hypercorn's) each worker then takes its place in the service's worker
table at start, so ``hotcfg status`` lists every worker and an idle one
applies a change as soon as it is published, not only after its first
request. Without a configured source it waits for the first read, as
before; a source that is bad at start fails the startup, as it would the
first request.

Under Gunicorn's ``asgi`` worker with hotcfg's hooks, ``pre_request`` has
pinned each HTTP request already; the middleware then only exposes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hotcfg import _api, _runtime
from hotcfg._errors import NotConfiguredError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HotcfgMiddleware:
    """Wrap any ASGI 3 app: ``app = HotcfgMiddleware(app)``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, _joining_at_startup(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with _api.RequestScope() as snapshot:
            await self.app({**scope, "hotcfg": snapshot}, receive, send)


def _joining_at_startup(receive: Receive) -> Receive:
    """``receive``, joining hotcfg when the server says the app starts.

    In the event loop's thread, as a first request's read would be: that
    is where the hint's handler can be installed (the main thread).
    """

    async def receive_and_join() -> MutableMapping[str, Any]:
        message = await receive()
        if message.get("type") == "lifespan.startup":
            with contextlib.suppress(NotConfiguredError):
                _runtime.reader()
        return message

    return receive_and_join
