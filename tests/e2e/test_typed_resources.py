"""Typed configs, stateful resources and gevent workers under real Gunicorn."""

import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_model_violation_rejected_last_good_serves(start_service, tmp_path):
    svc = start_service(tmp_path, env_extra={"HOTCFG_MODEL": "tests.apps.models:Probe"})
    svc.all_workers_answer("one")
    svc.write_atomic("value: two\npool: yes\n")  # YAML's yes is a bool, not an int
    svc.wait_until(
        lambda: (
            "at pool: expected int, got bool" in (svc.status()[0]["last_error"] or "")
        ),
        "rejection",
    )
    assert svc.get()["value"] == "one"
    svc.write_atomic("value: two\npool: 3\n")
    svc.all_workers_answer("two")


def db_config(tmp_path, size):
    return f"db:\n  url: sqlite:///{tmp_path}/pool.db\n  pool_size: {size}\n"


def latest_per_worker(svc, want, what):
    """Sample answers until every worker's latest one satisfies ``want``."""
    latest = {}

    def done():
        for _ in range(16):
            answer = svc.get()
            latest[answer["pid"]] = answer
        pids = svc.worker_pids()
        return pids and all(p in latest and want(latest[p]) for p in pids)

    svc.wait_until(done, f"{what} (latest: {latest})", timeout=40)
    return {p: latest[p] for p in svc.worker_pids()}


def test_pool_resized_under_load_without_a_failed_request(start_service, tmp_path):
    svc = start_service(
        tmp_path,
        workers=2,
        extra_args=("--worker-class", "gthread", "--threads", "4"),
        app="examples.resource_app:app",
        config=db_config(tmp_path, 2),
    )
    latest_per_worker(svc, lambda a: a["pool_size"] == 2, "pools of 2")
    failures, answers = [], []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                answer = svc.get("/?hold_ms=20")
                assert answer["answer"] == 1
                answers.append(answer)
            except Exception as exc:  # any failed request is a test failure
                failures.append(repr(exc))

    clients = [threading.Thread(target=load) for _ in range(6)]
    for c in clients:
        c.start()
    try:
        for size in (3, 5, 4):
            svc.write_atomic(db_config(tmp_path, size))
            latest_per_worker(
                svc, lambda a, s=size: a["pool_size"] == s, f"pools of {size}"
            )
    finally:
        stop.set()
        for c in clients:
            c.join(30)
    assert not failures
    assert len({a["pid"] for a in answers}) == 2
    final = latest_per_worker(
        svc, lambda a: a["pool_size"] == 4 and a["in_use"] == 0, "idle pools of 4"
    )
    for answer in final.values():
        assert answer["built"] == 4  # 2, then 3, 5 and 4
        assert answer["closed"] == answer["disposed"] == 3  # every replaced pool


GEVENT = ("--worker-class", "gevent", "--worker-connections", "100")


def test_gevent_many_concurrent_requests_one_generation_each(start_service, tmp_path):
    """20 requests in flight in one gevent worker straddle a change: each keeps
    its own snapshot, and a request started after the change sees the new one."""
    pytest.importorskip("gevent")
    svc = start_service(
        tmp_path, workers=1, extra_args=GEVENT, app="tests.apps.hint_app:app"
    )
    svc.all_workers_answer("one")
    results, markers = [], [tmp_path / f"go{i}" for i in range(20)]
    clients = [
        threading.Thread(target=lambda m=m: results.append(svc.get(f"/twice?wait={m}")))
        for m in markers
    ]
    for c in clients:
        c.start()
    try:
        svc.wait_until(
            lambda: all(Path(f"{m}.read").exists() for m in markers),
            "every request's first read",
        )
        svc.write_atomic("value: newer\n")
        svc.wait_until(lambda: svc.get()["value"] == "newer", "a new request")
    finally:
        for m in markers:
            m.touch()
        for c in clients:
            c.join(30)
    assert len(results) == 20
    assert len({r["pid"] for r in results}) == 1  # all in one worker
    for r in results:
        assert r["first"] == r["second"] == "one"
        assert r["first_generation"] == r["second_generation"]
    assert svc.get()["value"] == "newer"


def test_gevent_worker_keeps_the_hint_handler(start_service, tmp_path):
    pytest.importorskip("gevent")
    svc = start_service(
        tmp_path, workers=1, extra_args=GEVENT, app="tests.apps.hint_app:app"
    )
    answer = svc.get("/hint")
    assert answer["handler"] == "_on_hint"
    assert answer["stale"] is True
