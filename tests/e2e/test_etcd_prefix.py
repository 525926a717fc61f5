"""A real Gunicorn following every key under an etcd prefix."""

import pytest

pytestmark = pytest.mark.e2e

PREFIX = "/app/config/"


def test_a_put_under_the_prefix_reaches_every_worker(etcd, start_service, tmp_path):
    etcd.put("/app/config/value", "one")
    etcd.put("/app/config/db/timeout", "5")
    service = start_service(
        tmp_path,
        env_extra={
            "HOTCFG_SOURCE": etcd.source(PREFIX),
            "HOTCFG_ETCD_PROGRESS_MS": "500",
        },
    )
    service.all_workers_answer("one")
    service.all_workers_answer(5, path="/?key=db.timeout")

    etcd.put("/app/config/db/timeout", "30")
    service.all_workers_answer(30, path="/?key=db.timeout")
    etcd.put("/app/config/db/pool/size", "8")  # a new key, two levels down
    service.all_workers_answer(8, path="/?key=db.pool.size")
    service.all_workers_answer("one")
