"""Master side: one connection to one etcd member, over TLS when the
access says so, and the deadline of what is done on it.

Every connection to etcd is made here (a request's, the watch stream's, the
probe's), so its fork story is told once: the socket is listed in
``forksafe`` from before it connects until it is closed, and the TLS socket
``wrap_socket()`` makes is listed in the same step a fork cannot fall into.
A worker forked meanwhile closes its copies at once (``forksafe``'s
at-fork hook), so it never holds the master's stream, or etcd's watch,
open; CPython sends a TLS close_notify only from ``unwrap()``, so the child
neither closes nor shuts down the master's TLS session. A peer that
vanished without a FIN is found by TCP keepalive probes.

No requests, no errors of etcd's (``client``). Must not import the
source, the watch or anything of the master; never on a worker's request
path.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time

from .. import forksafe
from .access import EtcdAccess

#: Read at most this much at a time.
CHUNK = 65536


def connect(
    endpoint: tuple[str, int], timeout_s: float, *, access: EtcdAccess
) -> http.client.HTTPConnection:
    """A connection to ``endpoint``, over TLS when ``access`` says so (the
    handshake done: a refused certificate raises ``ssl.SSLError`` here).

    Raises:
        OSError: no connection.
    """
    sock = _open_socket(endpoint, timeout_s, access)
    # A peer that vanished without a FIN (a host down, a cut network) is
    # found by keepalive probes within about 20 s, whatever the stream does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 2)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    conn = http.client.HTTPConnection(*endpoint, timeout=timeout_s)
    conn.sock = sock
    return conn


def _open_socket(
    endpoint: tuple[str, int], timeout_s: float, access: EtcdAccess
) -> socket.socket:
    """A connected socket (TLS: handshaken), listed in ``forksafe`` from
    before it connects: a worker forked while it connects or handshakes (Gunicorn
    spawns its workers just as the watcher connects) must close its copy
    too, or it would hold the master's stream open."""
    host, port = endpoint
    last: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = forksafe.new_socket(family, kind, proto)
        try:
            sock.settimeout(timeout_s)
            sock.connect(address)
            if access.context is None:
                return sock
            return _handshake(sock, host, access.context)
        except BaseException as exc:
            with forksafe.HANDOVER:  # nothing if wrapped: the TLS socket's now
                forksafe.close(sock)
            if not isinstance(exc, OSError) or isinstance(exc, ssl.SSLError):
                raise
            last = exc
    raise last or OSError(f"no address for {host}")


def _handshake(
    sock: socket.socket, host: str, context: ssl.SSLContext
) -> ssl.SSLSocket:
    # wrap_socket() moves the descriptor to a new object: fork() must not
    # fall between that and registering it (a few bytecodes, no I/O).
    with forksafe.HANDOVER:
        tls = context.wrap_socket(
            sock, server_hostname=host, do_handshake_on_connect=False
        )
        forksafe.OPEN.add(tls)
    try:
        tls.do_handshake()
    except BaseException:
        with forksafe.HANDOVER:
            forksafe.close(tls)
        raise
    return tls


def close(conn: http.client.HTTPConnection) -> None:
    """Close the connection's descriptor now, and forget it in one step a
    fork cannot fall into. ``conn.close()`` alone leaves the descriptor open
    while a response's file object still refers to the socket, unlisted:
    a worker forked then would hold the master's connection."""
    sock = conn.sock
    if sock is not None:
        with forksafe.HANDOVER:
            forksafe.close(sock)
    conn.close()


def within(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Give the connection's next operation what is left until
    ``deadline`` (monotonic): a request's timeout is for the whole of it,
    so a member that answers a byte at a time cannot hold it longer.

    Raises:
        TimeoutError: the deadline has passed.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    if conn.sock is not None:
        conn.sock.settimeout(left)
