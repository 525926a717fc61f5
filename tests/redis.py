"""A real redis-server for tests: a free 127.0.0.1 port, no persistence,
its directory in the test's tmp dir, stopped by pid (also on failure)."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary():
    """The redis-server binary, or skip the test saying why."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH (Debian: apt-get install redis-server)")
    return binary


class Redis:
    """One redis-server with its files in ``directory``."""

    def __init__(self, directory, binary):
        self.directory = directory
        self.binary = binary
        self.port = None
        self.proc = None
        self._log = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._log = (self.directory / "redis.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
                *("--dir", str(self.directory)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def ping(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def wait_ready(self):
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise AssertionError(f"redis-server exited:\n{log}")
            with contextlib.suppress(OSError):
                if self.ping():
                    return
            assert time.monotonic() < deadline, "redis-server did not answer in 30 s"
            time.sleep(0.05)

    def stop(self):
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
        self._log.close()


@contextlib.contextmanager
def running_redis(directory):
    """A started :class:`Redis`, stopped by pid on leaving; skips without
    redis-server."""
    server = Redis(directory, redis_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()
