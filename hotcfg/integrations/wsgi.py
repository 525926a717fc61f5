"""WSGI middleware: one snapshot per request, for servers other than Gunicorn.

Under Gunicorn with hotcfg's hooks the ``pre_request`` hook already pins the
snapshot; the middleware then only passes through, so a request never sees
two generations even with both in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hotcfg import _api

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Unpinning:
    """Wraps the response body so the pin lasts until the server closes it."""

    def __init__(self, body: Iterable[bytes], scope: _api.RequestScope) -> None:
        self._body = body
        self._scope = scope

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._scope.close()


class HotcfgMiddleware:
    """Wrap any WSGI app: ``app = HotcfgMiddleware(app)``."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if _api.pinned() is not None:  # Gunicorn's pre_request hook pinned it
            # The body goes back untouched (Gunicorn's sendfile needs its type).
            return self.app(environ, start_response)
        scope = _api.RequestScope()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            scope.close()
            raise
        return _Unpinning(body, scope)
