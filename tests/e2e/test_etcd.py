"""A real Gunicorn following a key on a real etcd."""

import pytest

from .conftest import socket_inodes_of

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"


def etcd_connections(pid, port):
    """The TCP connections ``pid`` holds to 127.0.0.1:``port``."""
    inodes = socket_inodes_of(pid)
    wanted = f"0100007F:{port:04X}"
    held = []
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[2] == wanted and fields[9] in inodes:
                held.append(fields[9])
    return held


def assert_only_the_master_holds_etcd(service, port):
    """The master holds a connection to etcd; no worker holds one."""
    assert etcd_connections(service.proc.pid, port)
    for pid in service.worker_pids():
        assert etcd_connections(pid, port) == [], pid


def test_a_put_reaches_every_worker_and_no_worker_holds_etcd(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    service = start_service(
        tmp_path,
        env_extra={
            "HOTCFG_SOURCE": etcd.source(KEY),
            "HOTCFG_ETCD_PROGRESS_MS": "500",
        },
    )
    service.all_workers_answer("one")
    etcd.put(KEY, "value: two\n")
    service.all_workers_answer("two")

    # The master's watch stream was open when the workers forked.
    assert_only_the_master_holds_etcd(service, etcd.client_port)
