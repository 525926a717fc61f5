"""When to act on a burst of file events: the :class:`Debouncer` state machine.

PURE: the clock is passed in (``now`` in seconds, any monotonic origin),
never read. Must not import ``os``, ``mmap``, ``signal``, ``threading`` or
``time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Debouncer:
    """Fires once a burst of events has been quiet for ``quiet_ms``.

    An editor's save is several events (create temp, write, rename, chmod);
    acting on the first would read a half-written file or publish twice. A
    burst that never goes quiet (a file rewritten in a loop) still fires
    every ``max_ms``, so changes are never held back indefinitely.
    """

    quiet_ms: float  # the watcher passes HOTCFG_DEBOUNCE_MS: no defaults here
    max_ms: float
    _first: float | None = field(default=None, init=False)
    _last: float = field(default=0.0, init=False)

    def event(self, now: float) -> None:
        """Record one event at ``now``."""
        if self._first is None:
            self._first = now
        self._last = now

    def due(self, now: float) -> bool:
        """True once per burst, when it is time to act; resets the burst."""
        if self._first is None:
            return False
        quiet = (now - self._last) * 1000.0 >= self.quiet_ms
        overdue = (now - self._first) * 1000.0 >= self.max_ms
        if quiet or overdue:
            self._first = None
            return True
        return False

    def wait_s(self, now: float) -> float | None:
        """Seconds until :meth:`due` may fire; ``None`` when nothing is pending."""
        if self._first is None:
            return None
        until_quiet = self._last + self.quiet_ms / 1000.0 - now
        until_max = self._first + self.max_ms / 1000.0 - now
        return max(0.0, min(until_quiet, until_max))
