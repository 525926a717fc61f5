"""Master side: Prometheus metrics at ``HOTCFG_METRICS`` (``host:port``).

One HTTP endpoint in the master, with its own registry and one collector
that reads everything at scrape time: the live generation and the worker
table from the segment, the publish and rejection counts and the
publish-to-applied histogram from the publisher.

Counters alone cannot carry an alert: a rejection is counted once per
read, and a source that stays away is read again only at its next change
or retry, so ``rate()`` shows nothing during a steady outage. The state
gauges (``hotcfg_source_up``, ``hotcfg_serving_cache``,
``hotcfg_rejecting``, ``hotcfg_validating_since_timestamp_seconds``) say
what holds now, from the same state ``hotcfg status`` reads (the
publisher's standing rejection, its cache, the header's validator), so an
alert's ``for:`` measures how long it has held (docs/operations/alerts.md).
Timestamps are exported rather than ages: ``time() - x`` in a rule is
exact at evaluation time, where an age is as old as the last scrape. Nothing is kept per
worker process, so ``prometheus_client``'s multiprocess mode (per-pid files
that pile up under ``max_requests``) is not used, and an application's own
metrics (in its workers, on its own port or path) are untouched.

Needs the ``metrics`` extra (``prometheus_client``), imported only when
``HOTCFG_METRICS`` is set.

Fork story: Gunicorn forks workers from the master while the endpoint
listens. The serving thread does not exist in a child, but the listening
socket would: a child closes its copy (``os.register_at_fork``), so a
worker never holds the port. A scrape connection open at the moment of a
fork stays open in that child until it exits (one descriptor, rare).
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from .._segment import layout
from .._sources.locations import parse_address
from .._version import __version__
from .convergence import Convergence

_logger = logging.getLogger(__name__)
_SERVERS: weakref.WeakSet[Any] = weakref.WeakSet()


class Published(Protocol):
    """What a scrape reads of the publisher (``publisher.Publisher`` is
    one): a protocol, so that this module never imports the publisher,
    which starts it."""

    @property
    def write_lock(self) -> threading.Lock: ...

    segment: Any  # a Segment: ``.buffer`` under the write lock
    publishes: int
    rejections: dict[str, int]
    convergence: Convergence

    @property
    def from_cache(self) -> object | None:
        """The cache's entry while it is served (read-only here)."""

    @property
    def rejecting(self) -> str | None: ...


# The rejection kinds, always exported (0 when none), so that a rule sees
# every series from the first scrape on.
REASONS = ("source", "parse", "validation", "other", "error")


class _Collector:
    """Reads the publisher and its segment at each scrape."""

    def __init__(self, publisher: Published) -> None:
        self._publisher = weakref.ref(publisher)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        publisher = self._publisher()
        if publisher is None:
            return
        # Under the publisher's write lock: a publish that grows the segment
        # closes the old mapping, which must not be in use (BufferError).
        with publisher.write_lock:
            buffer = publisher.segment.buffer
            header = layout.read_header(buffer)
            workers = layout.read_workers(buffer)
        behind = sum(w.generation < header.generation for w in workers)
        rejecting = publisher.rejecting
        build = GaugeMetricFamily(
            "hotcfg_build_info",
            "Always 1: the hotcfg and Python versions of this master.",
            labels=["version", "python"],
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        yield GaugeMetricFamily(
            "hotcfg_generation", "The live generation.", value=header.generation
        )
        yield CounterMetricFamily(
            "hotcfg_publishes",
            "Generations published by this master.",
            value=publisher.publishes,
        )
        rejections = CounterMetricFamily(
            "hotcfg_rejections",
            "Reads of the source that were refused, by reason.",
            labels=["reason"],
        )
        for reason in REASONS:
            rejections.add_metric([reason], publisher.rejections.get(reason, 0))
        yield rejections
        standing = GaugeMetricFamily(
            "hotcfg_rejecting",
            "1 for the reason the source's content is refused now (the "
            "rejection hotcfg status shows), else 0.",
            labels=["reason"],
        )
        for reason in REASONS:
            standing.add_metric([reason], 1 if reason == rejecting else 0)
        yield standing
        yield GaugeMetricFamily(
            "hotcfg_source_up",
            "1 while the last read of the source succeeded (its content may "
            "still be refused), 0 while it is unreachable or refusing.",
            value=0 if rejecting == "source" else 1,
        )
        yield GaugeMetricFamily(
            "hotcfg_serving_cache",
            "1 while the cold-start cache is served (the source was out of "
            "reach at start and has not given good content since).",
            value=0 if publisher.from_cache is None else 1,
        )
        yield GaugeMetricFamily(
            "hotcfg_last_publish_timestamp_seconds",
            "Unix time the live generation was published (0: none).",
            value=header.published_at,
        )
        since = time.time() - header.published_at if header.published_at else 0.0
        yield GaugeMetricFamily(
            "hotcfg_seconds_since_publish",
            "Deprecated: use time() - hotcfg_last_publish_timestamp_seconds. "
            "Seconds since the live generation was published.",
            value=since,
        )
        yield GaugeMetricFamily(
            "hotcfg_workers", "Workers in the worker table.", value=len(workers)
        )
        yield GaugeMetricFamily(
            "hotcfg_workers_behind",
            "Workers that have not applied the live generation.",
            value=behind,
        )
        yield GaugeMetricFamily(
            "hotcfg_validating",
            "1 while a user validator runs, else 0.",
            value=1 if header.validating else 0,
        )
        yield GaugeMetricFamily(
            "hotcfg_validating_since_timestamp_seconds",
            "Unix time the running user validator started (0: none runs).",
            value=header.validating_since if header.validating else 0.0,
        )
        histogram = publisher.convergence.histogram
        yield HistogramMetricFamily(
            "hotcfg_apply_seconds",
            "Seconds from a publish until every worker there at the publish "
            "had applied it.",
            buckets=histogram.cumulative(),
            sum_value=histogram.total_s,
        )


def registry(publisher: Published) -> Any:
    """A registry holding only this publisher's collector: what the
    endpoint serves, and what a test scrapes without a port (the names the
    shipped alert rules may use come from it).

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    from prometheus_client import CollectorRegistry

    found = CollectorRegistry(auto_describe=False)
    found.register(_Collector(publisher))
    return found


def serve(publisher: Published, address: str) -> Any:
    """Start the endpoint; log and return None when it cannot start.

    A master that cannot open its metrics port still serves its workers:
    the reason is logged as an ERROR.
    """
    try:
        from prometheus_client import start_http_server
    except ImportError:
        _logger.error(
            "hotcfg: HOTCFG_METRICS needs prometheus_client: "
            "pip install 'hotcfg[metrics]'; no metrics served"
        )
        return None
    host, port = parse_address(address)
    try:
        server, _thread = start_http_server(
            port, addr=host, registry=registry(publisher)
        )
    except OSError as exc:
        _logger.error(
            "hotcfg: cannot serve metrics on %s (%s); no metrics served",
            address,
            exc.strerror or exc,
        )
        return None
    _SERVERS.add(server)
    _logger.info("hotcfg: metrics at http://%s/metrics", address)
    return server


def stop(server: Any) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def _close_in_child() -> None:
    for server in list(_SERVERS):
        server.socket.close()


os.register_at_fork(after_in_child=_close_in_child)
