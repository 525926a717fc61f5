"""What operators see and wait on, under real Gunicorn: the worker table,
``hotcfg wait``, ``hotcfg status`` with several services, the master's
warning about a late worker, and the Prometheus endpoint after each step."""

import json
import os
import re
import signal
import urllib.request

import pytest

from .conftest import free_port, socket_inodes_of

pytestmark = pytest.mark.e2e


def hotcfg(svc, *args, timeout=60):
    return svc.hotcfg(*args, timeout=timeout)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def listening_socket_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def all_applied(svc, generation):
    workers = svc.status()[0]["workers"]
    return len(workers) == svc.workers and all(
        w["generation"] == generation for w in workers
    )


def test_idle_workers_apply_and_wait_says_so(start_service, tmp_path):
    svc = start_service(tmp_path)
    svc.write_atomic("value: two\n")
    # No request is made: each worker applies on the hint alone.
    svc.wait_until(lambda: svc.status()[0]["generation"] == 2, "the publish")
    done = hotcfg(svc, "wait", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert f"converged: {svc.workers} workers on generation 2" in done.stdout
    assert all_applied(svc, 2)


def test_a_stopped_worker_is_named_warned_about_measured_and_catches_up(
    start_service, tmp_path
):
    port = free_port()
    svc = start_service(
        tmp_path,
        env_extra={
            "HOTCFG_METRICS": f"127.0.0.1:{port}",
            "HOTCFG_APPLY_WARN_MS": "300",
        },
    )
    svc.wait_until(lambda: scrape(port)["hotcfg_generation"] == 1, "metrics up")
    before = scrape(port)
    assert before["hotcfg_workers"] == svc.workers
    assert before["hotcfg_publishes_total"] == 1

    # A change: every worker applies it, the histogram counts it.
    svc.write_atomic("value: two\n")
    svc.wait_until(lambda: all_applied(svc, 2), "every worker on generation 2")
    svc.wait_until(
        lambda: scrape(port)["hotcfg_apply_seconds_count"] == 1, "one observation"
    )
    after_change = scrape(port)
    assert after_change["hotcfg_generation"] == 2
    assert after_change["hotcfg_publishes_total"] == 2
    assert after_change["hotcfg_workers_behind"] == 0

    # A rejected change: counted by reason, generation unchanged.
    svc.write_atomic("value: [unclosed\n")
    svc.wait_until(
        lambda: scrape(port)['hotcfg_rejections_total{reason="parse"}'] >= 1,
        "the rejection counted",
    )
    assert scrape(port)["hotcfg_generation"] == 2

    # One worker stopped: wait fails and names it, the master warns.
    stopped = min(svc.worker_pids())
    os.kill(stopped, signal.SIGSTOP)
    try:
        svc.write_atomic("value: three\n")
        svc.wait_until(lambda: svc.status()[0]["generation"] == 3, "the publish")
        behind = hotcfg(svc, "wait", "--timeout", "2")
        assert behind.returncode == 1
        assert f"pid {stopped} on generation 2, behind for" in behind.stderr
        assert "1 of 4 workers have not applied generation 3" in behind.stderr
        svc.wait_until(
            lambda: f"pid {stopped} (on 2)" in svc.log.read_text(), "the warning"
        )
        assert scrape(port)["hotcfg_workers_behind"] == 1
        status = hotcfg(svc, "status")
        assert re.search(
            rf"pid {stopped}\s+generation 2\s+applied \S+\s+behind for", status.stdout
        )
    finally:
        os.kill(stopped, signal.SIGCONT)
    caught_up = hotcfg(svc, "wait", "--timeout", "20")
    assert caught_up.returncode == 0, caught_up.stderr
    svc.wait_until(
        lambda: scrape(port)["hotcfg_workers_behind"] == 0, "no worker behind"
    )
    svc.wait_until(
        lambda: "every worker applied generation 3" in svc.log.read_text(),
        "the catch-up logged",
    )
    caught = scrape(port)
    assert caught["hotcfg_apply_seconds_count"] == 2
    assert caught['hotcfg_apply_seconds_bucket{le="+Inf"}'] == 2
    assert caught["hotcfg_apply_seconds_sum"] >= 0.3  # the stopped worker's wait

    # A rollback: a publish like any other, counted and measured.
    rolled = hotcfg(svc, "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "generation 4 is live: the content of generation 2" in rolled.stdout
    assert hotcfg(svc, "wait", "--timeout", "20").returncode == 0
    svc.wait_until(
        lambda: scrape(port)["hotcfg_apply_seconds_count"] == 3, "the rollback measured"
    )
    final = scrape(port)
    assert final["hotcfg_generation"] == 4
    assert final["hotcfg_publishes_total"] == 4
    assert final["hotcfg_workers_behind"] == 0
    assert final['hotcfg_rejections_total{reason="parse"}'] >= 1
    assert all_applied(svc, 4)

    # The endpoint is the master's alone: no worker holds the port.
    listening = listening_socket_inodes(port)
    assert listening
    for pid in svc.worker_pids():
        assert not socket_inodes_of(pid) & listening, pid


def test_status_and_wait_with_two_services_in_one_directory(start_service, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_service(tmp_path / "a", env_extra={"HOTCFG_NAME": "alpha"})
    second = start_service(tmp_path / "b", env_extra={"HOTCFG_NAME": "beta"})
    listing = hotcfg(first, "status")
    assert listing.returncode == 0
    assert "2 services here" in listing.stdout
    assert re.search(rf"alpha\s+master pid {first.proc.pid}", listing.stdout)
    assert re.search(rf"beta\s+master pid {second.proc.pid}", listing.stdout)
    ambiguous = hotcfg(first, "wait", "--timeout", "1")
    assert ambiguous.returncode == 2
    assert "2 running services" in ambiguous.stderr
    # get, dump, history, diff and rollback pick their service the same way.
    unpicked = hotcfg(first, "get", "value")
    assert unpicked.returncode == 2
    assert "2 running services" in unpicked.stderr
    picked = hotcfg(first, "get", "value", "--name", "beta")
    assert (picked.returncode, picked.stdout.strip()) == (0, '"one"')
    by_pid = hotcfg(first, "status", "--json", "--pid", str(second.proc.pid))
    assert [r["master_pid"] for r in json.loads(by_pid.stdout)] == [second.proc.pid]
    by_name = hotcfg(first, "wait", "--name", "alpha", "--timeout", "20")
    assert by_name.returncode == 0, by_name.stderr
