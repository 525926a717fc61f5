"""The pure Debouncer, driven by times given to it (no clock, no thread)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotcfg._sources.debounce import Debouncer


def fires(debouncer, times):
    """The times among ``times`` at which ``due`` fired."""
    return [now for now in times if debouncer.due(now)]


def test_nothing_pending_never_fires():
    debouncer = Debouncer(quiet_ms=100, max_ms=1000)
    assert fires(debouncer, [0.0, 1.0, 100.0]) == []
    assert debouncer.wait_s(5.0) is None


def test_fires_once_quiet():
    debouncer = Debouncer(quiet_ms=100, max_ms=1000)
    debouncer.event(10.0)
    debouncer.event(10.03)
    assert fires(debouncer, [10.05, 10.12, 10.13, 10.14, 11.0, 20.0]) == [10.13]


def test_never_quiet_burst_fires_every_max_ms():
    debouncer = Debouncer(quiet_ms=100, max_ms=1000)
    fired = []
    for step in range(60):  # an event every 50 ms for 3 s: never 100 ms quiet
        now = step * 0.05
        debouncer.event(now)
        fired += fires(debouncer, [now + 0.001])
    assert [round(t, 3) for t in fired] == [1.001, 2.051]
    # The burst's end still fires once it goes quiet.
    assert fires(debouncer, [3.0, 3.06, 4.0]) == [3.06]


def test_one_fire_per_burst():
    debouncer = Debouncer(quiet_ms=50, max_ms=1000)
    for burst in (0.0, 5.0):
        for i in range(20):
            debouncer.event(burst + i * 0.001)
        times = [burst + i * 0.01 for i in range(200)]
        assert len(fires(debouncer, times)) == 1


def test_wait_s():
    debouncer = Debouncer(quiet_ms=100, max_ms=1000)
    debouncer.event(0.0)
    assert debouncer.wait_s(0.0) == pytest.approx(0.1)
    assert debouncer.wait_s(0.04) == pytest.approx(0.06)
    debouncer.event(0.95)  # the max time (1.0) now comes before quiet (1.05)
    assert debouncer.wait_s(0.95) == pytest.approx(0.05)
    assert debouncer.wait_s(2.0) == 0.0  # overdue: never negative
    assert debouncer.due(2.0)
    assert debouncer.wait_s(2.0) is None


def test_quiet_ms_zero_fires_at_once():
    debouncer = Debouncer(quiet_ms=0, max_ms=1000)
    debouncer.event(3.0)
    assert debouncer.wait_s(3.0) == 0.0
    assert fires(debouncer, [3.0, 3.0, 3.5]) == [3.0]


# Times are multiples of 1/1024 s, so differences and their products by 1000
# are exact in binary floating point: the model below then agrees with the
# Debouncer's arithmetic to the last bit, thresholds included.
TICK = 1 / 1024
steps = st.lists(
    st.tuples(st.sampled_from(["event", "due"]), st.integers(0, 3000)),
    max_size=80,
)


@given(
    steps=steps,
    quiet_ms=st.integers(0, 1500),
    max_ms=st.integers(0, 3000),
    start=st.integers(0, 10**6),
)
def test_fires_once_per_burst_and_never_early(steps, quiet_ms, max_ms, start):
    debouncer = Debouncer(quiet_ms=quiet_ms, max_ms=max_ms)
    first = last = None  # the open burst's first and last event, in ticks
    now = start
    for kind, gap in steps:
        now += gap
        if kind == "event":
            debouncer.event(now * TICK)
            first = now if first is None else first
            last = now
            continue
        fired = debouncer.due(now * TICK)
        if first is None:
            assert not fired  # at most once per burst: nothing pending
            continue
        quiet = (now - last) * TICK * 1000 >= quiet_ms
        overdue = (now - first) * TICK * 1000 >= max_ms
        # Never before min(last + quiet, first + max); always from then on.
        assert fired == (quiet or overdue)
        if fired:
            first = last = None
