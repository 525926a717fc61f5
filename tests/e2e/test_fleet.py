"""The fleet view with real Gunicorn masters on one real etcd key:
``hotcfg status --fleet`` shows each master and its workers, a killed
master drops out when its lease expires, a stopped one at once."""

import json
import signal
import subprocess
import sys

import pytest

from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"


def fleet(etcd, *args):
    """``hotcfg status --fleet`` as an operator runs it: exit code and output."""
    done = subprocess.run(
        [sys.executable, "-m", "hotcfg", "status", "--fleet", etcd.source(KEY), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return done.returncode, done.stdout, done.stderr


def records(etcd):
    code, out, err = fleet(etcd, "--json")
    assert code == 0, err
    return {r["pid"]: r for r in json.loads(out)["records"]}


def key_revision(etcd):
    kvs = json.loads(etcd.ctl("get", KEY, "--write-out=json"))["kvs"]
    return int(kvs[0]["mod_revision"])


def start_master(start_service, tmp_path, etcd, name, workers, **env):
    where = tmp_path / name
    where.mkdir()
    return start_service(
        where,
        workers=workers,
        env_extra={
            "HOTCFG_SOURCE": etcd.source(KEY),
            "HOTCFG_NAME": name,
            "HOTCFG_ETCD_PROGRESS_MS": "500",
            "HOTCFG_FLEET_TTL_MS": "2000",
            **env,
        },
    )


def on_the_key(etcd, services, revision):
    """Both masters' records: on ``revision`` or past it, no rejection,
    and every worker Gunicorn runs on the master's live generation."""
    seen = records(etcd)
    for service in services:
        mine = seen.get(service.proc.pid)
        if mine is None or mine["revision"] < revision or mine["error"]:
            return False
        pids = {w["pid"] for w in mine["workers"]}
        if pids != service.worker_pids():
            return False
        if any(w["generation"] != mine["generation"] for w in mine["workers"]):
            return False
    return True


def test_status_fleet_shows_both_masters_and_every_worker_on_the_new_revision(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    alpha = start_master(start_service, tmp_path, etcd, "alpha", 2)
    beta = start_master(start_service, tmp_path, etcd, "beta", 3)
    etcd.put(KEY, "value: two\n")
    revision = key_revision(etcd)
    wait_for(lambda: on_the_key(etcd, [alpha, beta], revision), "both on the put")

    seen = records(etcd)
    for service, name, count in ((alpha, "alpha", 2), (beta, "beta", 3)):
        mine = seen[service.proc.pid]
        assert mine["service"] == name
        assert mine["source"] == etcd.source(KEY)
        assert len(mine["workers"]) == count
        live = [s for s in service.status() if s["master_pid"] == service.proc.pid]
        assert mine["generation"] == live[0]["generation"]
    alpha.all_workers_answer("two")
    beta.all_workers_answer("two")

    code, out, err = fleet(etcd)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "HOST",
        "PID",
        "SERVICE",
        "REVISION",
        "GENERATION",
        "WORKERS",
        "UPDATED",
    ]
    rows = {line.split()[1]: line for line in lines[1:3]}
    assert set(rows) == {str(alpha.proc.pid), str(beta.proc.pid)}
    gen_alpha = seen[alpha.proc.pid]["generation"]
    gen_beta = seen[beta.proc.pid]["generation"]
    assert f"2/2 on gen {gen_alpha}" in rows[str(alpha.proc.pid)]
    assert f"3/3 on gen {gen_beta}" in rows[str(beta.proc.pid)]
    assert lines[3] == f"2 masters on 1 host, 5 workers; all on revision {revision}"


def test_a_killed_master_goes_with_its_lease_and_a_stopped_one_at_once(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    killed = start_master(start_service, tmp_path, etcd, "killed", 2)
    # A lease of a minute: only the revocation at exit removes it soon.
    stopped = start_master(
        start_service, tmp_path, etcd, "stopped", 2, HOTCFG_FLEET_TTL_MS="60000"
    )
    both = {killed.proc.pid, stopped.proc.pid}
    wait_for(lambda: set(records(etcd)) == both, "both records")

    killed.stop(signal.SIGKILL)  # no on_exit: the record waits for its lease
    wait_for(
        lambda: set(records(etcd)) == {stopped.proc.pid},
        "the killed master's lease to expire",
    )

    stopped.stop(signal.SIGTERM)
    assert records(etcd) == {}  # right after it exited, far within its TTL


def test_no_record_with_the_fleet_off(etcd, start_service, tmp_path):
    etcd.put(KEY, "value: one\n")
    off = start_master(start_service, tmp_path, etcd, "off", 2, HOTCFG_FLEET="false")
    on = start_master(start_service, tmp_path, etcd, "on", 2)
    wait_for(lambda: on.proc.pid in records(etcd), "the other master's record")
    off.all_workers_answer("one")
    assert set(records(etcd)) == {on.proc.pid}


def test_status_fleet_exits_2_when_etcd_is_unreachable(etcd):
    etcd.stop()
    code, out, err = fleet(etcd)
    assert code == 2
    assert out == ""
    assert etcd.endpoint in err
