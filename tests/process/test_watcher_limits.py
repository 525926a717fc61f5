"""The watcher when inotify fails: limits exhausted, and a queue that overflows.

Both run hotcfg in a child process of its own: the inotify limits are per
user, so the child exhausts them as user ``nobody`` and leaves root's (the
other tests') alone; and only a whole stopped process lets the kernel's event
queue overflow.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import watchdog.version

from . import run_script_output, script_command

# watchdog 7 logs an overflowed inotify queue; watchdog 6 (the newest for
# Python 3.10) loses the events without a word, so only the outcome is seen.
LOGS_OVERFLOW = int(watchdog.version.VERSION_MAJOR) >= 7

NOBODY = 65534

EXHAUST = textwrap.dedent(
    """
    import ctypes, errno, logging, os, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from hotcfg import _api, _runtime
    from hotcfg._content import loaders
    import hotcfg._sources.watch  # watchdog's inotify module, imported while root

    # The interpreter and this checkout may live where nobody cannot read
    # (a 0700 clone): import what parsing and the master load lazily while
    # still root.
    loaders.parse(b"warm: up", fmt="yaml", source="warm-up")
    import pkgutil, importlib, hotcfg
    skipped = ("hotcfg.integrations", "hotcfg.cli", "hotcfg.__main__")
    for found in pkgutil.walk_packages(hotcfg.__path__, "hotcfg."):
        if not found.name.startswith(skipped):
            importlib.import_module(found.name)

    os.setgroups([])
    os.setgid(%(uid)d)
    os.setuid(%(uid)d)
    libc = ctypes.CDLL(None, use_errno=True)
    held = 0
    while libc.inotify_init1(os.O_CLOEXEC) >= 0:
        held += 1
    print("instances", held, errno.errorcode[ctypes.get_errno()])

    publisher = _runtime.ensure_publisher()
    before = publisher.generation
    config = os.environ["HOTCFG_SOURCE"]
    with open(config + ".tmp", "w") as f:
        f.write("value: polled\\n")
    os.rename(config + ".tmp", config)
    deadline = time.monotonic() + 30
    while publisher.generation == before and time.monotonic() < deadline:
        time.sleep(0.05)
    print("value", _api.get("value"))
    """
) % {"uid": NOBODY}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_inotify_instances_exhausted_falls_back_to_polling():
    base = Path(tempfile.mkdtemp(prefix="hotcfg-nobody-"))
    try:
        base.chmod(0o755)  # traversable by nobody; pytest's tmp_path is not
        for name in ("conf", "segments"):
            (base / name).mkdir(mode=0o700)
            os.chown(base / name, NOBODY, NOBODY)
        config = base / "conf" / "config.yaml"
        config.write_text("value: start\n")
        os.chown(config, NOBODY, NOBODY)
        out, err = run_script_output(
            EXHAUST,
            config,
            HOTCFG_SEGMENT_DIR=str(base / "segments"),
            HOTCFG_WATCH="auto",
            HOTCFG_POLL_INTERVAL_MS="200",
            HOTCFG_DEBOUNCE_MS="20",
        )
    finally:
        shutil.rmtree(base)
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    instances, held, reason = out.splitlines()[0].split()
    assert instances == "instances"
    assert 0 <= int(held) <= limit
    assert reason == "EMFILE"
    assert "polling it every 200 ms" in err
    assert "fs.inotify.max_user_instances" in err
    assert out.splitlines()[-1] == "value polled"


FLOODED = textwrap.dedent(
    """
    import logging, os, sys, threading, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from hotcfg import _api, _runtime

    overflowed = threading.Event()

    class Overflow(logging.Handler):
        def emit(self, record):
            if "overflowed" in record.getMessage():
                overflowed.set()

    # watchdog only logs an overflow (and loses the events): watch its log.
    logging.getLogger("watchdog.observers.inotify_c").addHandler(Overflow())

    publisher = _runtime.ensure_publisher()
    before = publisher.generation
    print("ready", flush=True)
    sys.stdin.readline()  # stopped, flooded, saved and continued meanwhile
    deadline = time.monotonic() + 30
    while publisher.generation == before and time.monotonic() < deadline:
        time.sleep(0.05)
    print("value", _api.get("value"), flush=True)
    wait_s = 30 if os.environ["LOGS_OVERFLOW"] == "1" else 0
    print("overflowed", overflowed.wait(wait_s), flush=True)
    """
)


def process_state(pid):
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_overflowed_event_queue_loses_no_change(tmp_path):
    directory = tmp_path / "conf"
    directory.mkdir()
    config = directory / "config.yaml"
    config.write_text("value: start\n")
    queue_max = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    argv, env = script_command(
        FLOODED,
        config,
        LOGS_OVERFLOW=str(int(LOGS_OVERFLOW)),
        HOTCFG_WATCH="events",
        HOTCFG_POLL_INTERVAL_MS="300",
        HOTCFG_DEBOUNCE_MS="20",
    )
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 20
        while process_state(proc.pid) != "T":
            assert time.monotonic() < deadline, "the child did not stop"
            time.sleep(0.01)
        # Each file is at least a create and a delete event: more than the
        # kernel queues for a reader that does not read.
        for i in range(queue_max // 2 + 1000):
            junk = directory / f"junk-{i}"
            os.close(os.open(junk, os.O_CREAT | os.O_WRONLY, 0o600))
            os.unlink(junk)
        (directory / "new.tmp").write_text("value: after-overflow\n")
        os.rename(directory / "new.tmp", config)  # its event cannot be queued
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate("go\n", timeout=50)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["value after-overflow", f"overflowed {LOGS_OVERFLOW}"]
