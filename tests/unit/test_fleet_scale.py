"""Habits that would hurt at fleet scale (docs/decisions/0069): every host
on the first endpoint, reconnections in one burst after a member restarts,
and every record written at once after a put."""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from hotcfg._master import fleet
from hotcfg._sources.etcd import client
from hotcfg._sources.etcd import watch as watch_module
from hotcfg._sources.etcd.access import EtcdAccess
from hotcfg._sources.etcd.client import Unavailable
from hotcfg._sources.etcd.watch import EtcdWatch
from hotcfg._sources.locations import EtcdTarget

ENDPOINTS = (("127.0.0.1", 2379), ("127.0.0.1", 2479), ("127.0.0.1", 2579))
TARGET = EtcdTarget(endpoints=ENDPOINTS, key="/app/config")


def _first_tried() -> tuple[str, int]:
    tried: list[tuple[str, int]] = []

    def attempt(endpoint: tuple[str, int]) -> None:
        tried.append(endpoint)
        if len(tried) < len(ENDPOINTS):
            raise Unavailable("down")

    client.first_answer(TARGET, attempt)
    assert sorted(tried) == sorted(ENDPOINTS)  # round the whole list
    return tried[0]


def test_processes_spread_over_the_endpoints_and_each_keeps_its_start(monkeypatch):
    counts = dict.fromkeys(ENDPOINTS, 0)
    for _ in range(300):
        monkeypatch.setattr(client, "_start", None, raising=False)  # a new process
        first = _first_tried()
        assert _first_tried() == first  # one process keeps its start
        counts[first] += 1
    # 300 processes over 3 members: each gets its share (100 +- far less
    # than 50 but for a one-in-a-billion draw).
    assert all(count >= 50 for count in counts.values()), counts


def test_the_watch_begins_at_the_process_start(monkeypatch):
    monkeypatch.setattr(client, "_start", None, raising=False)
    source = _source()
    watch = EtcdWatch(source, lambda: None)  # type: ignore[arg-type]
    assert watch._stream_at == client.in_process_order(ENDPOINTS)[0]


def _source() -> Any:
    return SimpleNamespace(
        target=TARGET,
        location="etcd://127.0.0.1:2379/app/config",
        revision=7,
        fail=lambda reason, denied=False: None,
    )


def test_the_first_retry_after_a_healthy_stream_spreads_over_a_window():
    random.seed(69)
    watch = EtcdWatch(_source(), lambda: None)  # type: ignore[arg-type]
    firsts = []
    for _ in range(400):
        watch._failures, watch._shaky = 0, False
        with watch._cond:
            firsts.append(watch._failed(Unavailable("reset"), ENDPOINTS[1]))
    window = 1.5
    assert all(0.0 <= d <= window for d in firsts)
    # Full jitter over the whole window, not 50-100 ms.
    assert min(firsts) < 0.05
    assert max(firsts) > 0.75 * window
    assert sum(d > window / 2 for d in firsts) > 100


def test_later_retries_back_off_exponentially_with_full_jitter():
    random.seed(70)
    watch = EtcdWatch(_source(), lambda: None)  # type: ignore[arg-type]
    delays = []
    for _ in range(400):
        watch._failures = 3
        with watch._cond:
            delays.append(watch._failed(Unavailable("reset"), ENDPOINTS[1]))
    cap = 0.05 * 2.0**4
    assert all(0.0 <= d <= cap for d in delays)
    assert min(delays) < cap / 4  # full jitter: down to 0, not half the cap
    assert max(delays) > cap * 0.9


def _record(spread_s: float) -> tuple[fleet.FleetRecord, list[dict[str, Any]], dict]:
    state = {"n": 0}
    record = fleet.FleetRecord(
        TARGET,
        lambda: {"generation": state["n"]},
        access=EtcdAccess(),
        host="h",
        ttl_s=10.0,
        timeout_s=1.0,
        spread_s=spread_s,
    )
    puts: list[dict[str, Any]] = []

    def call(path: str, request: dict[str, Any]) -> dict[str, Any]:
        if path == "/v3/kv/put":
            puts.append(json.loads(base64.b64decode(request["value"])))
        return {}

    record._call = call  # type: ignore[method-assign]
    record.lease = 1
    record._renew_at = time.monotonic() + 3600.0
    return record, puts, state


