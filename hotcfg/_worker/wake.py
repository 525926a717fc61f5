"""Wake-up sockets: how a publisher wakes readers it cannot signal.

A publisher hints its readers with a signal at the pids of the worker
table. That fails when the readers run in another PID namespace (a
Kubernetes sidecar ``hotcfg agent`` beside the app's container, or
``unshare --pid``): their pids mean nothing in the publisher's namespace,
where ``kill()`` fails with ``ESRCH``/``EPERM`` or, worse, reaches an
unrelated process of the same number. What the two sides do share is the
segment directory (an ``emptyDir`` volume), and a unix socket bound in a
shared directory is reachable from every process that can open that
directory on the same kernel, whatever its namespaces.

So a reader that only reads (``HOTCFG_PEERS=read``) binds a datagram socket
``<base>.wake-<slot>`` (``0600``, named by its worker-table slot), its
applier thread blocks in ``recv`` on it, and the publisher sends one byte to
the socket of every slot of the table after a publish (:class:`Sender`),
falling back to the signal only for a slot without a socket.

Unix socket addresses are limited to 107 bytes; a longer path is reached
through the directory's descriptor (``/proc/self/fd/N/name``), which Linux
resolves like any path.

I/O: sockets and files; imports no part of hotcfg.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator

#: Between the base and the slot number.
INFIX = ".wake-"
_MAX_ADDRESS = 100  # sun_path holds 108 bytes with its NUL; keep a margin


def socket_path(base: str, slot: int) -> str:
    """The wake-up socket of ``slot`` of the service at ``base``."""
    return f"{base}{INFIX}{slot}"


@contextlib.contextmanager
def _address(path: str) -> Iterator[str]:
    """``path``, or the same place through an open descriptor of its
    directory when it is too long for a socket address."""
    if len(os.fsencode(path)) <= _MAX_ADDRESS:
        yield path
        return
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


class WakeSocket:
    """A reader's bound wake-up socket and a sender connected to it (the
    applier's own wake-up, from its hint handler or its ``close``).

    Raises:
        OSError: the socket cannot be bound (the directory is not ours).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._pid = os.getpid()
        _remove_stale(path)
        receive = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        send = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with _address(path) as address:
                receive.bind(address)
                # The directory is private (0700); the mode is set anyway, as
                # for every file hotcfg leaves there (a umask is the whole
                # process's, and other threads may be creating files).
                os.chmod(address, 0o600)
                send.connect(address)
            send.setblocking(False)
        except BaseException:
            receive.close()
            send.close()
            raise
        self.receive = receive
        self.send = send

    def unlink(self) -> None:
        """Remove the socket's name (this process's reader closes)."""
        if os.getpid() == self._pid:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def close(self) -> None:
        """Close both ends (after the applier that used them stopped)."""
        self.receive.close()
        self.send.close()


def _remove_stale(path: str) -> None:
    """A socket left by a process that held the slot before: only a socket
    of ours is removed (never a regular file or a link)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.geteuid():
        os.unlink(path)


class Sender:
    """The publisher's side: one byte to a slot's socket.

    Args:
        base: the service's base path (``_master.election.service_base``).
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def __call__(self, slot: int) -> bool:
        """Wake the reader of ``slot``; False when it has no socket (the
        caller signals it instead)."""
        path = socket_path(self.base, slot)
        try:
            with _address(path) as address:
                self._socket.sendto(b"\1", address)
        except BlockingIOError:
            return True  # its queue is full: a wake-up is pending already
        except OSError:
            # ENOENT, ECONNREFUSED (nobody bound to it any more), ENOTSOCK,
            # EACCES: no socket to wake it by.
            return False
        return True

    def close(self) -> None:
        self._socket.close()
