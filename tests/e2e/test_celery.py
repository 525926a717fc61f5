"""A real Celery worker (prefork, 4 children) with hotcfg installed, on a
real redis-server the test starts: the parent publishes, every child reads.

The app is ``tests/apps/celery_app.py``; each worker gets a unique node
name and queue, and is stopped by pid (SIGTERM, then SIGKILL) at the end.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hotcfg._segment.shm import SegmentView
from tests.redis import running_redis

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = 4

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def redis_server(tmp_path):
    with running_redis(tmp_path / "redis") as server:
        yield server


class Worker:
    """``celery -A tests.apps.celery_app worker --pool prefork``."""

    def __init__(self, tmp_path, redis, extra_args=(), pool="prefork", env=None):
        self.dir = tmp_path / "worker"
        self.dir.mkdir()
        self.config = self.dir / "config.yaml"
        self.config.write_text("value: one\n")
        self.record = self.dir / "record.txt"
        self.segments = Path(os.environ["HOTCFG_SEGMENT_DIR"])
        self.log = tmp_path / "celery.log"
        self.queue = f"hotcfg-{uuid.uuid4().hex[:12]}"
        self.env = dict(
            os.environ,
            HOTCFG_SOURCE=str(self.config),
            HOTCFG_DEBOUNCE_MS="20",
            PYTHONPATH=str(ROOT),
            CELERY_TEST_REDIS=redis.url,
            CELERY_TEST_RECORD=str(self.record),
            **(env or {}),
        )
        self._logf = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "celery", "-A", "tests.apps.celery_app", "worker"),
                *("--pool", pool, "--concurrency", str(CHILDREN)),
                *("--loglevel", "INFO", "--without-mingle", "--without-gossip"),
                *("--hostname", f"{self.queue}@localhost", "-Q", self.queue),
                *extra_args,
            ],
            env=self.env,
            cwd=str(self.dir),
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from celery import Celery

        self.client = Celery("hotcfg-test-client", broker=redis.url, backend=redis.url)
        if pool == "prefork" and "CELERY_TEST_START_METHOD" not in self.env:
            self.wait_until(
                lambda: len(self.attached_pids()) == CHILDREN, "4 children attached"
            )

    def send(self, name, *args, **kwargs):
        return self.client.send_task(name, args, kwargs, queue=self.queue)

    def hotcfg(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "hotcfg", *args, "--dir", str(self.segments)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )

    def status(self):
        out = self.hotcfg("status", "--json")
        return json.loads(out.stdout) if out.returncode == 0 else []

    def attached_pids(self):
        """The pids in the worker table that are the parent's children."""
        reports = self.status()
        if len(reports) != 1:
            return set()
        return {w["pid"] for w in reports[0]["workers"] if w["alive"]} & (
            self.child_pids()
        )

    def child_pids(self):
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return {int(p) for p in out.split()}

    def live_generation(self):
        """The generation the parent published last (the segment header)."""
        (path,) = self.segments.glob("*.seg")
        view = SegmentView.open(str(path))
        try:
            return view.header().generation
        finally:
            view.close()

    def change(self, text):
        """Save a new config and wait until the parent published it."""
        before = self.live_generation()
        tmp = self.dir / ".config.yaml.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.config)
        self.wait_until(lambda: self.live_generation() > before, "the publish")
        return self.live_generation()

    def recorded(self):
        """``{pid: [generations applied]}`` from the children's on_change."""
        seen = {}
        if self.record.exists():
            for line in self.record.read_text().splitlines():
                pid, generation = map(int, line.split())
                seen.setdefault(pid, []).append(generation)
        return seen

    def wait_until(self, predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, ValueError):
                if predicate():
                    return
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}; log:\n{self.log.read_text()}"
        )

    def stop(self):
        with contextlib.suppress(ProcessLookupError):
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children left behind
        self._logf.close()


@pytest.fixture
def start_worker(tmp_path, redis_server):
    started = []

    def start(**kwargs):
        worker = Worker(tmp_path, redis_server, **kwargs)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def test_a_change_reaches_every_idle_child(start_worker):
    worker = start_worker()
    children = worker.child_pids()
    assert len(children) == CHILDREN
    generation = worker.change("value: two\n")

    # No task runs: each child's applier switched on the parent's hint and
    # ran its on_change callback.
    def all_switched():
        seen = worker.recorded()
        return {p for p, gens in seen.items() if generation in gens} == children

    worker.wait_until(all_switched, f"4 children recording {generation}")
    assert len(worker.recorded()) == CHILDREN
    result = worker.send("read").get(timeout=30)
    assert (result["value"], result["generation"]) == ("two", generation)