def test_a_changed_record_waits_a_random_time_and_coalesces_changes():
    random.seed(3)  # a draw well inside the window
    record, puts, state = _record(spread_s=0.6)
    record._step()
    assert [p["generation"] for p in puts] == [0]  # the first put: at once
    state["n"] = 1
    wait = record._step()
    assert [p["generation"] for p in puts] == [0]  # not yet
    assert wait > 0.0
    state["n"] = 2  # a further change within the window joins the put
    for _ in range(100):
        if len(puts) == 2:
            break
        time.sleep(record._step() or 0.01)
    assert [p["generation"] for p in puts] == [0, 2]
    record._step()
    assert len(puts) == 2  # nothing more to put


def test_no_spread_puts_at_once():
    record, puts, state = _record(spread_s=0.0)
    record._step()
    state["n"] = 1
    record._step()
    assert [p["generation"] for p in puts] == [0, 1]


@pytest.mark.parametrize("draw", [0.0, 0.999])
def test_the_spread_is_chosen_within_the_window(monkeypatch, draw):
    record, _, state = _record(spread_s=2.0)
    record._step()
    monkeypatch.setattr(fleet.random, "uniform", lambda a, b: a + (b - a) * draw)
    state["n"] = 1
    assert 0.0 <= record._until_due() <= 2.0


def test_the_listed_order_starts_every_process_at_the_first(monkeypatch):
    monkeypatch.setattr(client, "_listed", True)
    for _ in range(20):
        monkeypatch.setattr(client, "_start", None)
        assert _first_tried() == ENDPOINTS[0]


def test_the_watchers_of_a_failed_member_spread_over_the_others():
    rng = random.Random(70)
    moved = Counter(client.after_failure(ENDPOINTS, 0, rng=rng)[1] for _ in range(300))
    assert set(moved) == set(ENDPOINTS[1:])
    # 300 over the 2 remaining members: each near 150, none all of them.
    assert all(count >= 100 for count in moved.values()), moved


def test_after_a_failure_the_failed_member_is_tried_last_of_the_round():
    for failed in range(len(ENDPOINTS)):
        order = client.after_failure(ENDPOINTS, failed)
        assert order[0] == ENDPOINTS[failed]
        assert sorted(order) == sorted(ENDPOINTS)


def test_the_listed_order_moves_to_the_next_member(monkeypatch):
    monkeypatch.setattr(client, "_listed", True)
    assert client.after_failure(ENDPOINTS, 1) == [*ENDPOINTS[1:], ENDPOINTS[0]]


def test_a_broken_stream_moves_the_watch_to_a_random_other_member(monkeypatch):
    monkeypatch.setattr(watch_module, "retry_delay", lambda *a, **k: 0.0)
    steps: Counter[int] = Counter()
    for _ in range(60):
        monkeypatch.setattr(client, "_start", None, raising=False)
        watch = EtcdWatch(_source(), lambda: None)  # type: ignore[arg-type]
        tried: list[tuple[str, int]] = []

        def broken(
            endpoint: tuple[str, int],
            watch: EtcdWatch = watch,
            tried: list[tuple[str, int]] = tried,
        ) -> None:
            tried.append(endpoint)
            if len(tried) == 2:
                watch._stopping = True
            raise Unavailable("connection reset")

        watch._watch = broken  # type: ignore[method-assign]
        watch._follow()
        steps[(ENDPOINTS.index(tried[1]) - ENDPOINTS.index(tried[0])) % 3] += 1
    # Both other members take some: not all the next one in the list.
    assert set(steps) == {1, 2}, steps
