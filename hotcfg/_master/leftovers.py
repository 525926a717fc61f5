"""History and cache files of services that no longer run: finding them
(``hotcfg status --stale``) and removing them (``hotcfg clean``).

A master keeps ``<base>.history``, ``<base>.cache`` and ``<base>.lock`` in
the segment directory, and they stay when it stops, so that its next start
finds them (``_master.claim``). A service renamed, moved to another port or
given another source leaves its old files behind for good. Which files are
a live service's is what the claim's lock says: a running master holds an
exclusive ``flock`` on ``<base>.lock`` as long as it runs. So a base is
stale exactly when this process can take that lock without waiting.

Removing is race-safe the same way: the lock is taken first and held while
``.history``, ``.cache``, their temporary files and, last, the ``.lock``
itself are unlinked. A master starting meanwhile cannot take the lock, so
it moves on to the next name (``claim``); one that opened the lock file
before it was unlinked finds, once it holds the lock, that the path no
longer names what it locked, and opens it anew (``claim._try_lock``). A
base with history or cache but no lock file (a master killed while making
it) is locked by creating the lock file, with ``O_EXCL``, first.

Only regular ``0600`` files of this user are touched; anything else is left
and reported. The one case the lock cannot tell: a Gunicorn re-exec's new
master waits for its predecessor's lock (``claim.Claim.take_over``) without
holding it, so cleaning in the moment the old master exits may remove files
the new one then writes again, from memory, at its next publish.

Must not import ``_master.publisher``, ``_master.control`` or anything above them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from dataclasses import dataclass

from .._errors import SegmentError
from .._segment.shm import _check_owned_file
from .claim import LOCK_SUFFIX

#: The files of one claim, the lock last.
SUFFIXES = (".history", ".cache", LOCK_SUFFIX)


@dataclass(frozen=True, slots=True)
class Leftover:
    """The files of a service that no longer runs.

    Attributes:
        base: ``<dir>/<name>-<tag>[-N]``, without suffix.
        files: the paths that exist (history, cache, temporaries, lock).
        bytes: their total size.
        modified: the newest modification time among them (Unix time).
        last_pid: the pid of the master that last held the lock (0: unknown).
    """

    base: str
    files: tuple[str, ...]
    bytes: int
    modified: float
    last_pid: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A base left alone, and why (not ours, not a regular file...)."""

    base: str
    reason: str


def bases(directory: str) -> list[str]:
    """Every claim base the directory has a history, cache or lock file of."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = set()
    for name in names:
        if name.startswith("."):
            continue
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                found.add(os.path.join(directory, name[: -len(suffix)]))
    return sorted(found)


def _files_of(base: str) -> list[str]:
    directory, name = os.path.split(base)
    paths = [base + s for s in SUFFIXES[:-1] if os.path.lexists(base + s)]
    temps = tuple(f".{name}{s}.tmp-" for s in SUFFIXES[:-1])
    with contextlib.suppress(OSError):
        paths += sorted(
            os.path.join(directory, entry)
            for entry in os.listdir(directory)
            if entry.startswith(temps)
        )
    return paths


def _lock(base: str) -> tuple[int, bool] | None:
    """Take ``base``'s claim lock without waiting.

    Returns:
        The open lock file and whether this call created it; None when a
        live master holds it.

    Raises:
        OSError, SegmentError: the lock file is not one to trust (another
            user's, a symlink, shared with others).
    """
    path = base + LOCK_SUFFIX
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    created = False
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        created = True
    try:
        _check_owned_file(fd, path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
    except BaseException:
        os.close(fd)
        raise
    return fd, created


def _read_pid(fd: int) -> int:
    text = os.pread(fd, 32, 0).strip()
    return int(text) if text.isdigit() else 0


def _describe(base: str, fd: int, created: bool) -> Leftover:
    files = _files_of(base)
    if not created:
        files.append(base + LOCK_SUFFIX)
    size, newest = 0, 0.0
    for path in files:
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            size += info.st_size
            newest = max(newest, info.st_mtime)
    return Leftover(base, tuple(files), size, newest, _read_pid(fd))


def _unlock(base: str, fd: int, created: bool) -> None:
    if created:  # made only to hold the lock: remove it again
        _unlink_same(base + LOCK_SUFFIX, fd)
    os.close(fd)


def _unlink_same(path: str, fd: int) -> None:
    """Unlink ``path`` if it still names the file open as ``fd``."""
    with contextlib.suppress(OSError):
        held, now = os.fstat(fd), os.lstat(path)
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            os.unlink(path)


def _trusted(path: str) -> str | None:
    """Why ``path`` must not be removed, or None when it may."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_uid != os.geteuid():
        return f"{path} belongs to uid {info.st_uid}, not to us"
    return None


def find(directory: str) -> tuple[list[Leftover], list[Skipped]]:
    """The leftovers of services no longer running in ``directory`` (each
    lock taken for a moment, then let go), and the bases left alone."""
    return _sweep(directory, unlink=False)


def remove(directory: str) -> tuple[list[Leftover], list[Skipped]]:
    """Remove the leftovers :func:`find` names, each under its lock (see the
    module docstring).

    Returns:
        What was removed, and what was left alone, and why.
    """
    return _sweep(directory, unlink=True)


def _sweep(directory: str, *, unlink: bool) -> tuple[list[Leftover], list[Skipped]]:
    done: list[Leftover] = []
    skipped: list[Skipped] = []
    for base in bases(directory):
        try:
            taken = _lock(base)
        except (OSError, SegmentError) as exc:
            skipped.append(Skipped(base, str(exc)))
            continue
        if taken is None:
            continue  # a live service's
        fd, created = taken
        try:
            leftover = _describe(base, fd, created)
            refused = [r for r in map(_trusted, leftover.files) if r]
            if not refused and unlink:
                refused = _unlink_files(base, leftover.files)
                if not refused:
                    # The lock last, still held: no master took the files.
                    _unlink_same(base + LOCK_SUFFIX, fd)
            if refused:
                skipped.append(Skipped(base, "; ".join(refused)))
            else:
                done.append(leftover)
        finally:
            _unlock(base, fd, created)
    return done, skipped


def _unlink_files(base: str, files: tuple[str, ...]) -> list[str]:
    """Unlink every file but the lock; the failures, said why."""
    failed = []
    for path in files:
        if path == base + LOCK_SUFFIX:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            failed.append(f"{path}: {os.strerror(exc.errno or errno.EIO)}")
    return failed
