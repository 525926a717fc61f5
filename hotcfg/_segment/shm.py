"""The shared-memory file: create, trust, map, grow, remove.

I/O only: knows files, ``mmap`` and ``flock``, and nothing of msgpack or of
the byte layout beyond what ``_segment.layout`` exports.

* The segment lives in a private directory (``0700``, owned by us, not a
  symlink), as a ``0600`` file created with ``O_EXCL | O_NOFOLLOW`` under a
  temporary name and linked to its final name only once it is locked and
  formatted (``link`` never replaces an existing file, unlike ``rename``).
* The master holds a shared ``flock`` on it. Forked workers inherit the same
  open file description and so keep that lock while any of them lives. A
  segment nobody holds a lock on belongs to a dead master (``kill -9``): the
  next master removes it, so nothing accumulates, and a pid reused by an
  unrelated process cannot keep a dead segment alive.
* Space is reserved with ``posix_fallocate`` before it is announced, so a
  full ``/dev/shm`` fails the publish in the master instead of raising
  ``SIGBUS`` in a worker touching a page that cannot be backed. Where there
  is no ``posix_fallocate`` (macOS), the new bytes are written as zeros for
  the same effect.

Portability: everything else here is POSIX (``flock``, ``O_NOFOLLOW``,
``O_CLOEXEC``, ``MAP_SHARED``); ``link`` without following symlinks falls
back to a plain ``link`` where ``linkat`` is missing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import secrets
import stat
import time
from dataclasses import dataclass

from .._errors import CorruptSegmentError, SegmentError
from . import layout as _layout
from .where import SUFFIX as SUFFIX  # kept here for the modules using them
from .where import list_segments as list_segments

#: Header reads that only yield the CPU before they sleep between tries.
HEADER_SPINS = 100

_TMP_PREFIX = ".tmp-"
_TMP_GRACE_S = 60.0
_PAGE = mmap.PAGESIZE
INITIAL_CAPACITY = 1 << 20


def _round_page(n: int) -> int:
    return (n + _PAGE - 1) // _PAGE * _PAGE


def ensure_private_dir(path: str) -> None:
    """Create ``path`` as ``0700`` or check that the existing one is private.

    Raises:
        SegmentError: it is a symlink, not a directory, not ours, or shared.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SegmentError(f"cannot create segment directory {path}: {exc}") from exc
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise SegmentError(
            f"segment directory {path} is not a directory (or a symlink)"
        )
    if info.st_uid != os.geteuid():
        raise SegmentError(f"segment directory {path} belongs to uid {info.st_uid}")
    if info.st_mode & 0o077:
        raise SegmentError(
            f"segment directory {path} is accessible to others "
            f"(mode {stat.S_IMODE(info.st_mode):o}); it must be 0700"
        )


