"""Master side: the two threads of a remote source (etcd, HTTP).

One thread follows the store (a watch stream, a poll); the other calls
``on_change`` (the publisher, whose validators may take long) whenever a
change is due, so a slow publish never stalls the stream or the polls, and
the next publish reads the newest state. Both are daemon threads of the
master; a worker forked meanwhile has neither.

Imports nothing of hotcfg: the sources import it, never the reverse.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_logger = logging.getLogger(__name__)


class Follower:
    """The threads, and what they share under :attr:`_cond`: a change due
    (``_pending``) and stopping (``_stopping``). Subclasses follow the store
    in the method they pass to :meth:`_start`.

    Args:
        location: names the source in the log.
        on_change: the publisher's call, from the publishing thread only.
    """

    def __init__(self, location: str, on_change: Callable[[], object]) -> None:
        self._location = location
        self._on_change = on_change
        self._cond = threading.Condition()
        self._pending = False
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def _start(self, follow: Callable[[], None], name: str) -> None:
        for target, thread_name in (
            (follow, name),
            (self._publish, "hotcfg-publisher"),
        ):
            thread = threading.Thread(target=target, name=thread_name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _join(self, timeout_s: float) -> None:
        """Wait for both threads (after ``_stopping`` is set and they are
        woken), each at most ``timeout_s``."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout_s)

    def _publish(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                self._pending = False
            try:
                self._on_change()
            except BaseException:  # never the main thread: log, keep following
                _logger.exception(
                    "hotcfg: error while handling a change to %s", self._location
                )
