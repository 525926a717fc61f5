"""The smallest WSGI app: what is left to measure is the server and its hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b"hello\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
