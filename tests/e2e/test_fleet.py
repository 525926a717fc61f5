"""The fleet view with real Gunicorn masters on one real etcd key:
``hotcfg status --fleet`` shows each master and its workers, a killed
master drops out when its lease expires, a stopped one at once."""

import json
import re
import signal
import socket
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


def two_masters_on_a_put(etcd, start_service, tmp_path, beta_workers):
    """Masters ``alpha`` (2 workers) and ``beta`` following KEY, both on
    its second value ("two"), and that value's revision."""
    etcd.put(KEY, "value: one\n")
    alpha = start_master(start_service, tmp_path, etcd, "alpha", 2)
    beta = start_master(start_service, tmp_path, etcd, "beta", beta_workers)
    etcd.put(KEY, "value: two\n")
    revision = key_revision(etcd)
    wait_for(lambda: on_the_key(etcd, [alpha, beta], revision), "both on the put")
    return alpha, beta, revision


def test_status_fleet_shows_both_masters_and_every_worker_on_the_new_revision(
    etcd, start_service, tmp_path
):
    alpha, beta, revision = two_masters_on_a_put(etcd, start_service, tmp_path, 3)

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
    # TRACK shows once masters report which track they serve (canaries).
    assert [c for c in lines[0].split() if c != "TRACK"] == [
        "HOST",
        "PID",
        "SERVICE",
        "REVISION",
        "SERVING",
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


def test_status_fleet_exits_75_when_etcd_is_unreachable(etcd):
    etcd.stop()
    code, out, err = fleet(etcd)
    assert code == 75
    assert out == ""
    assert etcd.endpoint in err


def rollback(service, name):
    """``hotcfg rollback`` on one service, as an operator on its host runs
    it: the generation published and the one whose content it holds."""
    where = ["--dir", str(service.segments), "--name", name]
    done = subprocess.run(
        [sys.executable, "-m", "hotcfg", "rollback", *where],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    match = re.match(
        r"generation (\d+) is live: the content of generation (\d+)", done.stdout
    )
    assert match, done.stdout
    return int(match.group(1)), int(match.group(2))


def test_status_fleet_names_a_rollback_and_rejections_until_the_key_is_served_again(
    etcd, start_service, tmp_path
):
    alpha, beta, revision = two_masters_on_a_put(etcd, start_service, tmp_path, 2)
    alpha.all_workers_answer("two")
    host = socket.gethostname()
    name = {alpha: f"{host}:{alpha.proc.pid}", beta: f"{host}:{beta.proc.pid}"}

    live, old = rollback(alpha, "alpha")
    alpha.all_workers_answer("one")

    def alpha_applied():
        mine = records(etcd)[alpha.proc.pid]
        return mine["generation"] == live and all(
            w["generation"] == live for w in mine["workers"]
        )

    wait_for(alpha_applied, "alpha's record of the rollback, applied")
    code, out, err = fleet(etcd)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[3] == (
        f"2 masters on 1 host, 4 workers; behind revision {revision}: "
        f"{name[alpha]} (rollback to generation {old})"
    )
    rows = {line.split()[1]: line for line in lines[1:3]}
    assert f" rollback to generation {old} " in rows[str(alpha.proc.pid)]
    # Without TRACK's word (shown once masters report their track).
    beta_row = [w for w in rows[str(beta.proc.pid)].split() if w != "main"]
    assert f"{revision} revision " in " ".join(beta_row)
    code, out, err = fleet(etcd, "--json")
    report = json.loads(out)
    serving = {r["pid"]: r["serving"] for r in report["records"]}
    assert serving == {
        alpha.proc.pid: f"rollback to generation {old}",
        beta.proc.pid: "revision",
    }
    assert report["summary"] == lines[3]

    # A value both refuse: beta serves its older generation, alpha still
    # the rollback; each is named with the revision it rejected.
    etcd.put(KEY, "value: [unclosed\n")
    bad = key_revision(etcd)
    wait_for(lambda: all(r["error"] for r in records(etcd).values()), "both rejections")
    report = json.loads(fleet(etcd, "--json")[1])
    mine = {r["pid"]: r for r in report["records"]}
    assert mine[alpha.proc.pid]["serving"] == (
        f"rollback to generation {old}; rejected revision {bad}"
    )
    assert mine[beta.proc.pid]["serving"] == f"rejected revision {bad}"
    reasons = {
        alpha: f"rollback to generation {old}; rejected revision {bad}, serving "
        f"generation {live}",
        beta: f"rejected revision {bad}, serving generation "
        f"{mine[beta.proc.pid]['generation']}",
    }
    order = sorted((alpha, beta), key=lambda s: s.proc.pid)
    assert report["summary"] == (
        f"2 masters on 1 host, 4 workers; behind revision {bad}: "
        + "; ".join(f"{name[s]} ({reasons[s]})" for s in order)
    )
    out = fleet(etcd)[1]
    assert report["summary"] in out.splitlines()
    assert f"{name[beta]} rejected: " in out

    # The next good value is the key's content on both again.
    etcd.put(KEY, "value: three\n")
    good = key_revision(etcd)
    wait_for(lambda: on_the_key(etcd, [alpha, beta], good), "both on the key")
    alpha.all_workers_answer("three")
    report = json.loads(fleet(etcd, "--json")[1])
    assert [r["serving"] for r in report["records"]] == ["revision", "revision"]
    assert (
        report["summary"] == f"2 masters on 1 host, 4 workers; all on revision {good}"
    )


def test_masters_labelled_h1_h2_h3_on_one_machine_are_three_hosts(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    services = {
        host: start_master(
            start_service, tmp_path, etcd, f"svc-{host}", 2, HOTCFG_HOST=host
        )
        for host in ("h1", "h2", "h3")
    }
    revision = key_revision(etcd)
    wait_for(
        lambda: on_the_key(etcd, services.values(), revision), "three masters on it"
    )

    code, out, err = fleet(etcd, "--json")
    assert code == 0, err
    shown = json.loads(out)
    by_host = {r["host"]: r for r in shown["records"]}
    assert sorted(by_host) == ["h1", "h2", "h3"]
    for host, service in services.items():
        mine = by_host[host]
        assert mine["pid"] == service.proc.pid
        assert mine["service"] == f"svc-{host}"
        assert {w["pid"] for w in mine["workers"]} == service.worker_pids()
        assert len(mine["workers"]) == 2
    assert shown["summary"] == f"3 hosts, 6 workers; all on revision {revision}"

    code, out, err = fleet(etcd)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:4]]
    assert [(row[0], row[1]) for row in rows] == [
        (host, str(services[host].proc.pid)) for host in ("h1", "h2", "h3")
    ]
    assert f"3 hosts, 6 workers; all on revision {revision}" in out