def test_a_task_keeps_its_snapshot_across_a_change(start_worker, tmp_path):
    worker = start_worker()
    marker = tmp_path / "first-read-done"
    pending = worker.send("read_twice", str(marker))
    worker.wait_until(marker.exists, "the task's first read")
    generation = worker.change("value: two\n")
    result = pending.get(timeout=30)

    assert result["first"]["value"] == result["second"]["value"] == "one"
    assert result["first"]["generation"] == result["second"]["generation"]
    assert result["latest"] == generation  # the task knew it was published
    fresh = worker.send("read").get(timeout=30)
    assert (fresh["value"], fresh["generation"]) == ("two", generation)


def test_recycled_children_start_current(start_worker):
    worker = start_worker(extra_args=("--max-tasks-per-child", "1"))
    sent = []
    for n in range(8):
        live = worker.change(f"value: v{n}\n")
        sent += [(live, worker.send("read")) for _ in range(2)]
    results = [(live, pending.get(timeout=60)) for live, pending in sent]

    pids = {result["pid"] for _, result in results}
    assert len(pids) == len(results)  # one task per child: every one new
    for live, result in results:
        assert result["generation"] >= live, (live, result)

    # The children now running were forked after the last change, into the
    # slots of those recycled: four rows, each on the last generation.
    last = sent[-1][0]

    def table_is_current():
        (report,) = worker.status()
        rows = {(w["pid"], w["generation"]) for w in report["workers"]}
        return rows == {(pid, last) for pid in worker.child_pids()}

    worker.wait_until(table_is_current, "4 current rows in the worker table")


def test_status_shows_the_parent_and_its_children(start_worker):
    worker = start_worker()
    (report,) = worker.status()
    assert report["role"] == "celery-parent"
    assert report["master_pid"] == worker.proc.pid
    assert report["master_alive"]
    assert {w["pid"] for w in report["workers"]} == worker.child_pids()
    assert all(w["generation"] == report["generation"] for w in report["workers"])

    text = worker.hotcfg("status")
    assert text.returncode == 0, text.stderr
    assert f"pid {worker.proc.pid} (running), Celery worker's parent" in text.stdout
    assert f"workers     {CHILDREN}, {CHILDREN} on generation" in text.stdout
    print(text.stdout)

    # The parent keeps history, and answers on its control socket.
    generation = worker.change("value: two\n")
    history = worker.hotcfg("history", "--json")
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert [(r["generation"], r["live"]) for r in rows] == [
        (1, False),
        (generation, True),
    ]

    worker.stop()  # worker_shutdown removes the segment
    assert worker.proc.returncode == 0, worker.log.read_text()
    assert list(worker.segments.glob("*.seg")) == []


@pytest.mark.parametrize(
    ("pool", "env"),
    [("solo", {}), ("threads", {}), ("gevent", {"HOTCFG_WATCH": "poll"})],
)
def test_pools_that_run_tasks_in_the_parent(start_worker, pool, env):
    worker = start_worker(pool=pool, env=env)
    first = worker.send("read").get(timeout=30)
    assert first["pid"] == worker.proc.pid  # the task ran in the parent
    assert first["value"] == "one"
    generation = worker.change("value: two\n")
    second = worker.send("read").get(timeout=30)
    assert (second["value"], second["generation"]) == ("two", generation)
    (report,) = worker.status()
    assert report["role"] == "celery-parent"
    assert report["master_pid"] == worker.proc.pid
    assert report["workers"] == []  # no child to hint

    worker.stop()  # worker_shutdown removes the segment
    assert worker.proc.returncode == 0, worker.log.read_text()
    assert list(worker.segments.glob("*.seg")) == []


def test_spawned_children_elect_a_publisher_and_say_so(start_worker):
    worker = start_worker(env={"CELERY_TEST_START_METHOD": "spawn"})
    result = worker.send("read").get(timeout=60)
    assert result["value"] == "one"
    assert result["pid"] in worker.child_pids()
    worker.wait_until(
        lambda: "did not inherit the worker's segment" in worker.log.read_text(),
        "the warning",
    )
    reports = worker.status()
    roles = {r["master_pid"]: r["role"] for r in reports}
    assert roles[worker.proc.pid] == "celery-parent"
    # The spawned children that read share one publisher elected among them,
    # apart from the parent's segment (which they never inherited).
    elected = [r for r in reports if r["role"] == "elected-peer"]
    assert len(elected) == 1, reports
    sharing = {elected[0]["master_pid"]} | {w["pid"] for w in elected[0]["workers"]}
    assert result["pid"] in sharing


def test_a_worker_without_a_source_does_not_start(tmp_path, redis_server):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CELERY_TEST_REDIS=redis_server.url)
    env.pop("HOTCFG_SOURCE", None)
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "celery", "-A", "tests.apps.celery_app", "worker"),
            *("--pool", "prefork", "--concurrency", "2"),
            *("--hostname", f"nosource-{uuid.uuid4().hex[:8]}@localhost"),
        ],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "hotcfg: no configuration source in the Celery worker" in done.stderr
    assert list(Path(os.environ["HOTCFG_SEGMENT_DIR"]).glob("*.seg")) == []
