"""Worker-table slots that processes claim for themselves (peers).

Under Gunicorn the master hands each worker its slot before the fork. Peers
(``_master.election``: uvicorn's or Hypercorn's workers, a
``multiprocessing`` pool) have no parent that could, so each claims one
itself, and the slot of a process that died (``kill -9``, ``os._exit``) must
become free without anyone's help.

How: a ``0600`` file beside the segment (``<base>.slots``) in which slot
``i`` is byte ``i``, locked with a POSIX record lock (``lockf``) by the
process that owns the slot. The kernel gives each byte to one process
at a time (race-free: two peers starting together never take the same
slot) and releases the locks of a process when it ends, however it ends.
A slot whose byte is free but whose table entry still names a pid belongs
to a process that is gone: :meth:`WorkerSlots.reap` clears it (the
publisher, before it hints the pids of the table).

Record locks are the process's, not the file descriptor's: they are not
inherited by a forked child (which must not own its parent's slot), and
closing *any* descriptor of the file in this process drops them all, so
the file is opened once per process and never again.

I/O: files and locks; knows the table only through ``_segment.layout``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import weakref

from .._errors import SegmentError
from . import layout as _layout
from .shm import _check_owned_file

SUFFIX = ".slots"


class WorkerSlots:
    """This process's handle on a service's slot locks.

    Args:
        path: the ``.slots`` file (created ``0600`` if missing).

    Raises:
        SegmentError: it is a symlink, not ours, or not private.
    """

    def __init__(self, path: str) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise SegmentError(f"cannot open {path}: {exc}") from exc
        try:
            _check_owned_file(fd, path)
        except BaseException:
            os.close(fd)
            raise
        self.path = path
        self._fd: int | None = fd
        self._owner_pid = os.getpid()
        _LIVE.add(self)

    def _try(self, slot: int) -> bool:
        fd = self._fd
        if fd is None:
            return False
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot, os.SEEK_SET)
        except OSError:
            return False
        return True

    def _free(self, slot: int) -> None:
        fd = self._fd
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot, os.SEEK_SET)

    def claim(self, buffer: _layout.Buffer) -> int | None:
        """Lock the first free slot and write this process's pid in it.

        Returns:
            The slot, or None when every one is taken.
        """
        pid = os.getpid()
        taken = {r.slot for r in _layout.read_workers(buffer) if r.pid != pid}
        for order in (False, True):
            for slot in range(_layout.WORKER_SLOTS):
                # Empty slots first; then slots naming a pid (a dead
                # process's whose entry was not cleared yet).
                if (slot in taken) != order:
                    continue
                if self._try(slot):
                    _layout.write_worker(
                        buffer, slot, pid=pid, generation=0, applied_at=0.0
                    )
                    return slot
        return None

    def reap(self, buffer: _layout.Buffer) -> list[int]:
        """Clear the table entries whose process is gone (its slot's lock is
        free), so that ``hotcfg status`` no longer lists it and no hint goes
        to its pid (which may be another process's by now).

        Returns:
            The pids cleared.
        """
        pid = os.getpid()
        cleared = []
        for record in _layout.read_workers(buffer):
            # This process's own slot would lock again (record locks do
            # not conflict within a process): never ours.
            if record.pid == pid or not self._try(record.slot):
                continue
            try:
                now = _layout.read_workers_slot(buffer, record.slot)
                if now == record.pid:
                    _layout.clear_worker(buffer, record.slot)
                    cleared.append(record.pid)
            finally:
                self._free(record.slot)
        return cleared

    def release(self, slot: int) -> None:
        """Give ``slot`` back (this process's reader closed)."""
        if os.getpid() == self._owner_pid:
            self._free(slot)

    def _forget_in_child(self) -> None:
        # A child holds none of its parent's record locks; closing its copy
        # of the descriptor drops nothing of the parent's.
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_LIVE: weakref.WeakSet[WorkerSlots] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for slots in list(_LIVE):
        slots._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
