"""A real Gunicorn following a real etcd key or prefix that holds a value
over ``HOTCFG_MAX_BYTES``: the revision is rejected with its size and the
limit, logged once, and the watch moves on, so the next good put reaches
every worker."""

import pytest

from .test_etcd_faults import last_error

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"
PREFIX = "/app/config/"
LIMIT = 65536
WORKERS = 3


def _env(source):
    return {
        "HOTCFG_SOURCE": source,
        "HOTCFG_MAX_BYTES": str(LIMIT),
        "HOTCFG_ETCD_PROGRESS_MS": "500",
    }


def _log_lines(service, text):
    return [line for line in service.log.read_text().splitlines() if text in line]


def test_an_oversized_value_is_rejected_once_and_the_next_put_served(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    service = start_service(tmp_path, env_extra=_env(etcd.source(KEY)), workers=WORKERS)
    service.all_workers_answer("one")

    big = "value: " + "x" * 120_000 + "\n"
    revision = etcd.put(KEY, big)
    reason = f"{len(big)} bytes, over the {LIMIT}-byte limit"
    service.wait_until(lambda: reason in last_error(service), "the size rejected")
    assert f"revision {revision}" in last_error(service)
    assert "unreachable" not in last_error(service)
    service.all_workers_answer("one")

    etcd.put(KEY, "value: two\n")
    service.all_workers_answer("two")
    service.wait_until(lambda: not last_error(service), "the error cleared")
    assert len(_log_lines(service, reason)) == 1
    assert not _log_lines(service, "lost the etcd watch")


def test_an_oversized_value_under_a_prefix_is_rejected_and_the_next_put_served(
    etcd, start_service, tmp_path
):
    etcd.put(PREFIX + "value", "one")
    service = start_service(
        tmp_path, env_extra=_env(etcd.source(PREFIX)), workers=WORKERS
    )
    service.all_workers_answer("one")

    # Larger than one watch response may be, whole: left out, not held.
    big = "x" * 200_000
    revision = etcd.put(PREFIX + "big", stdin=big)  # too long for an argument
    reason = f"over the {LIMIT}-byte limit"
    service.wait_until(lambda: reason in last_error(service), "the size rejected")
    error = last_error(service)
    assert f"{len(big) + 3} bytes together" in error, error
    assert f"the largest: {PREFIX}big, {len(big)} bytes" in error, error
    assert f"revision {revision}" in error, error
    service.all_workers_answer("one")

    etcd.txn(f"del {PREFIX}big", f"put {PREFIX}value two")
    service.all_workers_answer("two")
    service.wait_until(lambda: not last_error(service), "the error cleared")
    assert len(_log_lines(service, reason)) == 1
    assert not _log_lines(service, "lost the etcd watch")
