"""Worker side: the current :class:`Snapshot` and switching to the next one.

:meth:`Reader.refresh` runs at every request boundary. Its fast path is one
8-byte read of the segment's generation compared with the one applied, so a
lost or late hint signal never strands a worker (the generation is the
truth; the signal is a hint). Only when the generation moved does it copy
the payload (lock-free, checked by the descriptor's generation and the CRC:
``layout.read_consistent``), decode it (a large config's big top-level
sections only on first access), swap one reference, run the change
callbacks, and last record the generation in the worker table, outside any
signal handler. In a Gunicorn worker the hint wakes the applier thread
(``_worker.applier``), which calls :meth:`Reader.refresh` at once; the request
boundary check catches what a lost hint missed.

Fork story: a reader inherited by a forked child keeps working (its mapping
is ``MAP_SHARED``); its lock is replaced in the child because another thread
may have held it at the moment of the fork.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._errors import CorruptSegmentError, SegmentError
from .._segment import layout
from .._segment import payload as _payload
from .._segment.shm import SegmentView
from .._segment.snapshot import Snapshot, lookup, split_path

_logger = logging.getLogger(__name__)

ChangeCallback = Callable[[Any, Any], object]


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN, so it never looks like a change."""
    if a is b or a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isnan(a) and math.isnan(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(map(same_value, a, b))
    return False


class ChangeCallbacks:
    """Callbacks keyed by a dotted path (or ``None`` for any change)."""

    def __init__(self) -> None:
        self._entries: list[tuple[tuple[str, ...] | None, ChangeCallback]] = []

    def add(self, path: str | Sequence[str] | None, callback: ChangeCallback) -> None:
        keys = None if path is None else split_path(path)
        self._entries.append((keys, callback))

    def run(self, old: Snapshot, new: Snapshot) -> None:
        """Call each callback whose value changed; one failing stops nothing."""
        for keys, callback in list(self._entries):
            if keys is None:
                before, after = old, new
            else:
                before = lookup(old.data, keys, None)
                after = lookup(new.data, keys, None)
                if same_value(before, after):
                    continue
            try:
                callback(before, after)
            except KeyboardInterrupt:
                if threading.current_thread() is threading.main_thread():
                    raise
                _log_callback_failure(callback, new.generation)
            # A callback is user code: whatever it raises, SystemExit included,
            # is logged, and the others still run.
            except BaseException:
                _log_callback_failure(callback, new.generation)


def _log_callback_failure(callback: ChangeCallback, generation: int) -> None:
    _logger.exception(
        "hotcfg: change callback %r failed for generation %d",
        getattr(callback, "__qualname__", callback),
        generation,
    )


_LIVE: weakref.WeakSet[Reader] = weakref.WeakSet()


class Reader:
    """Keeps one process's view of the configuration current.

    Args:
        view: this process's mapping of the segment.
        slot: index in the worker table to record applied generations in.
        callbacks: run after each switch, in the thread that switched.
    """

    def __init__(
        self,
        view: SegmentView,
        *,
        slot: int | None = None,
        callbacks: ChangeCallbacks | None = None,
    ) -> None:
        self._view = view
        self._slot = slot
        self._callbacks = callbacks or ChangeCallbacks()
        self._lock = threading.RLock()
        self._stale = True
        self._applied = -1
        self._snapshot = Snapshot(0)
        self._generations = memoryview(view.buffer).cast("Q")
        self._last_error: str | None = None
        _LIVE.add(self)
        self.refresh()

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot applied last (no check of the segment)."""
        return self._snapshot

    def mark_stale(self) -> None:
        """Safe in a signal handler: only sets a flag."""
        self._stale = True

    def refresh(self) -> Snapshot:
        """The current snapshot, switching first if a newer one was published."""
        try:
            if (
                not self._stale
                and self._generations[layout.GENERATION_INDEX] == self._applied
            ):
                return self._snapshot
        except ValueError:  # another thread released the view while remapping
            pass
        return self._update()

    def _update(self) -> Snapshot:
        with self._lock:
            # Cleared before reading: a hint that lands during the read marks
            # the reader stale again, and the next refresh looks once more.
            self._stale = False
            try:
                header, payload = self._read()
                if header.generation == self._applied:
                    return self._snapshot
                new = _payload.decode_payload(
                    payload,
                    generation=header.generation,
                    published_at=header.published_at,
                    source=header.source,
                    lazy=True,
                )
            except (CorruptSegmentError, SegmentError, OSError, ValueError) as exc:
                self._stale = True
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    self._last_error = message
                    _logger.error(
                        "hotcfg: cannot read the segment (%s); keeping generation %d",
                        message,
                        self._snapshot.generation,
                    )
                return self._snapshot
            self._last_error = None
            old, first = self._snapshot, self._applied < 0
            self._snapshot = new
            self._applied = header.generation
            if not first:
                self._callbacks.run(old, new)
            # Recorded last: the worker table's generation and applied_at
            # mean decoded, swapped in and callbacks run (``hotcfg status``
            # and ``wait`` count on it).
            self._record(header.generation)
            return new

    def _read(self) -> tuple[layout.Live, bytes]:
        # The writer may grow the segment and publish beyond this mapping
        # between the capacity check and the copy: remap and read again.
        for _ in range(3):
            self._remap_if_grown()
            buffer = self._view.buffer
            try:
                return layout.read_consistent(
                    buffer, attempts=1000, pause=os.sched_yield
                )
            except CorruptSegmentError:
                if layout.read_capacity(buffer) <= len(buffer):
                    raise
        raise CorruptSegmentError("the segment keeps growing under the reader")

    def _remap_if_grown(self) -> None:
        if layout.read_capacity(self._view.buffer) > len(self._view.buffer):
            self._generations.release()
            try:
                self._view.remap_if_grown()
            finally:
                # Also when the remap failed: a released view would send every
                # later refresh() down the slow path.
                self._generations = memoryview(self._view.buffer).cast("Q")

    def _record(self, generation: int) -> None:
        if self._slot is None:
            return
        layout.write_worker(
            self._view.buffer,
            self._slot,
            pid=os.getpid(),
            generation=generation,
            applied_at=time.time(),
        )

    def close(self) -> None:
        """Release this reader's mapping (and its worker-table slot)."""
        with self._lock:
            if self._slot is not None:
                layout.clear_worker(self._view.buffer, self._slot)
                self._slot = None
            self._generations.release()
            self._view.close()


def _reinit_locks_in_child() -> None:
    for reader in list(_LIVE):
        reader._lock = threading.RLock()


os.register_at_fork(after_in_child=_reinit_locks_in_child)
