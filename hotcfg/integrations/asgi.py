"""ASGI middleware: one snapshot per HTTP request or WebSocket connection.

::

    from hotcfg.integrations.asgi import HotcfgMiddleware
    app = HotcfgMiddleware(app)           # Starlette: Middleware(HotcfgMiddleware)

The pin is a context variable set in the task that runs the request, so
concurrent requests on one event loop each keep their own, and tasks the
app spawns inherit it. The snapshot is also in ``scope["hotcfg"]``
(Starlette: ``request.scope["hotcfg"]``). A WebSocket keeps the snapshot
of its connect for its whole life; read ``hotcfg.get()`` in a new
request to see later changes. Lifespan events pass through untouched.

Under Gunicorn's ``asgi`` worker with hotcfg's hooks, ``pre_request`` has
pinned each HTTP request already; the middleware then only exposes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hotcfg import _api

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HotcfgMiddleware:
    """Wrap any ASGI 3 app: ``app = HotcfgMiddleware(app)``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with _api.RequestScope() as snapshot:
            await self.app({**scope, "hotcfg": snapshot}, receive, send)
