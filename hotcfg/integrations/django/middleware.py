"""``HotcfgMiddleware``: pins one snapshot per request as ``request.hotcfg``.

Sync and async capable, as Django's middleware docs describe: under ASGI
the pin is a context variable of the request's task, so concurrent requests
never share one. Under Gunicorn with hotcfg's hooks the ``pre_request``
hook has pinned already, and this only exposes that snapshot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from hotcfg import _api


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
        with _api.RequestScope() as snapshot:
            request.hotcfg = snapshot
            return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        with _api.RequestScope() as snapshot:
            request.hotcfg = snapshot
            response: Awaitable[Any] = self.get_response(request)
            return await response
