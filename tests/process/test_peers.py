"""Peers: a ``multiprocessing`` spawn pool shares one publisher, one segment
and one worker table, and another process takes over when the publisher is
killed (``_master.election``).

The pool runs in a driver process started in a session of its own, so its
workers are in a process group of their own as a server's would be; every
process is stopped by pid at the end, also when the test fails. What the
test checks it reads from outside: ``/proc/locks`` (the publisher lock's
holder), ``/proc/<pid>/fd`` (inotify instances: file watchers), and the
files the workers' ``on_change`` callbacks write."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.peers import (
    alive,
    inotify_fds,
    kill_all,
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

from . import ROOT

POOL = textwrap.dedent(
    """
    import multiprocessing
    import os
    import sys

    def init(out):
        import hotcfg

        def changed(old, new):
            with open(os.path.join(out, f"gen-{os.getpid()}"), "a") as f:
                f.write(f"{new.generation} {new['value']}\\n")

        hotcfg.on_change()(changed)
        now = hotcfg.snapshot()
        # Apart: the applier may call back before this line is written.
        with open(os.path.join(out, f"init-{os.getpid()}"), "a") as f:
            f.write(f"{now.generation} {now['value']}\\n")
        open(os.path.join(out, f"ready-{os.getpid()}"), "w").close()

    def pid(_):
        return os.getpid()

    if __name__ == "__main__":
        out = sys.argv[1]
        pool = multiprocessing.get_context("spawn").Pool(
            4, initializer=init, initargs=(out,)
        )
        print(os.getpid(), flush=True)
        sys.stdin.read()  # until the test closes it
        pool.terminate()
    """
)


def ready_pids(out):
    return sorted(int(p.name.split("-")[1]) for p in Path(out).glob("ready-*"))


class Pool:
    """The driver and its pool, with what the test needs of them."""

    def __init__(self, tmp_path, config, **env):
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.segment_dir = Path(os.environ["HOTCFG_SEGMENT_DIR"])
        script = tmp_path / "pool.py"
        script.write_text(POOL)
        environment = dict(
            os.environ,
            HOTCFG_SOURCE=str(config),
            HOTCFG_DEBOUNCE_MS="10",
            PYTHONPATH=str(ROOT),
            **env,
        )
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(self.out)],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own, as a server's
        )
        self.started = set()

    def workers(self, n=4):
        """The pids of the ``n`` live workers, once each has read its config."""

        def live():
            pids = [p for p in ready_pids(self.out) if alive(p)]
            self.started.update(pids)
            return pids if len(pids) == n else None

        return wait_until(live, f"{n} pool workers ready")

    def holder(self):
        lock = publisher_lock(self.segment_dir)
        return None if lock is None else lock_holder(lock)

    def stop(self):
        kill_all(self.started | set(ready_pids(self.out)) | {self.process.pid})
        self.process.wait(timeout=10)
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def pool(tmp_path):
    need_proc()
    config = tmp_path / "c.yaml"
    config.write_text("value: 1\n")
    started = Pool(tmp_path, config)
    started.config = config
    try:
        yield started
    finally:
        started.stop()


def last_values(pool, pids):
    return {pid: last_value(pool.out, pid) for pid in pids}


@pytest.mark.timeout(120)
def test_pool_shares_one_publisher_and_takes_over_after_kill_9(pool):
    pids = pool.workers()
    holder = wait_until(pool.holder, "a publisher lock holder")
    assert holder in pids
    # Exactly one watcher among the four: the lock holder.
    assert watchers(pids) == [holder]

    # An edit reaches all four idle processes (their on_change callbacks).
    write_atomic(pool.config, "value: 2\n")
    wait_until(
        lambda: set(last_values(pool, pids).values()) == {2},
        "all four processes on value 2",
    )
    status = subprocess.run(
        [sys.executable, "-m", "hotcfg", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True,
    )
    assert status.returncode == 0
    import json

    (report,) = json.loads(status.stdout)
    assert report["role"] == "elected-peer"
    assert report["master_pid"] == holder
    assert sorted(w["pid"] for w in report["workers"]) == pids

    # A stream of edits; the publisher is killed in the middle of it.
    last = 60
    killed_at = {}

    def edits():
        for value in range(3, last + 1):
            write_atomic(pool.config, f"value: {value}\n")
            if value == 20:
                killed_at["t"] = time.monotonic()
                os.kill(holder, 9)
            time.sleep(0.01)

    writer = threading.Thread(target=edits)
    writer.start()
    # Measured from the kill to a new holder in /proc/locks, looked at
    # every 0.2 ms (printed, never asserted on: the host may be busy).
    deadline = time.monotonic() + 30
    new_holder = None
    while time.monotonic() < deadline:
        current = pool.holder() if "t" in killed_at else None
        if current not in (None, holder):
            new_holder = current
            break
        time.sleep(0.0002)
    took_ms = (time.monotonic() - killed_at["t"]) * 1000.0
    assert new_holder is not None, "no process took the publisher lock over"
    writer.join()
    print(f"takeover: pid {new_holder} holds the lock {took_ms:.2f} ms after kill -9")
    survivors = [p for p in pids if p != holder]
    assert new_holder in survivors, "a survivor takes over, not only a new worker"

    wait_until(
        lambda: set(last_values(pool, survivors).values()) == {last},
        f"the three survivors on the last value {last}",
    )
    for pid in survivors:
        assert never_backwards(seen(pool.out, pid)), seen(pool.out, pid)
    assert never_backwards(seen(pool.out, holder))

    # The pool replaces the killed worker; it joins, on the last content.
    now = pool.workers()
    (fresh,) = set(now) - set(pids)
    wait_until(lambda: last_values(pool, [fresh])[fresh] == last, "the new worker")
    # Still one watcher on the host: the new holder.
    assert watchers(now) == [new_holder]
    assert inotify_fds(new_holder) >= 1


@pytest.mark.timeout(90)
def test_peers_off_keeps_one_publisher_per_process(tmp_path):
    need_proc()
    config = tmp_path / "c.yaml"
    config.write_text("value: 1\n")
    pool = Pool(tmp_path, config, HOTCFG_PEERS="off")
    pool.config = config
    try:
        pids = pool.workers()
        assert watchers(pids) == pids  # each process watches for itself
        assert publisher_lock(pool.segment_dir) is None
        # Today's standalone: a segment each, and no applier (an idle one
        # switches at its next read, not when the file changes).
        assert len(list(pool.segment_dir.glob("*.seg"))) == 4
    finally:
        pool.stop()


@pytest.mark.timeout(90)
def test_a_new_service_removes_what_a_killed_one_left(tmp_path):
    """Every start of a server is a new process group, so a new service:
    what a service killed as a whole left (its workers all ``kill -9``ed,
    as uvicorn's end by a signal without ``atexit``) is removed by the next
    one elected, so nothing accumulates across starts."""
    need_proc()
    config = tmp_path / "c.yaml"
    config.write_text("value: 1\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Pool(tmp_path / "a", config)
    try:
        first.workers()
        lock = publisher_lock(first.segment_dir)
    finally:
        first.stop()
    base = str(lock)[: -len(".publisher")]
    left = sorted(p.name for p in first.segment_dir.glob(Path(base).name + ".*"))
    assert [name.rsplit(".", 1)[1] for name in left] == [
        "publisher", "seg", "slots", "sock"
    ]  # fmt: skip
    second = Pool(tmp_path / "b", config)
    try:
        second.workers()
        assert sorted(first.segment_dir.glob(Path(base).name + ".*")) == []
        assert publisher_lock(second.segment_dir) != lock
    finally:
        second.stop()
