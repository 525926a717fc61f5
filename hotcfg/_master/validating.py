"""Master side: the user's validators, watched while they run.

User code runs in the master (validators, the schema and model checks) and
may hang: a thread cannot be interrupted, so the publishing thread waits in
it while :class:`ValidatorMonitor` makes the wait visible. Its own thread
logs "validating since" every ``HOTCFG_VALIDATOR_WARN_MS``, and the header
names the validator for ``hotcfg status`` (docs/design.md, "User code in
the master"). The generation that is live keeps serving meanwhile.

Imports nothing of the publisher's: the publisher hands in how to record
the running validator and what to say in the log.

Fork story: the monitor thread does not exist in a child, and the child
gets a fresh condition (:meth:`ValidatorMonitor.reset_in_child`): the
master's thread may hold the old one at the fork.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Validating:
    """A validator running now: what ``status`` and the monitor report."""

    name: str
    since: float  # Unix time, for people
    started: float  # monotonic, for the monitor
    warnings: int = 0


class ValidatorMonitor:
    """Knows which validator runs, and logs one that runs for long.

    Args:
        warn_ms: log a validator running this long, and again each time as
            long passes (``HOTCFG_VALIDATOR_WARN_MS``).
        record: called with the validator's name and start (Unix time), and
            with ``("", 0.0)`` when it returns (the segment's header).
        location: the source's name, for the log.
        generation: the live generation, for the log.
    """

    def __init__(
        self,
        *,
        warn_ms: float,
        record: Callable[[str, float], None],
        location: str,
        generation: Callable[[], int],
    ) -> None:
        self._period_s = warn_ms / 1000.0
        self._record = record
        self._location = location
        self._generation = generation
        self._busy = threading.Condition()
        self._validating: Validating | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def current(self) -> Validating | None:
        """The validator running now, if any."""
        return self._validating

    def started(self, name: str) -> None:
        """``name`` starts now (``_content.validate.run_validators``' hook)."""
        since = time.time()
        self._record(name, since)
        with self._busy:
            self._validating = Validating(name, since, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="hotcfg-monitor", daemon=True
                )
                self._thread.start()
            self._busy.notify_all()

    def finished(self) -> None:
        """The running validator returned (or raised)."""
        self._record("", 0.0)
        with self._busy:
            busy, self._validating = self._validating, None
            self._busy.notify_all()
        if busy is not None and busy.warnings:
            _logger.warning(
                "hotcfg: %s returned after %.1f s",
                busy.name,
                time.monotonic() - busy.started,
            )

    def stop(self) -> bool:
        """End the monitor's thread; False if it was stopped already."""
        with self._busy:
            if self._stopped:
                return False
            self._stopped = True
            self._busy.notify_all()
        return True

    def reset_in_child(self) -> None:
        """After a fork, in the child: no thread, a lock nobody holds."""
        self._busy = threading.Condition()
        self._thread = None

    def _watch(self) -> None:
        """Log a validator that runs for long, again each time as long passes.

        The publishing thread is inside the validator and cannot be
        interrupted; this thread only makes the wait visible.
        """
        with self._busy:
            while not self._stopped:
                busy = self._validating
                if busy is None:
                    self._busy.wait()
                    continue
                now = time.monotonic()
                due = busy.started + self._period_s * (busy.warnings + 1)
                if now < due:
                    self._busy.wait(due - now)
                    continue
                busy.warnings += 1
                _logger.warning(
                    "hotcfg: validating %s since %s (%.0f s) in %s; generation %d "
                    "keeps serving, and the newest content is validated next",
                    self._location,
                    time.strftime("%H:%M:%S", time.localtime(busy.since)),
                    now - busy.started,
                    busy.name,
                    self._generation(),
                )
