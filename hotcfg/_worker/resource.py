"""State built from the config: rebuilt when its keys change, closed when idle.

A connection pool sized by ``db.pool_size`` cannot just read the new size:
it has to be built again, handed to new requests, and the old one closed,
but only once the requests still using it are done with it. A
:class:`Resource` does that with a reference count per built resource:

* :meth:`Resource.use` looks up the value at its path in the request's
  snapshot. If it differs (NaN-safe, as the change callbacks compare) from
  the value the live resource was built from, and the snapshot is newer, it
  calls ``factory(value)`` and makes the result the live one; the previous
  one is retired.
* A retired resource is closed by whichever request releases it last, or at
  once if none holds it: always in request code, outside any lock and never
  in a signal handler.
* A resource only moves forward: a request still pinned to an older
  generation gets the live (newer) resource rather than rebuilding an old one.
* A factory that raises keeps the live resource (logged once per value);
  the next change of the value tries again. With no live resource yet, the
  error propagates to the request.

Fork story: a resource built before a fork belongs to the parent (a pool's
sockets must not be shared); the child forgets it without closing it and
builds its own on first use.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._segment.snapshot import Snapshot, lookup, split_path
from .reader import same_value

_logger = logging.getLogger(__name__)
_UNSET: Any = object()
R = TypeVar("R")


@dataclass(slots=True)
class _Built(Generic[R]):
    value: Any
    generation: int
    resource: R
    users: int = 0
    retired: bool = False


@dataclass(frozen=True, slots=True)
class ResourceStats:
    """Counts for a status page or a test: ``built`` and ``closed`` since start,
    ``in_use`` across live and retired resources."""

    built: int
    closed: int
    in_use: int


_LIVE: weakref.WeakSet[Resource[Any]] = weakref.WeakSet()


class Resource(Generic[R]):
    """A resource built from the value at ``path``; see the module docstring.

    Create with :func:`hotcfg.resource`.
    """

    def __init__(
        self,
        path: str | Sequence[str],
        factory: Callable[[Any], R],
        close: Callable[[R], object] | None,
        *,
        snapshot: Callable[[], Snapshot],
    ) -> None:
        self._path = ".".join(split_path(path))
        self._keys = split_path(path)
        self._factory = factory
        self._close = close
        self._snapshot = snapshot
        self._lock = threading.Lock()  # counts and the live pointer; held briefly
        self._build_lock = threading.Lock()  # one factory call at a time
        self._live: _Built[R] | None = None
        self._retired: list[_Built[R]] = []
        self._failed: Any = _UNSET
        self._built = self._closed = 0
        _LIVE.add(self)

    @contextmanager
    def use(self) -> Iterator[R]:
        """The resource for this request's snapshot, held until the block ends."""
        entry = self._acquire()
        try:
            yield entry.resource
        finally:
            self._release(entry)

    def stats(self) -> ResourceStats:
        with self._lock:
            entries = [*self._retired, *([self._live] if self._live else [])]
            in_use = sum(e.users for e in entries)
            return ResourceStats(self._built, self._closed, in_use)

    def _take_live(self, value: Any, generation: int) -> _Built[R] | None:
        """The live entry, counted as used, if it serves ``value``; under _lock."""
        live = self._live
        if live is None:
            return None
        if (
            same_value(live.value, value)
            or generation <= live.generation
            or (self._failed is not _UNSET and same_value(self._failed, value))
        ):
            live.users += 1
            return live
        return None

    def _acquire(self) -> _Built[R]:
        snap = self._snapshot()
        value = lookup(snap.data, self._keys, None)
        with self._lock:
            entry = self._take_live(value, snap.generation)
        if entry is not None:
            return entry
        with self._build_lock:
            with self._lock:  # another request may have built it meanwhile
                entry = self._take_live(value, snap.generation)
            if entry is not None:
                return entry
            try:
                resource = self._factory(value)
            # The factory is user code: keep serving with what we have.
            except Exception:
                with self._lock:
                    if self._live is None:
                        raise
                    self._failed = value
                    self._live.users += 1
                    entry = self._live
                _logger.exception(
                    "hotcfg: cannot build the resource at %r for generation %d; "
                    "keeping the one built for generation %d",
                    self._path,
                    snap.generation,
                    entry.generation,
                )
                return entry
            entry = _Built(value, snap.generation, resource, users=1)
            with self._lock:
                old, self._live = self._live, entry
                self._failed = _UNSET
                self._built += 1
                idle = None
                if old is not None:
                    old.retired = True
                    if old.users == 0:
                        idle = old
                    else:
                        self._retired.append(old)
        if idle is not None:
            self._dispose(idle)
        return entry

    def _release(self, entry: _Built[R]) -> None:
        with self._lock:
            entry.users -= 1
            idle = entry.retired and entry.users == 0
            if idle:
                self._retired.remove(entry)
        if idle:
            self._dispose(entry)

    def _dispose(self, entry: _Built[R]) -> None:
        try:
            if self._close is not None:
                self._close(entry.resource)
        # close() is user code: a failure must not fail the request releasing it.
        except Exception:
            _logger.exception(
                "hotcfg: closing the resource at %r built for generation %d failed",
                self._path,
                entry.generation,
            )
        with self._lock:
            self._closed += 1


def _forget_in_child() -> None:
    for res in list(_LIVE):
        res._lock = threading.Lock()
        res._build_lock = threading.Lock()
        res._live = None
        res._retired = []
        res._failed = _UNSET
        res._built = res._closed = 0


os.register_at_fork(after_in_child=_forget_in_child)
