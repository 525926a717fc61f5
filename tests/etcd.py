"""A real etcd server for tests: one member on free 127.0.0.1 ports."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

#: etcd's progress-notification interval in the tests (its default is 10 min).
PROGRESS_MS = 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """One etcd member with its data in ``directory``; ``stop()`` and
    ``start()`` again keep the data and the ports."""

    def __init__(self, directory, binary):
        self.binary = binary
        directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory / "data"
        self.log_path = directory / "etcd.log"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc = None
        self._log = None

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    def source(self, key):
        """The ``HOTCFG_SOURCE`` of ``key`` (which starts with ``/``)."""
        return f"etcd://{self.endpoint}{key}"

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.endpoint}"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--name=test",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                f"--experimental-watch-progress-notify-interval={PROGRESS_MS}ms",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                log = self.log_path.read_text()[-2000:]
                raise AssertionError(f"etcd exited: {log}")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "etcd did not answer in 30 s"
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
        if self._log is not None:
            self._log.close()

    def ctl(self, *args, stdin=None):
        """Run ``etcdctl`` against this member (``stdin``: text it reads, as
        ``txn`` does); its output."""
        etcdctl = shutil.which("etcdctl") or "etcdctl"
        done = subprocess.run(
            [etcdctl, f"--endpoints={self.endpoint}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=dict(os.environ, ETCDCTL_API="3"),
            check=False,
            timeout=20,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def put(self, key, value):
        """Put ``value`` at ``key``; the new revision."""
        self.ctl("put", "--", key, value)
        return self.revision()

    def txn(self, *operations):
        """Run ``operations`` (``"put /k v"``, ``"del /k"``) as one etcd
        transaction, so they land at one revision; the new revision."""
        out = self.ctl("txn", stdin="\n" + "\n".join(operations) + "\n\n\n")
        assert out.startswith("SUCCESS"), out
        return self.revision()

    def revision(self):
        out = self.ctl("endpoint", "status", "--write-out=fields")
        for line in out.splitlines():
            if line.startswith('"Revision"'):
                return int(line.split(":")[1])
        raise AssertionError(out)


def etcd_binary():
    """The etcd binary, or skip the test saying why."""
    binary = shutil.which("etcd")
    if binary is None:
        pytest.skip("no etcd binary on PATH (Debian: apt-get install etcd-server)")
    if shutil.which("etcdctl") is None:
        pytest.skip("no etcdctl on PATH (Debian: apt-get install etcd-client)")
    return binary
