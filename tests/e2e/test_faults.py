"""Faults around a real Gunicorn master: signals at awkward moments, stopped
and killed workers, reload and re-exec of the master, other users, and a
shared-memory file system that is full."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
from http.client import HTTPException
from pathlib import Path

import pytest

from .conftest import ROOT, WORKERS

pytestmark = pytest.mark.e2e


class Load:
    """Requests without pause from a thread; keeps every answer and error."""

    def __init__(self, svc):
        self.svc = svc
        self.answers = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.answers.append(self.svc.get())
            # A worker killed mid-answer cuts the response short: an
            # IncompleteRead (an HTTPException, neither OSError nor ValueError).
            except (OSError, urllib.error.URLError, ValueError, HTTPException) as exc:
                self.errors.append(repr(exc))

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        return self


class Storm:
    """Saves the config the way editors do, over and over, from a thread."""

    def __init__(self, svc, prefix="storm", minimum=20):
        self.svc = svc
        self.prefix = prefix
        self.minimum = minimum
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set() or self.count < self.minimum:
            self.count += 1
            self.svc.write_atomic(f"value: {self.prefix}-{self.count}\n")
            time.sleep(0.03)  # longer than the 20 ms debounce: many publishes

    def stop(self):
        self._stop.set()
        self._thread.join(30)


@contextlib.contextmanager
def running(*things):
    try:
        yield things
    finally:
        for thing in things:
            thing.stop()


def generation(svc):
    reports = svc.status()
    return reports[0]["generation"] if reports else 0


def unexpected_worker_deaths(svc):
    return [
        line
        for line in svc.log.read_text().splitlines()
        if ("was sent" in line and "SIGTERM" not in line) or "exited with code" in line
    ]


def wait_gone(svc, pid):
    def gone():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ")[1].startswith("Z")
        except FileNotFoundError:
            return True

    svc.wait_until(gone, f"pid {pid} gone")


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_hints_during_fork_reach_every_worker(start_service, tmp_path, worker, preload):
    """Publishes land while workers are being forked (TTIN) and while gthread
    workers serve from other threads; no worker dies of a hint."""
    args = ["--worker-class", worker, "--threads", "3"] + (["--preload"] * preload)
    svc = start_service(tmp_path, workers=2, extra_args=args)
    with running(Load(svc)) as (load,), running(Storm(svc)) as (storm,):
        for expected in (3, 4, 5):
            os.kill(svc.proc.pid, signal.SIGTTIN)
            svc.wait_until(lambda n=expected: len(svc.worker_pids()) == n, "TTIN")
    svc.write_atomic("value: last\n")
    svc.all_workers_answer("last")
    assert storm.count >= storm.minimum
    assert load.errors == []
    assert unexpected_worker_deaths(svc) == []


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_hints_while_workers_import_the_app(start_service, tmp_path, worker):
    """SIGURG reaches workers that are still importing the app (no handler of
    ours yet): its default action is to ignore it, and they start current."""
    gate = tmp_path / "gate"
    svc = start_service(
        tmp_path,
        env_extra={"PROBE_IMPORT_GATE": str(gate)},
        extra_args=["--worker-class", worker],
    )
    importing = svc.worker_pids()
    start = generation(svc)
    for i in range(5):
        svc.write_atomic(f"value: early-{i}\n")
        svc.wait_until(lambda i=i: generation(svc) == start + i + 1, "publish")
    gate.touch()
    svc.all_workers_answer("early-4")
    assert svc.worker_pids() == importing  # the same processes, none killed
    assert unexpected_worker_deaths(svc) == []


def test_stopped_worker_catches_up_on_its_next_request(start_service, tmp_path):
    svc = start_service(tmp_path)
    svc.all_workers_answer("one")
    victim = min(svc.worker_pids())
    os.kill(victim, signal.SIGSTOP)
    try:
        start = generation(svc)
        for i in range(4):
            svc.write_atomic(f"value: while-stopped-{i}\n")
            svc.wait_until(lambda i=i: generation(svc) == start + i + 1, "publish")
    finally:
        os.kill(victim, signal.SIGCONT)
    answers = []

    def victim_answered():
        answer = svc.get()
        if answer["pid"] == victim:
            answers.append(answer["value"])
        return len(answers) >= 3

    svc.wait_until(victim_answered, "the stopped worker answers")
    assert answers == ["while-stopped-3"] * 3


def test_killed_workers_do_not_disturb_the_others(start_service, tmp_path):
    """kill -9 of workers that read on every request while the config keeps
    changing: the master respawns, each kill costs at most the one request
    the dead worker was serving, and the worker table forgets the dead."""
    svc = start_service(tmp_path)
    kills = 4
    with running(Load(svc)) as (load,), running(Storm(svc)):
        for _ in range(kills):
            victim = min(svc.worker_pids())
            os.kill(victim, signal.SIGKILL)
            svc.wait_until(
                lambda v=victim: (
                    v not in svc.worker_pids() and len(svc.worker_pids()) == WORKERS
                ),
                "respawn",
            )
    svc.write_atomic("value: after-kills\n")
    svc.all_workers_answer("after-kills")
    assert len(load.errors) <= kills
    assert len(load.answers) > 50
    svc.wait_until(
        lambda: {w["pid"] for w in svc.status()[0]["workers"]} == svc.worker_pids(),
        "worker table matches the live workers",
    )


def test_hup_during_a_storm_of_changes(start_service, tmp_path):
    svc = start_service(tmp_path)
    first = svc.worker_pids()
    with running(Load(svc)) as (load,), running(Storm(svc)):
        for _ in range(2):
            old = svc.worker_pids()
            os.kill(svc.proc.pid, signal.SIGHUP)
            svc.wait_until(
                lambda o=old: (
                    not (svc.worker_pids() & o) and len(svc.worker_pids()) == WORKERS
                ),
                "HUP replaced the workers",
            )
    assert not (svc.worker_pids() & first)
    svc.write_atomic("value: after-hup\n")
    svc.all_workers_answer("after-hup")
    assert load.errors == []
    assert len(list(svc.segments.glob("*.seg"))) == 1


def test_usr2_reexec_during_a_storm_of_changes(start_service, tmp_path):
    """Gunicorn's upgrade: USR2 starts a new master beside the old one, then
    TERM stops the old one. Each master has its own segment; the old one's
    goes with it, and the new workers converge."""
    pidfile = tmp_path / "gunicorn.pid"
    svc = start_service(tmp_path, extra_args=["--pid", str(pidfile)])
    old_master = svc.proc.pid
    with running(Load(svc)) as (load,), running(Storm(svc)):
        os.kill(old_master, signal.SIGUSR2)

        # Until the old master is gone, the new one writes PIDFILE.2.
        second = tmp_path / "gunicorn.pid.2"
        svc.wait_until(lambda: second.read_text().strip(), "new master")
        new = int(second.read_text())
        svc.wait_until(
            lambda: len(children(new)) == WORKERS, "the new master's workers"
        )
        svc.wait_until(lambda: len(list(svc.segments.glob("*.seg"))) == 2, "2 segs")
        os.kill(old_master, signal.SIGTERM)
        svc.proc.wait(30)
    svc.write_atomic("value: after-usr2\n")
    svc.wait_until(lambda: pidfile.read_text().strip() == str(new), "promoted")
    # The new master is the service now; at teardown the old master's process
    # group (which the new one is still in) is killed if anything is left.
    svc.worker_pids = lambda: children(new)
    svc.all_workers_answer("after-usr2")
    assert load.errors == []
    assert len(list(svc.segments.glob("*.seg"))) == 1
    # One service throughout: the new master continued the old one's history
    # in the same files (no WARNING about another master), and holds their
    # lock once the old one is gone.
    svc.wait_until(lambda: "now holds" in svc.log.read_text(), "the files' lock")
    log = svc.log.read_text()
    assert "another running master" not in log
    assert f"replaces (pid {old_master}) holds" in log
    assert len(list(svc.segments.glob("*.history"))) == 1
    os.kill(new, signal.SIGTERM)
    wait_gone(svc, new)
    assert list(svc.segments.glob("*.seg")) == []


def children(pid):
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return {int(p) for p in out.split()}


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def reachable_by_others(path):
    """Whether a user of no group of ours may traverse every directory down
    to ``path`` (permission bits only: no ACLs, no group membership)."""
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


@pytest.fixture
def code_for_others():
    """A copy of the app and of hotcfg that another user can import.

    The workers import the app after dropping to nobody, and a checkout may
    sit where nobody cannot read (any clone under /root, or in a 0700
    ``mktemp -d``). Returns the directory for PYTHONPATH."""
    bases = [tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"]
    base = next((b for b in bases if os.path.isdir(b) and reachable_by_others(b)), None)
    if base is None:
        pytest.skip(f"no directory another user can read among {bases}")
    staging = tempfile.mkdtemp(prefix="hotcfg-nobody-", dir=base)
    try:
        os.chmod(staging, 0o755)
        ignore = shutil.ignore_patterns("__pycache__")
        for package in ("hotcfg", "tests/apps"):
            shutil.copytree(ROOT / package, Path(staging, package), ignore=ignore)
        shutil.copy(ROOT / "tests" / "__init__.py", Path(staging, "tests"))
        for directory, _, files in os.walk(staging):
            os.chmod(directory, 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start workers as nobody")
def test_workers_running_as_another_user(start_service, tmp_path, code_for_others):
    """The root master's 0600 segment is used by workers running as nobody:
    they inherit the open descriptor, so nothing is opened by path."""
    svc = start_service(
        tmp_path,
        extra_args=["--user", "nobody", "--group", "nogroup"],
        env_extra={"PYTHONPATH": code_for_others},
    )
    for pid in svc.worker_pids():
        assert os.stat(f"/proc/{pid}").st_uid == 65534
    svc.all_workers_answer("one")
    svc.write_atomic("value: as-nobody\n")
    svc.all_workers_answer("as-nobody")
    svc.wait_until(
        lambda: (
            all(w["generation"] == generation(svc) for w in svc.status()[0]["workers"])
            and len(svc.status()[0]["workers"]) == WORKERS
        ),
        "every worker recorded its generation",
    )


@pytest.fixture
def small_shm(tmpfs, monkeypatch):
    """A 1.5 MiB tmpfs as the segment directory: room for the first segment
    (1 MiB) but not for doubling it."""
    mount = tmpfs("1536k")
    monkeypatch.setenv("HOTCFG_SEGMENT_DIR", str(mount))
    return mount


def test_full_shared_memory_keeps_the_old_generation(
    small_shm, start_service, tmp_path
):
    svc = start_service(tmp_path)
    with running(Load(svc)) as (load,):
        svc.write_atomic("value: small\n")
        svc.all_workers_answer("small")
        kept = generation(svc)
        svc.write_atomic("value: big\npad: " + "x" * 1_500_000 + "\n")
        svc.wait_until(
            lambda: "cannot reserve" in (svc.status()[0]["last_error"] or ""),
            "the failed publish recorded",
        )
        for _ in range(20):
            answer = svc.get()
            assert (answer["value"], answer["generation"]) == ("small", kept)
        svc.write_atomic("value: smaller-again\n")
        svc.all_workers_answer("smaller-again")
    assert load.errors == []
    assert unexpected_worker_deaths(svc) == []
    assert "cannot reserve" in svc.log.read_text()
    assert [p.name for p in Path(small_shm).glob(".tmp-*")] == []


def test_master_killed_alone_then_restarted(start_service, tmp_path):
    """kill -9 of the master only: its orphaned workers notice, exit and
    release the segment's lock, so the next master removes it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Idle sync workers look for a new parent every timeout / 2 seconds.
    first = start_service(tmp_path / "a", extra_args=["--timeout", "4"])
    first.write_atomic("value: before-kill\n")
    first.all_workers_answer("before-kill")
    orphans = first.worker_pids()
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(30)
    for pid in orphans:
        wait_gone(first, pid)
    second = start_service(tmp_path / "b")
    second.all_workers_answer("one")
    assert len(list(second.segments.glob("*.seg"))) == 1
