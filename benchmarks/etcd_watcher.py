"""Watcher processes for benchmarks/etcd_scale.py: hotcfg's EtcdSource and
Publisher without Gunicorn, one segment each.

    python benchmarks/etcd_watcher.py ENDPOINT KEY DIRECTORY RECORD COUNT PROGRESS_MS

This process imports hotcfg once, then forks COUNT children and prints
their pids on one line. Each child creates its own segment
(``DIRECTORY/w<i>``, name ``w<i>``), publishes the key and follows it
(``Publisher.start()`` and ``start_watching()``: a watch stream, the
publisher's thread), and appends ``<pid> <value> <CLOCK_MONOTONIC ns>`` to
RECORD (``O_APPEND``, one ``write()``) from the publisher's ``notify``,
that is once a generation is in its segment. Forked from one parent that
has imported everything, the children share its pages: each costs its own
threads, sockets and the pages it writes, not an interpreter.

The parent stays until its standard input closes (or SIGTERM, SIGINT),
then stops every child still there by pid. Parent and children ask the
kernel for SIGTERM when their own parent dies, so none outlives a benchmark
that was killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from typing import Any

from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.etcd.source import EtcdSource

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request
        os._exit(1)


class RecordingSource(EtcdSource):
    """The etcd source, remembering the value of the document it loaded
    last (the one the publisher is publishing)."""

    value: Any = None

    def load(self) -> dict[str, Any]:
        document = super().load()
        self.value = document.get("value")
        return document


def child(
    index: int, endpoint: str, key: str, directory: str, record: str, progress: str
) -> None:
    die_with_parent()
    settings = Settings.resolve(
        {},
        source=f"etcd://{endpoint}{key}",
        segment_dir=os.path.join(directory, f"w{index}"),
        name=f"w{index}",
        etcd_progress_ms=progress,
    )
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    source = RecordingSource.from_settings(settings)
    assert isinstance(source, RecordingSource)  # from_settings builds a cls

    def notify() -> None:
        line = f"{os.getpid()} {source.value} {time.monotonic_ns()}\n"
        os.write(fd, line.encode())

    segment = Segment.create(settings.resolved_segment_dir, name=settings.name)
    publisher = Publisher(source, segment, settings, notify=notify, keep_history=False)
    publisher.start()
    publisher.start_watching()
    while True:
        signal.pause()


def main() -> None:
    endpoint, key, directory, record, count, progress = sys.argv[1:]
    die_with_parent()
    children: list[int] = []

    def stop(*_: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # Ctrl-C reaches the whole group
    for index in range(int(count)):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                child(index, endpoint, key, directory, record, progress)
            finally:
                os._exit(1)
        children.append(pid)
    print(" ".join(map(str, children)), flush=True)
    sys.stdin.read()  # until the benchmark closes it
    stop()


if __name__ == "__main__":
    main()
