"""What the peers' tests look at from outside the processes: who holds the
publisher lock (``/proc/locks``), who watches files (inotify descriptors in
``/proc/<pid>/fd``), and what each process's ``on_change`` callback wrote.
Never hotcfg's own logs."""

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

import pytest

LOCKS = Path("/proc/locks")


def need_proc():
    if not LOCKS.exists() or not Path(f"/proc/{os.getpid()}/fd").is_dir():
        pytest.skip("needs Linux /proc (locks and descriptors of other processes)")


def publisher_lock(segment_dir):
    """The one ``.publisher`` file in ``segment_dir`` (None before any)."""
    found = sorted(Path(segment_dir).glob("*.publisher"))
    assert len(found) <= 1, found
    return found[0] if found else None


def lock_holder(path):
    """The pid holding an exclusive ``flock`` on ``path`` (not a waiter), or None."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return None
    for line in LOCKS.read_text().splitlines():
        fields = line.split()
        if "->" in fields:  # a process blocked waiting for the lock
            continue
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"
        if (
            len(fields) >= 6
            and fields[1] == "FLOCK"
            and fields[3] == "WRITE"
            and int(fields[5].rsplit(":", 1)[1]) == inode
        ):
            return int(fields[4])
    return None


def inotify_fds(pid):
    """How many inotify instances ``pid`` has open (a file watcher's)."""
    count = 0
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for fd in entries:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


def watchers(pids):
    """The pids among ``pids`` that watch a file."""
    return sorted(pid for pid in pids if inotify_fds(pid))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is gone for us.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def seen(log_dir, pid, kind="gen"):
    """(generation, value) pairs ``pid``'s callback wrote, in order (or,
    with ``kind="init"``, what it started on)."""
    path = Path(log_dir) / f"{kind}-{pid}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    pairs = []
    for line in text.splitlines():
        generation, value = line.split()
        pairs.append((int(generation), int(value)))
    return pairs


def last_value(log_dir, pid):
    """The value ``pid`` applied last (0: none yet)."""
    return (seen(log_dir, pid) or seen(log_dir, pid, "init") or [(0, 0)])[-1][1]


def wait_until(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def write_atomic(path, text):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def kill_all(pids):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def never_backwards(pairs):
    """Generations and values only go forward in what one process saw (and
    no content is served twice: each edit writes a new value)."""
    return all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(pairs))
