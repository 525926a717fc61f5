"""What the etcd benchmarks share: one etcd member the script starts and
stops by pid, its gateway, its metrics, and what a process costs in /proc.

The member listens on free 127.0.0.1 ports with its data in a directory
the caller owns (a temporary one), and is stopped by its pid, on failure
and Ctrl-C too (use it as a context manager). Benchmarks never import
tests/: this is the part of tests/etcd.py they need, plus measurement.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import free_port

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_METRIC = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def binaries() -> str:
    """The etcd binary, or exit saying how to install it."""
    binary = shutil.which("etcd")
    if binary is None:
        raise SystemExit("etcd is needed: apt-get install etcd-server")
    return binary


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the ``finally`` blocks that stop
    every started process run for a ``kill`` as for Ctrl-C."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


class Etcd:
    """One etcd member with its data under ``directory``.

    Args:
        directory: where the data and the log go.
        progress_ms: ``--experimental-watch-progress-notify-interval``
            (etcd's default is 10 min; a watcher that asked for progress
            notifications gets one this often while the key is quiet).
    """

    def __init__(self, directory: Path, *, progress_ms: int = 10_000) -> None:
        self.binary = binaries()
        directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory / "etcd-data"
        self.log_path = directory / "etcd.log"
        self.progress_ms = progress_ms
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._put: http.client.HTTPConnection | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def source(self, key: str) -> str:
        """The ``HOTCFG_SOURCE`` of ``key`` (which starts with ``/``)."""
        return f"etcd://{self.endpoint}{key}"

    def __enter__(self) -> Etcd:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.endpoint}"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--name=bench",
                    f"--data-dir={self.data_dir}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=bench={peer}",
                    "--experimental-watch-progress-notify-interval="
                    f"{self.progress_ms}ms",
                    "--logger=zap",
                    "--log-outputs=stderr",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy(client)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, client: str) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                log = self.log_path.read_text()[-2000:]
                raise RuntimeError(f"etcd exited: {log}")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("etcd did not answer in 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._put is not None:
            self._put.close()
            self._put = None
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def call(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """One gateway call on a connection kept open between calls."""
        if self._put is None:
            self._put = http.client.HTTPConnection("127.0.0.1", self.client_port, 10)
        try:
            self._put.request("POST", path, json.dumps(request).encode())
            response = self._put.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self._put.close()
            self._put = None
            raise
        if response.status != 200:
            raise RuntimeError(f"etcd {path}: {response.status} {body[:200]!r}")
        answer: dict[str, Any] = json.loads(body)
        return answer

    def put(self, key: str, value: str) -> int:
        """Put ``value`` at ``key`` through the v3 JSON gateway; the revision."""
        answer = self.call(
            "/v3/kv/put",
            {"key": b64(key.encode()), "value": b64(value.encode())},
        )
        return int(answer["header"]["revision"])

    def metrics(self) -> dict[str, float]:
        """etcd's /metrics, as ``name{labels}`` -> value."""
        url = f"http://{self.endpoint}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        found = {}
        for line in text.splitlines():
            match = _METRIC.match(line)
            if match:
                name, labels, value = match.groups()
                found[f"{name}{{{labels or ''}}}"] = float(value)
        return found

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return status_kb(self.pid, "VmRSS") / 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def summed(metrics: dict[str, float], name: str, **labels: str) -> float:
    """The sum of ``name`` over its series whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for series, value in metrics.items():
        metric, _, rest = series.partition("{")
        if metric == name and all(w in rest for w in want):
            total += value
    return total


def by_method(metrics: dict[str, float], name: str) -> dict[str, float]:
    """``name`` per gRPC method (``KV.Range``, ``Watch.Watch`` ...)."""
    found: dict[str, float] = {}
    for series, value in metrics.items():
        metric, _, rest = series.partition("{")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if metric == name and "grpc_method" in labels:
            service = labels.get("grpc_service", "").rsplit(".", 1)[-1]
            method = f"{service}.{labels['grpc_method']}"
            found[method] = found.get(method, 0.0) + value
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5); the list starts at field 3 (state).
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise KeyError(field)


def pss_kb(pid: int) -> int:
    """The proportional set size of ``pid`` (shared pages split between
    the processes that map them), from /proc/<pid>/smaps_rollup."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise KeyError("Pss")


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets ``pid`` holds open."""
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            found.add(match.group(1))
    return found


def connections_to(pids: list[int], port: int) -> int:
    """Established TCP connections to 127.0.0.1:``port`` held by any of
    ``pids``, each counted once (a descriptor inherited across a fork is
    one connection)."""
    inodes: set[str] = set()
    for pid in pids:
        inodes |= socket_inodes(pid)
    wanted = f"0100007F:{port:04X}"
    held = set()
    with open(f"/proc/{pids[0]}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            # remote address, state 01 (ESTABLISHED), inode
            if fields[2] == wanted and fields[3] == "01" and fields[9] in inodes:
                held.add(fields[9])
    return len(held)