def _check_owned_file(fd: int, path: str) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise SegmentError(f"{path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise SegmentError(f"{path} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        raise SegmentError(f"{path} is accessible to others; refusing to trust it")
    return info


def _map(fd: int, size: int, *, writable: bool = True) -> mmap.mmap:
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    return mmap.mmap(fd, size, mmap.MAP_SHARED, prot)


_ZERO_CHUNK = 1 << 20


def _write_zeros(fd: int, size: int) -> None:
    # ftruncate alone would leave a sparse file whose pages are only found
    # missing when first touched (SIGBUS); writing them allocates them now,
    # so a full disk or tmpfs fails here with ENOSPC. Only the bytes past the
    # current end are written: the ones before are the live segment.
    offset = os.fstat(fd).st_size
    zeros = memoryview(bytes(min(_ZERO_CHUNK, max(size - offset, 0))))
    while offset < size:
        offset += os.pwrite(fd, zeros[: size - offset], offset)


def _reserve(fd: int, size: int) -> None:
    # Looked up at each call (not at import) so tests can take it away.
    fallocate = getattr(os, "posix_fallocate", None)
    try:
        if fallocate is not None:
            fallocate(fd, 0, size)
        else:
            _write_zeros(fd, size)
    except OSError as exc:
        raise SegmentError(
            f"cannot reserve {size} bytes of shared memory: {exc}"
        ) from exc


def _publish_name(tmp_path: str, path: str) -> None:
    # link() refuses an existing name where rename() would silently replace
    # whatever is there; nothing already at the final name is ever touched.
    # tmp_path is the regular file we just created with O_NOFOLLOW, so where
    # linkat() is missing a plain link() (which may follow) links the same.
    no_follow = os.link in os.supports_follow_symlinks
    try:
        if no_follow:
            os.link(tmp_path, path, follow_symlinks=False)
        else:
            os.link(tmp_path, path)
    except OSError as exc:
        raise SegmentError(f"cannot create segment {path}: {exc}") from exc
    os.unlink(tmp_path)


def remove_stale(directory: str, *, name: str) -> list[str]:
    """Remove segments (and temp files) of ``name`` that no live process holds.

    Returns:
        The paths removed.
    """
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        is_tmp = entry.startswith(_TMP_PREFIX + name + "-")
        if not (is_tmp or (entry.startswith(name + "-") and entry.endswith(SUFFIX))):
            continue
        path = os.path.join(directory, entry)
        try:
            fd = os.open(
                path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            )
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode):
                continue
            if is_tmp and now - info.st_mtime < _TMP_GRACE_S:
                continue  # another master may be creating it right now
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live master or its workers hold it
            current = os.stat(path, follow_symlinks=False)
            if (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino):
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _open_shared(path: str, *, writable: bool) -> tuple[int, int] | None:
    """Open and share-lock the segment at ``path``: the descriptor and the
    file's size, or None when there is none (or it was removed before the
    lock was taken, by :func:`remove_stale` or its last writer).

    Raises:
        SegmentError: a symlink, not a regular file of ours, or shared.
    """
    mode = os.O_RDWR if writable else os.O_RDONLY
    try:
        fd = os.open(path, mode | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SegmentError(f"{path} is a symlink; refusing it") from exc
        raise SegmentError(f"cannot open segment {path}: {exc}") from exc
    try:
        info = _check_owned_file(fd, path)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if (
            now is None
            or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino)
            or info.st_size < _layout.DATA_START
        ):
            os.close(fd)
            return None
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


