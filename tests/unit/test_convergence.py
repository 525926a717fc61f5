"""When every worker applied a publish: the pure rules, and the master's
follower thread on a table the test controls."""

import logging
import threading
import time

import pytest

from hotcfg._master.convergence import (
    BUCKETS_S,
    Convergence,
    Histogram,
    applied_after,
    behind,
)
from hotcfg._segment.layout import WorkerRecord


def record(pid, generation, applied_at):
    return WorkerRecord(
        slot=pid % 100, pid=pid, generation=generation, applied_at=applied_at
    )


def test_behind_names_only_the_waited_for_workers_still_on_an_older_generation():
    records = [record(1, 5, 10.0), record(2, 4, 9.0), record(3, 3, 1.0)]
    assert [r.pid for r in behind(5, [1, 2], records)] == [2]
    assert behind(5, [1], records) == []
    assert behind(5, [9], records) == []  # exited: its slot is gone


def test_applied_after_is_the_last_waited_for_worker_and_ignores_newcomers():
    records = [record(1, 5, 10.25), record(2, 6, 10.5), record(3, 5, 99.0)]
    assert applied_after(5, 10.0, [1, 2], records) == pytest.approx(0.5)
    assert applied_after(5, 10.0, [1, 4], [record(4, 4, 9.0), *records]) is None
    assert applied_after(5, 10.0, [], records) == 0.0


def test_histogram_buckets_are_cumulative_with_inf_last():
    histogram = Histogram()
    for seconds in (0.0005, 0.003, 0.003, 100.0):
        histogram.observe(seconds)
    pairs = dict(histogram.cumulative())
    assert pairs["0.001"] == 1
    assert pairs["0.005"] == 3
    assert pairs[str(BUCKETS_S[-1])] == 3
    assert pairs["+Inf"] == 4 == histogram.count
    assert histogram.total_s == pytest.approx(100.0065)


class Table:
    def __init__(self, records):
        self.records = list(records)
        self.lock = threading.Lock()

    def read(self):
        with self.lock:
            return list(self.records)

    def apply(self, pid, generation, at):
        with self.lock:
            self.records = [
                record(pid, generation, at) if r.pid == pid else r for r in self.records
            ]


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_a_round_is_observed_once_every_worker_applied():
    table = Table([record(1, 1, 0.0), record(2, 1, 0.0)])
    tracker = Convergence(table.read, warn_ms=60_000)
    try:
        published = time.time()
        tracker.published(2, published, [1, 2])
        table.apply(1, 2, published + 0.002)
        time.sleep(0.05)
        assert tracker.histogram.count == 0  # worker 2 is still behind
        table.apply(2, 2, published + 0.004)
        wait_for(lambda: tracker.histogram.count == 1, "the observation")
        assert tracker.histogram.total_s == pytest.approx(0.004, abs=1e-6)
    finally:
        tracker.stop()


def test_a_late_worker_is_warned_about_once_by_pid(caplog):
    caplog.set_level(logging.INFO, logger="hotcfg._master.convergence")
    table = Table([record(7, 1, 0.0), record(8, 1, 0.0)])
    tracker = Convergence(table.read, warn_ms=50)
    try:
        published = time.time()
        tracker.published(2, published, [7, 8])
        table.apply(7, 2, published + 0.001)
        wait_for(lambda: "have not applied generation 2" in caplog.text, "warning")
        time.sleep(0.2)
        assert caplog.text.count("have not applied") == 1
        assert "pid 8 (on 1)" in caplog.text
        assert "pid 7" not in caplog.text
        table.apply(8, 2, time.time())
        wait_for(
            lambda: "every worker applied generation 2" in caplog.text, "caught up"
        )
    finally:
        tracker.stop()


def test_a_publish_with_no_worker_is_not_measured():
    tracker = Convergence(Table([]).read, warn_ms=60_000)
    try:
        tracker.published(1, time.time(), [])
        time.sleep(0.05)
        assert tracker.histogram.count == 0
    finally:
        tracker.stop()


def test_a_newer_publish_replaces_the_open_round():
    table = Table([record(1, 1, 0.0)])
    tracker = Convergence(table.read, warn_ms=60_000)
    try:
        now = time.time()
        tracker.published(2, now, [1])
        tracker.published(3, now + 0.01, [1])
        table.apply(1, 3, now + 0.02)
        wait_for(lambda: tracker.histogram.count == 1, "one observation")
        assert tracker.histogram.total_s == pytest.approx(0.01, abs=1e-6)
    finally:
        tracker.stop()
