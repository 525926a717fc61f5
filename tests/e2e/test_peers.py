"""Servers that spawn workers and offer no hooks (``uvicorn --workers``,
``hypercorn --workers``): with only ``HOTCFG_SOURCE`` set, their workers
share one publisher, one segment and one worker table, and another worker
takes over when the publishing one is killed (``_master.election``).

What is checked is read from outside the processes: ``/proc/locks`` (who
holds the publisher lock), ``/proc/<pid>/fd`` (inotify instances), the
files the workers' ``on_change`` callbacks write (tests/apps/peers_app.py),
``hotcfg status --json`` and HTTP answers. Each server runs in a session of
its own, on a free port, and is stopped by pid (its group) at the end."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.peers import (
    alive,
    inotify_fds,
    last_value,
    lock_holder,
    need_proc,
    never_backwards,
    publisher_lock,
    seen,
    wait_until,
    watchers,
    write_atomic,
)

from .conftest import ROOT, free_port
from .test_frameworks import fetch

#: Requests after which a Hypercorn worker is recycled (exits cleanly and is
#: replaced): how its publishing worker is stopped here, see below.
RECYCLE = 25


def server_command(server, workers, port):
    app = "tests.apps.peers_app:app"
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--workers", str(workers),
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                app]  # fmt: skip
    return [sys.executable, "-m", "hypercorn", "--workers", str(workers),
            "--bind", f"127.0.0.1:{port}", "--max-requests", str(RECYCLE),
            app]  # fmt: skip


class Server:
    def __init__(self, tmp_path, server, workers, **env):
        pytest.importorskip(server)
        need_proc()
        self.workers_wanted = workers
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.config = tmp_path / "c.yaml"
        self.config.write_text("value: 1\n")
        self.segment_dir = Path(os.environ["HOTCFG_SEGMENT_DIR"])
        self.port = free_port()
        self.log_path = tmp_path / f"{server}.log"
        environment = dict(
            os.environ,
            HOTCFG_SOURCE=str(self.config),
            HOTCFG_DEBOUNCE_MS="10",
            PEERS_OUT=str(self.out),
            PYTHONPATH=str(ROOT),
            **env,
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                server_command(server, workers, self.port),
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, stopped as one
                cwd=ROOT,
            )
        self.started = set()

    def live(self):
        """The live workers that have read their config."""
        pids = sorted(
            int(p.name.split("-")[1])
            for p in self.out.glob("ready-*")
            if alive(int(p.name.split("-")[1]))
        )
        self.started.update(pids)
        return pids

    def pids(self):
        """The live workers that have read their config, once all are up."""

        def live():
            pids = self.live()
            return pids if len(pids) == self.workers_wanted else None

        try:
            return wait_until(live, f"{self.workers_wanted} workers ready", 60)
        except AssertionError:
            raise AssertionError(self.log_path.read_text()) from None

    def holder(self):
        lock = publisher_lock(self.segment_dir)
        return None if lock is None else lock_holder(lock)

    def last_values(self, pids):
        return {pid: last_value(self.out, pid) for pid in pids}

    def status(self):
        out = subprocess.run(
            [sys.executable, "-m", "hotcfg", "status", "--json"],
            capture_output=True, text=True, timeout=30, check=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        return json.loads(out.stdout)

    def stop(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(15)
        # Workers by pid too: one may have left the group's reach.
        for pid in [*self.started, self.process.pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


@pytest.fixture
def server(tmp_path, request):
    started = []

    def start(name, workers, **env):
        started.append(Server(tmp_path, name, workers, **env))
        return started[-1]

    try:
        yield start
    finally:
        for one in started:
            one.stop()


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("name", "workers"),
    [
        ("uvicorn", 4),
        # Hypercorn ends every worker when one is killed (an exit with an
        # error), and replaces one that exits cleanly: its publishing worker
        # is recycled by --max-requests instead.
        ("hypercorn", 2),
    ],
)
def test_workers_share_one_publisher_and_take_over(server, name, workers):
    svc = server(name, workers)
    pids = svc.pids()
    holder = wait_until(svc.holder, "a publisher lock holder")
    assert holder in pids
    # One watcher on the host: the elected worker (not the supervisor).
    assert watchers([*pids, svc.process.pid]) == [holder]

    # hotcfg status: the elected worker publishes, every worker is listed.
    (report,) = svc.status()
    assert report["role"] == "elected-peer"
    assert report["master_pid"] == holder
    assert sorted(w["pid"] for w in report["workers"]) == pids

    # Idle workers apply a change (their on_change callbacks ran).
    write_atomic(svc.config, "value: 2\n")
    wait_until(lambda: set(svc.last_values(pids).values()) == {2}, "every worker on 2")

    # The publishing worker killed (or recycled) during a stream of changes.
    last = 50
    killed = threading.Event()

    def stop_publisher():
        if name == "uvicorn":
            os.kill(holder, signal.SIGKILL)
            return
        while alive(holder):  # until the requests recycle it
            with contextlib.suppress(OSError):
                fetch(svc.port)

    def edits():
        for value in range(3, last + 1):
            write_atomic(svc.config, f"value: {value}\n")
            if value == 15:
                stop_publisher()
                killed.set()
            time.sleep(0.01)

    writer = threading.Thread(target=edits)
    writer.start()
    try:
        killed.wait(30)
        new_holder = wait_until(
            lambda: (h := svc.holder()) not in (None, holder) and h,
            "another worker holding the publisher lock",
        )
    finally:
        writer.join()
    if name == "uvicorn":  # nothing recycled but the killed one
        assert new_holder in pids
    wait_until(
        lambda: set(svc.last_values(svc.live()).values()) == {last},
        f"every live worker on the last value {last}",
    )
    survivors = svc.live()
    for pid in svc.started:
        assert never_backwards(seen(svc.out, pid)), (pid, seen(svc.out, pid))
    # Every worker answering requests (a respawned one included) serves it.
    deadline = time.monotonic() + 30
    answered = {}
    while time.monotonic() < deadline and (
        len(answered) < len(survivors) or set(answered.values()) != {last}
    ):
        with contextlib.suppress(OSError):
            answer = fetch(svc.port)
            answered[answer["pid"]] = answer["value"]
    assert set(answered.values()) == {last}, answered
    assert inotify_fds(svc.holder()) >= 1
    (report,) = svc.status()
    assert report["master_pid"] == svc.holder()
    listed = {w["pid"] for w in report["workers"]}
    assert set(survivors) <= listed
    assert holder not in listed  # the dead worker's slot was reclaimed


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("name", "workers"), [("uvicorn", 4), ("hypercorn", 2)])
def test_peers_off_runs_each_worker_standalone(server, name, workers):
    svc = server(name, workers, HOTCFG_PEERS="off")
    pids = svc.pids()
    assert watchers(pids) == pids  # each worker watches for itself
    assert publisher_lock(svc.segment_dir) is None
    reports = svc.status()
    assert sorted(r["master_pid"] for r in reports) == pids
    assert {r["role"] for r in reports} == {"standalone"}
    write_atomic(svc.config, "value: 2\n")
    # Standalone workers switch at their next request: every one answers 2.
    deadline = time.monotonic() + 30
    answered = {}
    while time.monotonic() < deadline and (
        len(answered) < workers or set(answered.values()) != {2}
    ):
        with contextlib.suppress(OSError):
            answer = fetch(svc.port)
            answered[answer["pid"]] = answer["value"]
    assert answered == dict.fromkeys(pids, 2)