def remove_if_unused(path: str) -> bool:
    """Remove the segment at ``path`` if no process holds a lock on it (no
    peer maps it any more): the last of a service's peers to stop. True
    when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        current = os.stat(path, follow_symlinks=False)
        if (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino):
            os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Written:
    """A generation :meth:`Segment.write_generation` wrote."""

    generation: int
    published_at: float  # Unix time
    waiting: tuple[int, ...]  # the pids of the workers that owe it


class Segment:
    """The writer's handle on the segment (the master, or a standalone process).

    Attributes:
        path: where the segment is, for ``hotcfg status``.
        fd: inherited by forked workers, who map it through :meth:`view`.
        buffer: the writer's own mapping.
    """

    def __init__(
        self, path: str, fd: int, buffer: mmap.mmap, *, shared: bool = False
    ) -> None:
        self.path = path
        self.fd = fd
        self.buffer = buffer
        self.owner_pid = os.getpid()
        # Peers map it by path and outlive this writer: removed at close
        # only when no other process holds it (``_master.election``).
        self.shared = shared

    @classmethod
    def create(
        cls, directory: str, *, name: str, capacity: int = INITIAL_CAPACITY
    ) -> Segment:
        """Create, lock, format and publish-in-place a new empty segment.

        Raises:
            SegmentError: the directory is not private or space is short.
        """
        ensure_private_dir(directory)
        remove_stale(directory, name=name)
        token = f"{name}-{os.getpid()}-{secrets.token_hex(4)}"
        return cls._create_named(directory, token, capacity)

    @classmethod
    def _create_named(cls, directory: str, token: str, capacity: int) -> Segment:
        tmp_path = os.path.join(directory, f"{_TMP_PREFIX}{token}")
        path = os.path.join(directory, token + SUFFIX)
        capacity = _round_page(max(capacity, _layout.minimum_capacity(4096)))
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp_path, flags, 0o600)
        except OSError as exc:
            raise SegmentError(f"cannot create segment {tmp_path}: {exc}") from exc
        try:
            os.fchmod(fd, 0o600)
            _check_owned_file(fd, tmp_path)
            fcntl.flock(fd, fcntl.LOCK_SH)
            _reserve(fd, capacity)
            buffer = _map(fd, capacity)
            _layout.format_segment(buffer, capacity=capacity, writer_pid=os.getpid())
            _publish_name(tmp_path, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
            os.close(fd)
            raise
        return cls(path, fd, buffer)

    @classmethod
    def open_or_create(
        cls, directory: str, *, token: str, name: str, capacity: int = INITIAL_CAPACITY
    ) -> Segment:
        """The segment of a fixed name that peers share (``_master.election``):
        the one there, written on where its last writer stopped (the
        generation goes on; readers keep their mapping), else a new one.
        Only the elected writer calls it, holding the service's publisher
        lock, so nothing else creates or removes that name meanwhile but
        :func:`remove_stale` (whose removal is noticed: the name is opened
        again). A file there that is not a segment of this layout is
        replaced (removed, so a reader of it keeps its old mapping).

        Raises:
            SegmentError: the directory is not private, the file not ours,
                or space is short.
        """
        ensure_private_dir(directory)
        path = os.path.join(directory, token + SUFFIX)
        for _ in range(5):
            existing = _open_shared(path, writable=True)
            if existing is not None:
                fd, size = existing
                buffer = _map(fd, size)
                try:
                    _layout.read_header(buffer, attempts=1)
                except CorruptSegmentError:
                    # Not a segment we can write on (another layout, or
                    # broken): start a new one under the name.
                    _layout.repair_sequence(buffer)
                    try:
                        _layout.read_header(buffer, attempts=1)
                    except CorruptSegmentError:
                        buffer.close()
                        os.close(fd)
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
                        continue
                return cls(path, fd, buffer, shared=True)
            remove_stale(directory, name=name)
            try:
                created = cls._create_named(directory, token, capacity)
            except SegmentError:
                if os.path.lexists(path):
                    continue  # created meanwhile: open it
                raise
            created.shared = True
            return created
        raise SegmentError(f"cannot open or create the segment {path}")

    @property
    def capacity(self) -> int:
        return len(self.buffer)

    def ensure_capacity(self, needed: int) -> None:
        """Grow the file (never shrink) so ``needed`` bytes are valid.

        Readers keep their smaller mapping until the header tells them the
        capacity changed; the file only grows, so their mapping stays valid.
        """
        if needed <= len(self.buffer):
            return
        capacity = _round_page(max(needed, 2 * len(self.buffer)))
        _reserve(self.fd, capacity)
        buffer = _map(self.fd, capacity)
        self.buffer.close()
        self.buffer = buffer
        _layout.set_capacity(buffer, capacity)

    def write_generation(self, payload: bytes, *, after: int, source: str) -> Written:
        """Write ``payload`` as the next generation: the whole sequence the
        seqlock asks for (plan where it goes, grow the file if it must, the
        payload, then the header's commit), so a reader sees the old
        generation or the new one, never a mix. The caller holds its write
        lock and has checked the payload.

        Args:
            after: a generation the new one must follow besides the
                header's (after a restart the segment starts at 0, and the
                history goes on from its last).
            source: the label the header records with it.
        """
        header = _layout.read_header(self.buffer)
        offset = _layout.plan_offset(header, len(payload))
        self.ensure_capacity(offset + len(payload))
        buffer = self.buffer
        generation = max(header.generation, after) + 1
        # The workers that owe this generation: those there before it.
        waiting = tuple(w.pid for w in _layout.read_workers(buffer))
        published_at = time.time()
        crc = _layout.write_payload(buffer, offset, payload, generation=generation)
        _layout.commit(
            buffer,
            generation=generation,
            offset=offset,
            length=len(payload),
            crc=crc,
            published_at=published_at,
            source=source,
            writer_pid=os.getpid(),
        )
        return Written(generation, published_at, waiting)

    def _alone(self) -> bool:
        """Whether no other process maps this shared segment: its peers each
        hold a shared ``flock`` on their own open file. (Converting the lock
        may drop this process's: it is closing it anyway.)"""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def view(self) -> SegmentView:
        """A reader's own mapping of this segment (in this or a forked process)."""
        return SegmentView(os.dup(self.fd))

    def close(self, *, unlink: bool) -> None:
        """Unmap and close; ``unlink`` only in the process that created it.

        A forked child (a Gunicorn worker) inherits this object; an ``atexit``
        hook or a finaliser running there must never remove the master's
        segment, hence the pid check.
        """
        if os.getpid() != self.owner_pid:
            return
        if unlink and self.shared:
            unlink = self._alone()
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        with contextlib.suppress(BufferError, ValueError):
            self.buffer.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class SegmentView:
    """A reader's mapping: remaps when the writer grew the segment.

    Owns ``fd`` (a dup): closing it never releases the writer's lock.
    """

    def __init__(self, fd: int, *, writable: bool = True) -> None:
        self.fd = fd
        self._writable = writable
        self.buffer = _map(fd, os.fstat(fd).st_size, writable=writable)

    @classmethod
    def open(cls, path: str, *, writable: bool = False) -> SegmentView:
        """Open a segment by path (the CLI), checking it is ours and private.

        Raises:
            SegmentError: missing, a symlink, not ours, or not private.
        """
        mode = os.O_RDWR if writable else os.O_RDONLY
        try:
            fd = os.open(path, mode | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SegmentError(f"{path} is a symlink; refusing it") from exc
            raise SegmentError(f"cannot open segment {path}: {exc}") from exc
        try:
            _check_owned_file(fd, path)
            return cls(fd, writable=writable)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def open_shared(cls, path: str) -> SegmentView | None:
        """A peer's mapping of the segment its elected writer publishes
        (``_master.election``): checked as :meth:`open` checks, writable for
        this process's worker-table slot, and holding a shared ``flock`` so
        that the segment is not removed while this process maps it. None
        while there is none yet (the writer is creating it).

        Raises:
            SegmentError: it is a symlink, not ours, or not private.
        """
        opened = _open_shared(path, writable=True)
        if opened is None:
            return None
        return cls(opened[0])

    def header(self) -> _layout.Header:
        """The header, read as another process than the writer must: a
        writer preempted in the middle of a header update (a busy host) is
        waited for about a second, yielding the CPU for the first tries and
        then sleeping a millisecond between them, before the segment is
        called broken (a writer killed in the middle of one).

        Raises:
            CorruptSegmentError: as :func:`_segment.layout.read_header`.
        """
        tries = 0

        def pause() -> None:
            nonlocal tries
            tries += 1
            if tries <= HEADER_SPINS:
                os.sched_yield()
            else:
                time.sleep(0.001)

        return _layout.read_header(self.buffer, attempts=1000, pause=pause)

    def remap_if_grown(self) -> bool:
        """Map the whole segment again if the writer announced a larger one.

        Callers must hold no ``memoryview`` of :attr:`buffer` (it cannot be
        closed while one is exported).
        """
        capacity = _layout.read_capacity(self.buffer)
        if capacity <= len(self.buffer):
            return False
        size = os.fstat(self.fd).st_size
        if capacity > size:
            # The writer reserves space before announcing it, so this header
            # is corrupt; mapping its capacity could fault (SIGBUS past the
            # end of the file) or overflow (a capacity of 2**63 or more).
            raise CorruptSegmentError(
                f"header capacity {capacity} exceeds the file's {size} bytes"
            )
        buffer = _map(self.fd, size, writable=self._writable)
        self.buffer.close()
        self.buffer = buffer
        return True

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self.buffer.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
