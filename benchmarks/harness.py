"""What the propagation and peer benchmarks share: a real Gunicorn, a native
load that records every answer, and the config files they change.

The load is wrk (Debian's package) with ``answers.lua``: one line per
response with its start and end on CLOCK_MONOTONIC, the answering pid and the
value it served. A C client leaves the two cores to the server (a Python
client spends ~0.5 ms of CPU and a share of its own GIL per request, which
showed up in every figure), and the benchmark process itself runs no client
threads, so the write and the segment poll are timed without waiting for a
GIL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
WRITES = ("rename", "inplace", "away")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(port: int) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def workers_of(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def size_label(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def config_text(value: int, size: int) -> str:
    """A YAML config of about ``size`` bytes whose ``value`` is ``value``."""
    lines = [f"value: {value}", "filler:"]
    line = "  key{:07d}: " + "x" * 40
    lines += [line.format(i) for i in range(max(0, size // (len(line) - 1)))]
    return "\n".join(lines) + "\n"


def config_file(directory: str, size: int) -> Path:
    """``directory/conf/config.yaml``, a config of ``size`` bytes, value 0."""
    config = Path(directory) / "conf" / "config.yaml"
    config.parent.mkdir()
    config.write_text(config_text(0, size))
    return config


def prepare_write(config: Path, text: str, how: str) -> Callable[[], None]:
    """The change to time, with whatever it needs done beforehand.

    rename: a temp file renamed over the config (most tools); inplace:
    truncate and write (``echo >``, ``cp``); away: the config renamed out of
    its directory, then written anew (the rename's first half has no pair).
    """
    if how == "rename":
        tmp = config.with_name(f".{config.name}.tmp")
        tmp.write_text(text)
        return lambda: os.replace(tmp, config)
    if how == "inplace":

        def in_place() -> None:
            with open(config, "r+") as f:
                f.truncate(0)
                f.write(text)

        return in_place

    def away() -> None:
        os.replace(config, config.parent.parent / f"{config.name}.away")
        config.write_text(text)

    return away


class Server:
    """A real Gunicorn master with sync workers, in its own process group.

    Args:
        app: the WSGI app (``module:name``), importable from ``pythonpath``.
        workers: sync worker count.
        config: the config file hotcfg (or the peer app) reads.
        env: extra environment (``HOTCFG_*``, ``PEER`` ...).
        hotcfg: run with hotcfg's ``gunicorn_conf.py`` (its hooks).
        worker_nice: ``HOTCFG_WORKER_NICE`` (None: unchanged).
    """

    def __init__(
        self,
        app: str,
        workers: int,
        config: Path,
        *,
        env: Mapping[str, str] | None = None,
        hotcfg: bool = True,
        size: int = 10_000,
        worker_nice: int | None = None,
    ) -> None:
        self.workers = workers
        self.config = config
        self.port = free_port()
        full_env = dict(
            os.environ,
            PYTHONPATH=f"{ROOT / 'benchmarks'}:{ROOT}",
            HOTCFG_SOURCE=str(config),
            HOTCFG_SEGMENT_DIR=str(config.parent / "seg"),
            HOTCFG_MAX_BYTES=str(max(8 << 20, 2 * size)),
            HOTCFG_WORKER_NICE="" if worker_nice is None else str(worker_nice),
        )
        full_env.update(env or {})  # may replace HOTCFG_SOURCE (an etcd key)
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers),
               "-b", f"127.0.0.1:{self.port}", "--no-control-socket"]  # fmt: skip
        if hotcfg:
            cmd += ["-c", str(ROOT / "gunicorn_conf.py")]
        self.proc = subprocess.Popen(
            [*cmd, app],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:  # Ctrl-C while starting: stop it all the same
            self.stop()
            raise

    @property
    def segment_dir(self) -> Path:
        return self.config.parent / "seg"

    def wait_ready(self) -> None:
        """Until every worker is up (after HUP: the old ones are gone)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(workers_of(self.proc.pid)) == self.workers:
                try:
                    fetch(self.port)
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except ProcessLookupError:
            pass


class Load:
    """Steady load from wrk, every answer recorded.

    With ``pause_ms`` each connection waits that long between requests (a
    load below saturation); with 0 the workers are kept busy.

    Running before the write (not started by it) keeps client start-up out
    of the figures; the record tells when each worker first answered a value
    after an instant, and how long the requests took meanwhile.
    """

    def __init__(
        self, port: int, connections: int, pause_ms: int = 0, close: bool = False
    ) -> None:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise SystemExit("wrk is needed: apt-get install wrk")
        self._dir = tempfile.mkdtemp(prefix="hotcfg-load-")
        # (start, end, pid, value) per answered request, in file order
        self.answers: list[tuple[float, float, int, str]] = []
        self._files: dict[str, TextIO] = {}
        self._partial: dict[str, str] = {}
        script = str(ROOT / "benchmarks" / "answers.lua")
        # close: a new connection per request, so that servers whose workers
        # share one listening socket (uvicorn) spread the load over them all
        header = ["-H", "Connection: close"] if close else []
        self._proc = subprocess.Popen(
            [wrk, "-t", str(connections), "-c", str(connections), "-d", "1h", *header,
             "-s", script, f"http://127.0.0.1:{port}/", "--", self._dir, str(pause_ms)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while len(self.answers) < connections and time.monotonic() < deadline:
            self.collect()
            time.sleep(0.01)

    def collect(self) -> None:
        """Read what wrk has written since the last call."""
        for name in os.listdir(self._dir):
            f = self._files.get(name)
            if f is None:
                f = self._files[name] = open(os.path.join(self._dir, name))  # noqa: SIM115
            text = self._partial.pop(name, "") + f.read()
            lines = text.split("\n")
            if lines[-1]:
                self._partial[name] = lines[-1]
            for line in lines[:-1]:
                start, end, pid, value = line.split(" ", 3)
                if pid != "-":
                    self.answers.append((float(start), float(end), int(pid), value))

    def wait_all(
        self, count: int, since: float, value: object = None, timeout: float = 30
    ) -> float:
        """Seconds from ``since`` until ``count`` workers answered (``value``).

        Counting distinct pids, not given ones, lets HUP's new workers count.
        """
        first: dict[int, float] = {}
        index = 0
        want = None if value is None else str(value)
        deadline = time.monotonic() + timeout
        while True:
            self.collect()
            answers = self.answers[index:]
            index += len(answers)
            for _, end, pid, got in answers:
                wanted = end >= since and (want is None or got == want)
                if wanted and end < first.get(pid, float("inf")):
                    first[pid] = end
            if len(first) >= count:
                return max(first.values()) - since
            if time.monotonic() > deadline:
                return float("inf")
            time.sleep(0.001)

    def longest_ms(self, since: float, until: float) -> float:
        """The longest request that ended between ``since`` and ``until``."""
        self.collect()
        spans = [e - s for s, e, _, _ in self.answers if since <= e <= until]
        return max(spans, default=0.0) * 1000

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for f in self._files.values():
            f.close()
        shutil.rmtree(self._dir, ignore_errors=True)
