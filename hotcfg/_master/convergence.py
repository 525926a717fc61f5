"""Master side: has every worker applied the generation just published?

After each publish a small thread of the master watches the worker table
until every worker that existed at the publish records the new generation
(or a newer one), then notes how long that took in a histogram (the
``hotcfg_apply_seconds`` metric). A worker still behind after
``HOTCFG_APPLY_WARN_MS`` gets one WARNING naming it; the log says when it
catches up. The measure is the workers' own ``applied_at`` against the
header's ``published_at``, so how often this thread looks only decides how
soon it notices, not what it records.

Workers born after the publish start current by construction (they map the
segment at fork), and their start time says nothing about propagation:
they are left out. So is a worker whose slot was freed (it exited).

Fork story: the thread exists in the master only; :meth:`Convergence.reset_in_child`
gives a forked child fresh, inert state.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._segment.layout import WorkerRecord

_logger = logging.getLogger(__name__)

#: Upper bounds of the histogram's buckets, in seconds (Prometheus ``le``).
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
             2.5, 5.0, 10.0, 30.0, 60.0)  # fmt: skip


@dataclass(slots=True)
class Histogram:
    """Cumulative counts per bucket of :data:`BUCKETS_S`, a sum and a count."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.total_s += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus expects, ``+Inf`` last."""
        pairs, running = [], 0
        for bound, count in zip(
            (*map(str, BUCKETS_S), "+Inf"), self.counts, strict=True
        ):
            running += count
            pairs.append((bound, running))
        return pairs


def behind(
    generation: int, pids: Sequence[int], records: Sequence[WorkerRecord]
) -> list[WorkerRecord]:
    """The records of ``pids`` still on a generation older than ``generation``.

    A pid that no longer has a slot exited and is not waited for.
    """
    wanted = set(pids)
    return [r for r in records if r.pid in wanted and r.generation < generation]


def applied_after(
    generation: int,
    published_at: float,
    pids: Sequence[int],
    records: Sequence[WorkerRecord],
) -> float | None:
    """Seconds from the publish to the last of ``pids`` applying it, or None
    while one of them is behind."""
    if behind(generation, pids, records):
        return None
    times = [r.applied_at for r in records if r.pid in set(pids)]
    return max(0.0, max(times, default=published_at) - published_at)


@dataclass(slots=True)
class _Round:
    generation: int
    published_at: float
    pids: tuple[int, ...]
    warned: bool = False


class Convergence:
    """Follows each publish until every worker applied it.

    Args:
        read_workers: the worker table as it is now.
        warn_ms: how long a worker may stay behind before a WARNING.
    """

    def __init__(
        self, read_workers: Callable[[], list[WorkerRecord]], *, warn_ms: float
    ) -> None:
        self._read_workers = read_workers
        self._warn_s = warn_ms / 1000.0
        self._cond = threading.Condition()
        self._round: _Round | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.histogram = Histogram()

    def published(
        self, generation: int, published_at: float, pids: Sequence[int]
    ) -> None:
        """``generation`` is live: follow it until ``pids`` (the workers in
        the table just before it was committed) applied it. A round still
        open is dropped: its workers now owe the newer generation. With no
        worker yet (the first publish, before Gunicorn forks) there is
        nothing to follow or to measure."""
        with self._cond:
            self._round = (
                _Round(generation, published_at, tuple(pids)) if pids else None
            )
            if self._round is None:
                return
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._run, name="hotcfg-convergence", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def reset_in_child(self) -> None:
        self._cond = threading.Condition()
        self._thread = None
        self._round = None
        self._stopping = True

    def _run(self) -> None:
        pause = 0.005
        while True:
            with self._cond:
                while self._round is None and not self._stopping:
                    self._cond.wait()
                    pause = 0.005
                if self._stopping:
                    return
                current = self._round
            assert current is not None
            try:
                done = self._check(current)
            except Exception:  # a torn table read, a closed segment: look again
                _logger.debug("hotcfg: reading the worker table failed", exc_info=True)
                done = False
            with self._cond:
                if done and self._round is current:
                    self._round = None
                    continue
                # Soon after a publish most workers are switching: look often,
                # then less and less (at most twice a second).
                self._cond.wait(pause)
                pause = min(pause * 2, 0.5)

    def _check(self, current: _Round) -> bool:
        records = self._read_workers()
        took = applied_after(
            current.generation, current.published_at, current.pids, records
        )
        if took is not None:
            self.histogram.observe(took)
            if current.warned:
                _logger.info(
                    "hotcfg: every worker applied generation %d, %.1f s after "
                    "its publish",
                    current.generation,
                    took,
                )
            return True
        late = time.time() - current.published_at
        if not current.warned and late >= self._warn_s:
            current.warned = True
            laggards = behind(current.generation, current.pids, records)
            _logger.warning(
                "hotcfg: %d worker(s) have not applied generation %d %.1f s after "
                "its publish: %s",
                len(laggards),
                current.generation,
                late,
                ", ".join(f"pid {r.pid} (on {r.generation})" for r in laggards),
            )
        return False
