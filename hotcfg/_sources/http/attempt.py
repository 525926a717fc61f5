"""Master side: one fetch's deadline and the sockets it opens.

Each fetch is bounded as a whole: every connect, read and write of its
sockets gets the time left until one deadline (``HOTCFG_HTTP_TIMEOUT_MS``,
for connecting, TLS, every redirect, the headers and the body), so a server
trickling one byte at a time is cut at the deadline, not kept alive by
per-read timeouts (``http.client`` reads a header line or a buffer with as
many ``recv`` calls as it takes): :class:`BoundedSocket` is what
``http.client`` gets instead of the socket. Apart from ``fetch`` because
the proxy's tunnel (``tunnel``) uses the same deadline and sockets.

Fork story: no connection outlives one fetch (:class:`Attempt` closes its
sockets when the fetch ends). A worker forked during a fetch inherits the
socket's descriptor, which would keep the connection open after the master
closed it: the child closes its copies at once (``forksafe``). For that,
every descriptor is listed there from its creation to its close, also
across the TLS wrap (which moves it to a new socket object): creating and
listing, wrapping and listing the TLS socket, unlisting and closing are
each one step under ``forksafe.HANDOVER``, which fork() takes too. The
handshake itself runs after the wrap, outside the lock, on the listed TLS
socket: a fork may fall into it, and :meth:`Attempt.cancel` cuts it.

Name resolution is bounded by the system resolver's own timeouts only
(``getaddrinfo`` cannot be interrupted).

Imports ``forksafe`` of ``_sources`` and ``failures``; never a source,
``_master`` or ``_worker``.
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import threading
import time
from typing import Any

from .. import forksafe
from .failures import FetchCancelled


class Attempt:
    """One fetch's deadline and the sockets it opened.

    :meth:`cancel` may be called from another thread (stopping the poll);
    sockets are shut down and closed only under the attempt's lock, so a
    descriptor number reused after a close is never shut down by mistake.
    Sockets are created, wrapped and closed under ``forksafe.HANDOVER`` (taken
    first), so a fork never falls between a descriptor's change and its
    listing (the module docstring).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.cancelled = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []

    def left(self) -> float:
        """Seconds left for this fetch.

        Raises:
            TimeoutError: none left.
            FetchCancelled: cancelled.
        """
        if self.cancelled:
            raise FetchCancelled
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the fetch's deadline passed")
        return left

    def new_socket(self, family: int, kind: int, proto: int) -> socket.socket:
        """A new socket, closed with this attempt (and in a forked child).

        Raises:
            FetchCancelled: cancelled.
        """
        with forksafe.HANDOVER, self._lock:  # a fork never falls between
            if self.cancelled:
                raise FetchCancelled
            sock = socket.socket(family, kind, proto)
            self._socks.append(sock)
            forksafe.OPEN.add(sock)
        return sock

    def wrap(
        self, sock: socket.socket, context: ssl.SSLContext, host: str
    ) -> ssl.SSLSocket:
        """``sock`` (one of this attempt's) wrapped in TLS, not yet
        handshaken; the TLS socket takes its place in the lists.

        ``wrap_socket`` moves the descriptor to a new object: a fork must not
        fall between that and listing it, and the handshake must happen on a
        listed socket that :meth:`cancel` can shut down.

        Raises:
            FetchCancelled: cancelled.
        """
        with forksafe.HANDOVER, self._lock:
            if self.cancelled:
                raise FetchCancelled
            tls = context.wrap_socket(
                sock, server_hostname=host, do_handshake_on_connect=False
            )
            self._socks[self._socks.index(sock)] = tls
            forksafe.OPEN.discard(sock)
            forksafe.OPEN.add(tls)
        return tls

    def forget(self, sock: socket.socket) -> None:
        """Close one of this attempt's sockets now (a connect that failed)."""
        with forksafe.HANDOVER, self._lock:
            if sock in self._socks:
                self._socks.remove(sock)
                forksafe.close(sock)

    def cancel(self) -> None:
        """Cut the fetch: its blocked connect, handshake, read or write
        returns at once."""
        with self._lock:
            self.cancelled = True
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown, also under TLS: it wakes
                    # the fetch's thread without touching the TLS object
                    # that thread is using (SSLSocket.shutdown drops it).
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the sockets (idempotent); the fetch is over."""
        with forksafe.HANDOVER, self._lock:
            socks, self._socks = self._socks, []
            for sock in socks:
                forksafe.close(sock)


class _BoundedReader(io.RawIOBase):
    """A socket's reads, each bounded by the time left to the attempt."""

    def __init__(self, sock: socket.socket, attempt: Attempt) -> None:
        super().__init__()
        self._sock = sock
        self._attempt = attempt

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._attempt.left())
        return self._sock.recv_into(buffer)


class BoundedSocket:
    """What ``http.client`` uses of its socket (``sendall``, ``makefile``,
    ``close``), every call bounded by the time left to the attempt.

    ``http.client`` reads headers with ``readline`` and bodies with buffered
    reads, each of which may take many ``recv`` calls: a socket timeout
    alone bounds each of them, not the fetch.
    """

    def __init__(self, sock: socket.socket, attempt: Attempt) -> None:
        self._sock = sock
        self._attempt = attempt

    def sendall(self, data: bytes) -> None:
        # One timeout for the whole call (CPython >= 3.5), not per send.
        self._sock.settimeout(self._attempt.left())
        self._sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_BoundedReader(self._sock, self._attempt))

    def close(self) -> None:
        # http.client closes the connection as soon as it has the headers of
        # an answer that ends it, while the body is still to be read: the
        # attempt closes the socket when the whole fetch is done.
        pass


def open_socket(host: str, port: int, attempt: Attempt) -> socket.socket:
    """Connect to the first address of ``host`` that accepts, each try
    bounded by the time left (``socket.create_connection`` gives every
    address the whole timeout). Name resolution is bounded by the system
    resolver only."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = attempt.new_socket(family, kind, proto)
        try:
            sock.settimeout(attempt.left())
            sock.connect(address)
            return sock
        except TimeoutError:
            raise
        except OSError as exc:
            attempt.forget(sock)
            error = exc
    raise error or OSError(f"no address for {host}")
