"""The real Gunicorn service the end-to-end tests start, and its fixtures."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socket_inodes_of(pid):
    """The inodes of the sockets ``pid`` holds open."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            found.add(match.group(1))
    return found


class Service:
    def __init__(
        self,
        tmp_path,
        env_extra=None,
        workers=WORKERS,
        extra_args=(),
        app="tests.apps.probe_app:app",
        config="value: one\n",
        cwd=None,
        wait=True,
        port=None,
    ):
        self.dir = tmp_path / "conf"
        self.dir.mkdir()
        self.config = self.dir / "config.yaml"
        self.config.write_text(config)
        self.segments = Path(os.environ["HOTCFG_SEGMENT_DIR"])
        self.port = port or free_port()  # a port: the same service again
        self.log = tmp_path / "gunicorn.log"
        self.workers = workers
        self._logf = self.log.open("wb")
        env = dict(
            os.environ,
            HOTCFG_SOURCE=str(self.config),
            HOTCFG_DEBOUNCE_MS="20",
            PYTHONPATH=str(ROOT),
        )
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn_conf.py"),
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--no-control-socket",
                "--graceful-timeout",
                "3",
                *extra_args,
                app,
            ],
            env=env,
            cwd=cwd,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:  # False: a service expected to refuse to start
            self.wait_until(lambda: len(self.worker_pids()) == workers, "workers up")

    def get(self, path="/"):
        return json.loads(self.get_text(path))

    def get_text(self, path="/"):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Connection": "close"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode()

    def hotcfg(self, *args, timeout=60):
        """``hotcfg ARGS --dir <this service's segments>``, run as a new
        process, as an operator would."""
        return subprocess.run(
            [sys.executable, "-m", "hotcfg", *args, "--dir", str(self.segments)],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )

    def status(self):
        out = self.hotcfg("status", "--json")
        return json.loads(out.stdout) if out.returncode == 0 else []

    def worker_pids(self):
        try:
            out = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        except OSError:
            return set()
        return {int(p) for p in out.split()}

    def wait_until(self, predicate, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}; log:\n{self.log.read_text()}"
        )

    def all_workers_answer(self, value, timeout=20, key="value", path="/"):
        """Every worker pid has answered ``value`` at ``key`` (proved per pid)."""
        seen = {}

        def done():
            for _ in range(WORKERS * 4):
                answer = self.get(path)
                seen[answer["pid"]] = answer[key]
            pids = self.worker_pids()
            return pids and all(seen.get(pid) == value for pid in pids)

        self.wait_until(done, f"every worker on {value!r} (seen {seen})", timeout)
        return seen

    def write_atomic(self, text):
        tmp = self.dir / ".config.yaml.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.config)

    def write_in_place(self, text):
        with open(self.config, "r+") as f:
            f.truncate(0)
            f.write(text)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._logf.close()


@pytest.fixture
def start_service():
    """Start Services; every one is stopped at teardown, also on failure."""
    started = []

    def start(*args, **kwargs):
        svc = Service(*args, **kwargs)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture
def service(start_service, tmp_path):
    return start_service(tmp_path)
