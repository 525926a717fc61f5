"""hotcfg.resource(): rebuilt on change, old one closed once no request holds it."""

import logging
import math
import threading
from types import MappingProxyType

import pytest

from hotcfg import Snapshot
from hotcfg._worker.resource import Resource


class Pool:
    """Stands for a connection pool: records whether it is used after close."""

    def __init__(self, size):
        self.size = size
        self.closed = False

    def close(self):
        assert not self.closed, "closed twice"
        self.closed = True


class Config:
    """A settable current snapshot, the way the reader hands them out."""

    def __init__(self, size):
        self.snap = Snapshot(1, MappingProxyType({"db": {"size": size}}))

    def set(self, size, generation=None):
        gen = self.snap.generation + 1 if generation is None else generation
        self.snap = Snapshot(gen, MappingProxyType({"db": {"size": size}}))

    def __call__(self):
        return self.snap


def make(config, factory=None, close=Pool.close):
    return Resource("db.size", factory or Pool, close, snapshot=config)


def test_rebuilt_on_change_and_old_closed_after_last_user():
    config = Config(2)
    res = make(config)
    with res.use() as first:
        assert first.size == 2
        config.set(3)
        with res.use() as second:
            assert second.size == 3
            assert not first.closed  # still held by the outer request
        with res.use() as again:
            assert again is second
        assert res.stats().in_use == 1
    assert first.closed
    assert not second.closed
    assert res.stats() == (res.stats().__class__(built=2, closed=1, in_use=0))


def test_idle_old_is_closed_at_once_and_unchanged_values_reuse():
    config = Config(float("nan"))
    res = make(config)
    with res.use() as first:
        pass
    config.set(float("nan"))  # NaN == NaN here: not a change
    with res.use() as same:
        assert same is first
    config.set(4)
    with res.use() as new:
        assert first.closed
        assert new.size == 4
    assert math.isnan(first.size)


def test_a_request_on_an_older_generation_gets_the_live_one():
    config = Config(2)
    res = make(config)
    old_snap = config.snap
    config.set(5)
    with res.use() as live:
        assert live.size == 5
    config.snap = old_snap  # a request pinned before the change
    with res.use() as got:
        assert got is live
    assert res.stats().built == 1


def test_failing_factory_keeps_the_old_logs_once_and_retries_on_change(caplog):
    config = Config(2)

    def factory(size):
        if size == 13:
            raise ConnectionError("cannot connect")
        return Pool(size)

    res = make(config, factory)
    with res.use() as first:
        pass
    config.set(13)
    with caplog.at_level(logging.ERROR, logger="hotcfg"):
        for _ in range(3):
            with res.use() as got:
                assert got is first
    assert len(caplog.records) == 1
    assert "db.size" in caplog.records[0].getMessage()
    assert not first.closed
    config.set(7)
    with res.use() as new:
        assert new.size == 7
    assert first.closed


def test_failing_factory_without_a_live_one_fails_the_request():
    res = make(Config(2), factory=lambda size: 1 / 0)
    with pytest.raises(ZeroDivisionError), res.use():
        pass


def test_failing_close_is_logged_and_counted(caplog):
    config = Config(2)

    def close(pool):
        raise OSError("close failed")

    res = make(config, close=close)
    with res.use():
        pass
    config.set(3)
    with caplog.at_level(logging.ERROR, logger="hotcfg"), res.use() as new:
        assert new.size == 3
    assert "closing the resource" in caplog.text
    assert res.stats().closed == 1


def test_threads_never_use_a_closed_resource():
    """Many threads use it while the value changes: none sees a closed pool,
    and every replaced pool ends closed exactly once."""
    config = Config(0)
    res = make(config)
    made = []
    lock = threading.Lock()

    def factory(size):
        pool = Pool(size)
        with lock:
            made.append(pool)
        return pool

    res._factory = factory
    errors = []
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            with res.use() as pool:
                if pool.closed:
                    errors.append("used after close")
                for _ in range(50):
                    pass
                if pool.closed:
                    errors.append("closed while held")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for size in range(1, 200):
        config.set(size)
        with res.use():
            pass
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors
    stats = res.stats()
    assert stats.in_use == 0
    assert stats.built == len(made)
    assert [p.closed for p in made[:-1]] == [True] * (len(made) - 1)
    assert not made[-1].closed
    assert stats.closed == stats.built - 1
