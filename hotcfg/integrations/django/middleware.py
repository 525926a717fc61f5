"""``HotcfgMiddleware``: pins one snapshot per request as ``request.hotcfg``.

Sync and async capable, as Django's middleware docs describe: under ASGI
the pin is a context variable of the request's task, so concurrent requests
never share one. Under Gunicorn with hotcfg's hooks the ``pre_request``
hook has pinned already, and this only exposes that snapshot.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from hotcfg import _api
from hotcfg._snapshot import Snapshot


class HotcfgMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        token = _pin(request)
        try:
            return self.get_response(request)
        finally:
            _unpin(token)

    async def _acall(self, request: Any) -> Any:
        token = _pin(request)
        try:
            response: Awaitable[Any] = self.get_response(request)
            return await response
        finally:
            _unpin(token)


def _pin(request: Any) -> contextvars.Token[Snapshot | None] | None:
    token = _api.pin_once()
    request.hotcfg = _api.current()
    return token


def _unpin(token: contextvars.Token[Snapshot | None] | None) -> None:
    if token is not None:
        _api.unpin(token)
