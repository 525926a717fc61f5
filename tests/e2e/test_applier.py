"""The applier under real Gunicorn: idle workers switch when hinted, without
any request, and run their callbacks; requests in flight keep their
snapshot while the applier switches under them."""

import threading
from pathlib import Path

import pytest

from .conftest import WORKERS

pytestmark = pytest.mark.e2e

WORKER_CLASSES = {
    "sync": ((), "tests.apps.applier_app:app"),
    "gthread": (("--worker-class", "gthread", "--threads", "4"),
                "tests.apps.applier_app:app"),
    "gevent": (("--worker-class", "gevent", "--worker-connections", "200"),
               "tests.apps.applier_app:app"),
    "asgi": (("--worker-class", "asgi"), "tests.apps.applier_app:asgi_app"),
}  # fmt: skip


def start(start_service, tmp_path, kind, *, workers=WORKERS, env=None):
    if kind == "gevent":
        pytest.importorskip("gevent")
    args, app = WORKER_CLASSES[kind]
    return start_service(
        tmp_path, workers=workers, extra_args=args, app=app, env_extra=env
    )


def table(svc):
    """(generation published, {pid: generation applied}) from ``hotcfg status``."""
    [status] = svc.status()
    return status["generation"], {w["pid"]: w["generation"] for w in status["workers"]}


def all_recorded(svc, generation):
    published, workers = table(svc)
    pids = svc.worker_pids()
    return (
        published == generation
        and set(workers) == pids
        and len(pids) == svc.workers
        and all(g == generation for g in workers.values())
    )


@pytest.mark.parametrize("kind", list(WORKER_CLASSES))
def test_idle_workers_apply_a_change_and_run_callbacks_without_a_request(
    start_service, tmp_path, kind
):
    markers = tmp_path / "markers"
    markers.mkdir()
    svc = start(start_service, tmp_path, kind, env={"APPLIER_MARKERS": str(markers)})
    first, _ = table(svc)
    svc.wait_until(lambda: all_recorded(svc, first), "every worker up and recorded")
    pids = svc.worker_pids()

    svc.write_atomic("value: two\n")  # no request is made from here on

    svc.wait_until(lambda: all_recorded(svc, first + 1), "every worker applied")
    assert svc.worker_pids() == pids  # the same workers switched, none respawned
    for pid in pids:
        # the callback ran in each idle worker, in its applier thread
        assert (markers / f"{pid}-two").read_text() == "hotcfg-applier"


def test_gevent_requests_in_flight_keep_one_generation_while_the_applier_switches(
    start_service, tmp_path
):
    svc = start(start_service, tmp_path, "gevent", workers=2)
    first, _ = table(svc)
    svc.wait_until(lambda: all_recorded(svc, first), "every worker recorded")
    gate = tmp_path / "gate"
    count = 100
    results, errors = [], []

    def client(i):
        try:
            results.append(svc.get(f"/gate?gate={gate}&id={i}"))
        except Exception as exc:  # reported below, with the others
            errors.append(exc)

    clients = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for c in clients:
        c.start()
    try:
        svc.wait_until(
            lambda: all(Path(f"{gate}.{i}.read").exists() for i in range(count)),
            "every request's first read",
        )
        svc.write_atomic("value: two\n")
        # Both workers apply while all 100 requests are still waiting: the
        # applier greenlet runs beside them and does not block the hub.
        svc.wait_until(lambda: all_recorded(svc, first + 1), "every worker applied")
    finally:
        gate.touch()
        for c in clients:
            c.join(30)
    assert not errors, errors
    assert len(results) == count
    for r in results:
        assert r["first"] == r["second"] == "one"
        assert r["first_generation"] == r["second_generation"] == first
    after = svc.get()
    assert (after["value"], after["generation"]) == ("two", first + 1)


def test_with_the_applier_off_idle_workers_wait_for_a_request(start_service, tmp_path):
    """HOTCFG_APPLIER=off keeps the old behaviour: the table moves only when
    a worker serves a request (the benchmark's comparison row)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    svc = start(
        start_service, tmp_path, "sync", workers=1,
        env={"HOTCFG_APPLIER": "off", "APPLIER_MARKERS": str(markers)},
    )  # fmt: skip
    first, _ = table(svc)
    svc.wait_until(lambda: all_recorded(svc, first), "the worker recorded")
    svc.write_atomic("value: two\n")
    svc.wait_until(lambda: table(svc)[0] == first + 1, "the publish")
    [pid] = svc.worker_pids()
    assert table(svc)[1] == {pid: first}
    assert not list(markers.iterdir())
    assert svc.get()["value"] == "two"  # the request switches it
    assert table(svc)[1] == {pid: first + 1}
    assert (markers / f"{pid}-two").read_text() != "hotcfg-applier"
