"""Master side: reaching an origin through a proxy's CONNECT tunnel.

An https URL goes through a tunnel (``CONNECT host:port``, then TLS with
the origin, verified against the origin's name, so the proxy sees neither
the token nor the body); the CONNECT exchange shares the fetch's deadline
(``attempt``). A proxy that cannot be reached or refuses (407, 502, ...)
makes the fetch fail as temporary, as a server that cannot be reached
does: the reason names the proxy, its credentials hidden. Which proxy, and
the bytes of the exchange, are ``proxies``, pure; the socket work is here,
apart from ``fetch``, which asks plain-http URLs of a proxy in absolute
form and names the proxy in the reasons with :class:`AtProxy` and
:func:`proxy_refusal`.

Imports ``attempt``, ``failures`` and ``proxies``; never a source,
``_master`` or ``_worker``.
"""

from __future__ import annotations

import socket

from ..._version import __version__
from .attempt import Attempt
from .failures import FetchFailed
from .proxies import (
    CONNECT_HEAD_MAX_BYTES,
    Proxy,
    authority,
    connect_request,
    connect_status,
)


class AtProxy(Exception):
    """A transport error while connecting to a proxy or asking it for a
    tunnel (``error``); ``fetch.Fetcher`` names the proxy in the reason."""

    def __init__(self, error: Exception, proxy: Proxy) -> None:
        super().__init__(str(error))
        self.error = error
        self.proxy = proxy


def proxy_refusal(proxy: Proxy, status: int, phrase: str) -> str:
    """Why a proxy's refusal failed the fetch, with what 407 means here
    (and 401, which some proxies answer to wrong credentials: tinyproxy)."""
    reason = f"proxy {proxy.shown}: HTTP {status} {phrase}".rstrip()
    if status in (401, 407):
        reason += (
            " (the proxy refused the credentials in its URL)"
            if proxy.authorization is not None
            else " (the proxy asks for credentials: http://user:password@host:port)"
        )
    return reason


def tunnel(
    sock: socket.socket, host: str, port: int, proxy: Proxy, attempt: Attempt
) -> None:
    """Ask ``proxy`` (connected on ``sock``) for a tunnel to ``host:port``,
    within the attempt's deadline.

    Raises:
        FetchFailed: the proxy refused (temporary, naming it).
    """
    sock.settimeout(attempt.left())
    sock.sendall(connect_request(host, port, proxy, f"hotcfg/{__version__}"))
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > CONNECT_HEAD_MAX_BYTES:
            raise FetchFailed(
                f"proxy {proxy.shown}: its answer to CONNECT is over "
                f"{CONNECT_HEAD_MAX_BYTES} bytes",
                temporary=True,
            )
        sock.settimeout(attempt.left())
        # The origin speaks only after the ClientHello: nothing but the
        # proxy's answer can arrive before it is sent.
        part = sock.recv(4096)
        if not part:
            raise FetchFailed(
                f"proxy {proxy.shown}: closed the connection before answering CONNECT",
                temporary=True,
            )
        head += part
    try:
        status, phrase = connect_status(head)
    except ValueError as exc:
        raise FetchFailed(f"proxy {proxy.shown}: {exc}", temporary=True) from None
    if status != 200:
        reason = proxy_refusal(proxy, status, phrase)
        if status not in (401, 407):
            reason += f" to CONNECT {authority(host, port)}"
        raise FetchFailed(reason, temporary=True)
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise FetchFailed(
            f"proxy {proxy.shown}: bytes after its answer to CONNECT", temporary=True
        )
