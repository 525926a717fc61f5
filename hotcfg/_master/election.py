"""Peers: the processes of one service elect one publisher among themselves.

Servers that spawn their workers and offer no hooks (``uvicorn --workers``,
``hypercorn --workers``, a ``multiprocessing`` spawn pool) have no parent
that could publish for them. So the processes of one service on one host
(:func:`service_base` says which) share one publisher, one segment and one
worker table (docs/decisions/0065-peers-elect-one-publisher.md):

* **Election.** The publisher is the process holding an exclusive ``flock``
  on ``<base>.publisher`` (a ``0600`` file in the segment directory, opened
  with ``O_NOFOLLOW``, owner checked). The first to take it publishes into
  ``<base>.seg``; the others map that file by path, claim a slot of its
  worker table (``_segment.slots``), and are hinted by the publisher's
  signal as Gunicorn's workers are, at the pids the table lists.
* **Takeover.** Every other process has a thread blocked on the same lock
  (:meth:`Election.wait_to_lead`). When the publisher dies (``kill -9``, or
  recycled by ``--limit-max-requests``) the kernel hands the lock to one of
  them at once. It opens the same segment (the readers keep their mappings;
  the generation goes on, never back), reads the source and publishes only
  what differs from the live content, and takes over the history and cache
  files (``_master.claim``, freed by the dead holder) and the control socket.
* **Lock files that move.** A lock file is only removed by its holder, once
  no process maps the segment any more; whoever locks a file checks that its
  name still names it and opens the new one if not (as ``_master.claim``
  does), so two processes never both believe they lead.

Fork story: the lock belongs to the process that took it. A forked child
(a ``multiprocessing`` fork pool started by a peer) closes its copy, so a
child never keeps a dead publisher's lock; the waiting thread does not
cross the fork.

Imports no publisher: ``_runtime`` builds that when this process is elected.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from .._errors import SegmentError
from .._segment import layout
from .._segment.shm import SUFFIX as SEGMENT_SUFFIX
from .._segment.shm import _check_owned_file, remove_if_unused
from .._settings import Settings
from .claim import DEFAULT_NAME, _read_pid, _still_named, _write_pid

_logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".publisher"
#: The history and cache files' description of a peers' service, while
#: ``HOTCFG_NAME`` is the default (``_master.claim.identity``): stable across
#: restarts, unlike the process group.
FILES_SERVICE = ("server=peers",)
_OVERRIDE_PREFIX = "HOTCFG_SET__"


def publishing_settings(settings: Settings) -> str:
    """What changes the content published from one source: its format, the
    checks and the size limit, and the ``HOTCFG_SET__*`` overrides. Processes
    that differ in any of these must not share a segment."""
    overrides = sorted(
        (key, value)
        for key, value in os.environ.items()
        if key.startswith(_OVERRIDE_PREFIX)
    )
    parts = (
        settings.format,
        settings.validator,
        settings.schema,
        settings.model,
        settings.max_bytes,
        settings.start_empty,
        overrides,
    )
    return repr(parts)


def service_base(settings: Settings, *, pgid: int | None = None) -> str:
    """``<segment dir>/<name>-peers-<tag>``: the path, without suffix, of the
    files the processes of one service share (lock, segment, slots).

    One service is: the same source and the same publishing settings
    (:func:`publishing_settings`), and, while ``HOTCFG_NAME`` is the
    default, the same process group. uvicorn's, Hypercorn's and
    ``multiprocessing``'s workers are in their supervisor's group; two
    servers started apart (two shell commands, two systemd units) are in
    groups of their own. A service given a ``HOTCFG_NAME`` is named by it
    alone: its processes share across groups and containers on purpose.
    """
    group = os.getpgid(0) if pgid is None else pgid
    parts = [settings.source or "", publishing_settings(settings)]
    if settings.name == DEFAULT_NAME:
        parts.append(f"pgid={group}")
    tag = hashlib.blake2b(
        "\0".join(parts).encode("utf-8", "surrogateescape"), digest_size=4
    )
    return os.path.join(
        settings.resolved_segment_dir, f"{settings.name}-peers-{tag.hexdigest()}"
    )


def _open_lock(path: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise SegmentError(f"cannot open the publisher lock {path}: {exc}") from exc
    try:
        _check_owned_file(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Election:
    """This process's part in electing its service's publisher.

    Args:
        base: :func:`service_base`.

    Raises:
        SegmentError: the lock file is a symlink, not ours, or not private.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self.path = base + LOCK_SUFFIX
        self._fd: int | None = _open_lock(self.path)
        self._leading = False
        self._closing = False
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: When this process took the lock (``time.time()``), for the log
        #: and the tests that measure a takeover.
        self.elected_at: float | None = None
        _LIVE.add(self)

    @property
    def leading(self) -> bool:
        return self._leading

    def holder(self) -> int:
        """The pid written by the holder of the lock (0: unknown)."""
        fd = self._fd
        return 0 if fd is None else _read_pid(fd)

    def try_lead(self) -> bool:
        """Take the lock if nobody holds it; True when this process leads."""
        with self._lock:
            if self._leading:
                return True
            fd = self._fd
            if fd is None:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return self._took(fd)

    def _took(self, fd: int) -> bool:
        """The lock on ``fd`` is ours: keep it if the file is still the one
        named (else open the new one, unlocked: the caller tries again)."""
        if not _still_named(fd, self.path):
            os.close(fd)
            self._fd = _open_lock(self.path)
            return False
        _write_pid(fd)
        self._leading = True
        self.elected_at = time.time()
        return True

    def wait_to_lead(self, on_elected: Callable[[], None]) -> None:
        """Block a daemon thread on the lock; once it is this process's,
        call ``on_elected`` there (the takeover)."""
        thread = threading.Thread(
            target=self._wait, args=(on_elected,), name="hotcfg-election", daemon=True
        )
        self._thread = thread
        thread.start()

    def _wait(self, on_elected: Callable[[], None]) -> None:
        while True:
            fd = self._fd
            if fd is None or self._closing:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                return  # closed under us: this process is stopping
            with self._lock:
                if self._closing or self._fd != fd:
                    return
                if not self._took(fd):
                    continue  # the file was replaced: wait on the new one
            break
        _logger.info(
            "hotcfg: this process (pid %d) now publishes for its peers (%s)",
            os.getpid(),
            self.path,
        )
        try:
            on_elected()
        except Exception:
            _logger.exception("hotcfg: taking over publishing failed")

    def release(self, *, remove: bool = False) -> None:
        """Give the lock up (this process stops). With ``remove`` (no
        process maps the segment any more) its file goes too, and the
        ``.slots`` file beside it, so that nothing is left per start."""
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            self._closing = True
            fd, self._fd = self._fd, None
            leading, self._leading = self._leading, False
        if fd is None:
            return
        if leading and remove:
            for suffix in (LOCK_SUFFIX, ".slots"):
                with contextlib.suppress(OSError):
                    os.unlink(self.base + suffix)
        # A thread blocked in flock() on this descriptor is a daemon: it
        # ends with the process, and finds the descriptor gone if it wakes.
        with contextlib.suppress(OSError):
            os.close(fd)

    def _forget_in_child(self) -> None:
        fd, self._fd = self._fd, None
        self._leading = False
        self._closing = True
        self._lock = threading.Lock()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def remove_dead_services(directory: str, name: str, *, keep: str) -> list[str]:
    """Remove the files of ``name``'s peer services whose processes are all
    gone (killed together, or ended by a signal without running ``atexit``,
    as uvicorn's workers are): their segment, socket, slots and lock. A
    new leader calls it, so that nothing accumulates across starts (each
    start of a server is a new process group, and so a new service).

    A service is dead when nobody holds its publisher lock and nobody
    maps its segment. Its processes open the slots file only once they
    hold the lock or map the segment, so a service starting now is never
    taken for a dead one; one whose lock file goes under it opens a new one.

    Returns:
        The bases (paths without suffix) removed.
    """
    removed: list[str] = []
    prefix = f"{name}-peers-"
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(LOCK_SUFFIX)):
            continue
        base = os.path.join(directory, entry[: -len(LOCK_SUFFIX)])
        if base == keep:
            continue
        path = base + LOCK_SUFFIX
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(path, flags)
        except OSError:
            continue
        try:
            _check_owned_file(fd, path)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _still_named(fd, path):
                continue
            if not remove_if_unused(base + SEGMENT_SUFFIX):
                continue  # mapped: its peers are electing a new publisher
            for suffix in (".sock", ".slots", LOCK_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(base + suffix)
            removed.append(base)
        except (OSError, SegmentError):
            continue
        finally:
            os.close(fd)
    return removed


def hinter(
    buffer: Callable[[], layout.Buffer],
    reap: Callable[[layout.Buffer], object],
    signum: int | None,
) -> Callable[[], None]:
    """The publisher's ``notify``: clear the entries of peers that are gone,
    then send ``signum`` to each pid the worker table lists (this process's
    own included: its applier takes it like any peer's). Never a group."""

    def notify() -> None:
        buf = buffer()
        reap(buf)
        if signum is None:
            return
        for record in layout.read_workers(buf):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(record.pid, signum)

    return notify


# Fork story: see Election._forget_in_child.
_LIVE: weakref.WeakSet[Election] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for election in list(_LIVE):
        election._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
