"""Which history and cache files a master keeps, and the lock that keeps two
live masters from sharing them.

Owns the names and the ``.lock`` file; ``_master.history`` and ``_master.coldstart`` own
what is inside the other two. A master's files are
``<segment dir>/<name>-<tag>`` plus ``.history``, ``.cache`` and ``.lock``:

* **What names a service** (:func:`identity`). What the files hold is the
  source's content without the overrides, which are applied anew, and the
  result validated anew, when it is published again; so the source's label
  is part of the tag and nothing that only changes how it is published
  (overrides, validators, schema, model, format) is: a master restarted
  with another override keeps its history and its cache.
  ``HOTCFG_NAME`` is the file name's prefix. While it is the default
  (``hotcfg``), the server's own description of the service is part of the
  tag too (Gunicorn: its ``proc_name`` and its bind addresses), so two
  services that share a source on one host never read each other's files,
  running or not. A service given a ``HOTCFG_NAME`` of its own is named by
  that alone: its address may change between starts (a port handed out at
  each start) and it keeps its files.
* **Two live masters never share them** (:func:`claim`). Before it reads
  them, a master takes an exclusive ``flock`` on ``<base>.lock``, without
  waiting, and writes its pid into it. If a live master holds it, the next
  name is tried (``<base>-2``, ``-3``, ... up to :data:`MAX_CLAIMS`) and a
  WARNING names the holder and the setting that tells the services apart.
  The lock is the master's alone: forked workers close their copy
  (``os.register_at_fork``), so a dead master's lock is free at once. Lock
  files stay, like the history, until ``hotcfg clean`` removes a stopped
  service's files under its lock (``_master.leftovers``); a master that
  locked a file just removed that way opens the new one instead.
* **Gunicorn's re-exec** (``USR2``) starts the new master while the old one
  still runs, from the same settings: the same service, not a second one.
  A master that is told the pid of the master it replaces (``predecessor``)
  and finds that pid holding the lock uses the same files (both masters
  write them until the old one stops: the last write wins), and a thread
  takes the lock once the old master lets it go.

Must not import ``_master.publisher``, ``_master.control`` or anything above them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Sequence

from .._errors import SegmentError
from .._segment.shm import _check_owned_file
from .history import path_for

_logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
#: The default ``HOTCFG_NAME``: a service left with it is told apart by
#: what its server says about it too.
DEFAULT_NAME = "hotcfg"
#: How many masters of one identity may run at once, each with its files.
MAX_CLAIMS = 16
_PID_BYTES = 32
# How often a lock file removed under us (``hotcfg clean``) is opened anew.
_REOPENS = 5


def identity(name: str, service: Sequence[str]) -> tuple[str, ...]:
    """What, besides the source and ``name``, names the service's files:
    ``service`` (the server's description) while ``name`` is the default,
    nothing once the service was named."""
    return tuple(service) if name == DEFAULT_NAME else ()


class Claim:
    """The files of one service, locked by this master (or being taken over).

    Attributes:
        base: the path without suffix (``<dir>/<name>-<tag>[-N]``).
    """

    def __init__(self, base: str, fd: int, *, held: bool) -> None:
        self.base = base
        self._fd: int | None = fd
        self._held = held
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()
        _LIVE.add(self)

    @property
    def history_path(self) -> str:
        return self.base + ".history"

    @property
    def cache_path(self) -> str:
        return self.base + ".cache"

    @property
    def held(self) -> bool:
        """Whether this master holds the lock (not while taking over)."""
        return self._held

    def take_over(self) -> None:
        """Take the lock once its holder, the master this one replaces, lets
        it go (from a daemon thread: that is when the old master stops)."""
        threading.Thread(target=self._wait, name="hotcfg-claim", daemon=True).start()

    def _wait(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            return
        with self._lock:
            if self._fd is None:  # released meanwhile: the thread owned it
                os.close(fd)
                return
            _write_pid(fd)
            self._held = True
        _logger.info("hotcfg: this master now holds %s", self.base + LOCK_SUFFIX)

    def release(self) -> None:
        """Let the files go (the master's close). While a take-over still
        waits, its thread closes the file when it wakes."""
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None and self._held:
                os.close(fd)

    def _forget_in_child(self) -> None:
        # The lock belongs to the master: a worker that outlives it (kill -9)
        # must not keep the next master from its own files.
        fd, self._fd = self._fd, None
        self._lock = threading.Lock()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def claim(
    directory: str,
    name: str,
    label: str,
    *,
    service: Sequence[str] = (),
    predecessor: int | None = None,
) -> Claim | None:
    """Lock the files of the service ``name`` reading ``label`` (see the
    module docstring); None (logged) when no name can be locked, and then
    the master keeps no history and no cache.

    Args:
        service: the server's description of the service (Gunicorn's
            ``proc_name`` and binds), used while ``name`` is the default.
        predecessor: the pid of the master this one replaces (Gunicorn's
            re-exec), whose files this one takes over.
    """
    primary = path_for(
        directory, name, label, service=identity(name, service), suffix=""
    )
    holders: list[tuple[str, int]] = []
    for number in range(1, MAX_CLAIMS + 1):
        base = primary if number == 1 else f"{primary}-{number}"
        path = base + LOCK_SUFFIX
        try:
            fd, holder = _try_lock(path)
        except (OSError, SegmentError) as exc:
            _logger.warning("hotcfg: cannot use the lock file %s: %s", path, exc)
            continue
        if holder is None:
            _warn_shared(holders, base, name)
            return Claim(base, fd, held=True)
        if number == 1 and predecessor is not None and holder == predecessor:
            _logger.info(
                "hotcfg: the master this one replaces (pid %d) holds %s; its "
                "history and cache are taken over, the lock once it stops",
                holder,
                path,
            )
            taken = Claim(base, fd, held=False)
            taken.take_over()
            return taken
        os.close(fd)
        holders.append((path, holder))
    _logger.error(
        "hotcfg: %d live masters hold every name for this service's history "
        "and cache (%s...); this master keeps neither",
        MAX_CLAIMS,
        primary,
    )
    return None


def _warn_shared(holders: list[tuple[str, int]], base: str, name: str) -> None:
    if not holders:
        return
    path, pid = holders[0]
    setting = (
        "HOTCFG_NAME (or Gunicorn proc_name)"
        if name == DEFAULT_NAME
        else f"HOTCFG_NAME (now {name!r})"
    )
    _logger.warning(
        "hotcfg: another running master (pid %s) reads the same source under "
        "the same name and holds %s; this master keeps its own history and "
        "cache in %s.* instead. Give each service its own %s, so that each "
        "finds its own history and cache after a restart",
        pid or "unknown",
        path,
        base,
        setting,
    )


def _try_lock(path: str) -> tuple[int, int | None]:
    """Open the lock file and try to lock it.

    Returns:
        The open file, and None when this process now holds the lock, or
        else the holder's pid (0 when it cannot be read).

    Raises:
        OSError: the file cannot be opened.
        SegmentError: it is not a regular ``0600`` file of ours.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    for _ in range(_REOPENS):
        fd = os.open(path, flags, 0o600)
        try:
            _check_owned_file(fd, path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return fd, _read_pid(fd)
            if not _still_named(fd, path):
                # ``hotcfg clean`` removed the files of a stopped service
                # while holding this lock: lock the new file of that name.
                os.close(fd)
                continue
            _write_pid(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd, None
    raise OSError(errno.EAGAIN, "the lock file keeps being replaced", path)


def _still_named(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _read_pid(fd: int) -> int:
    text = os.pread(fd, _PID_BYTES, 0).strip()
    return int(text) if text.isdigit() else 0


# Fork story: see Claim._forget_in_child.
_LIVE: weakref.WeakSet[Claim] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for held in list(_LIVE):
        held._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
