"""Master side: the sockets of the master's own threads, never a worker's.

Gunicorn forks workers whenever it likes, also while the etcd watcher
(``etcd.source``), the fleet record (``_master.fleet``) or the HTTP poller
(``http.attempt``) holds a connection. A worker inheriting the descriptor
would keep the master's stream (and etcd's watch) open after the master
closed it. So every such socket is listed in :data:`OPEN` from its
creation to its close, and a forked child closes its copies at once.

Creating a socket, wrapping it in TLS (which moves the descriptor to a new
object) and closing it each happen with its listing under :data:`HANDOVER`,
which ``fork()`` takes too: a fork never falls between a descriptor and its
listing. Held for a few bytecodes and system calls that never block.

Imports nothing of hotcfg: the sources and the fleet record import it.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref

#: Sockets open now, closed in a forked child.
OPEN: weakref.WeakSet[socket.socket] = weakref.WeakSet()
#: Held by ``fork()`` and while a socket is created, wrapped or closed.
HANDOVER = threading.Lock()


def new_socket(family: int, kind: int, proto: int) -> socket.socket:
    """A new socket, listed from its creation."""
    with HANDOVER:
        sock = socket.socket(family, kind, proto)
        OPEN.add(sock)
    return sock


def close(sock: socket.socket) -> None:
    """Unlist ``sock`` and close its descriptor now; the caller holds
    :data:`HANDOVER`. ``detach()`` then ``os.close``: the socket object gives
    up its number at once, whatever else still refers to it (a response's
    file object), and an SSLSocket's ``detach()`` is the plain socket's: no
    TLS close_notify is sent."""
    OPEN.discard(sock)
    fd = sock.detach()
    if fd >= 0:
        os.close(fd)


def _after_fork_in_child() -> None:
    for sock in list(OPEN):
        # The child's descriptor only, never shutdown(): the master's
        # connection must stay up. detach() first, so the socket object
        # cannot close whatever reuses the number later; an SSLSocket's TLS
        # state left in the child is freed unused (CPython sends a
        # close_notify only in unwrap()).
        fd = sock.detach()
        if fd >= 0:
            os.close(fd)
    OPEN.clear()
    HANDOVER.release()


os.register_at_fork(
    before=HANDOVER.acquire,
    after_in_parent=HANDOVER.release,
    after_in_child=_after_fork_in_child,
)
