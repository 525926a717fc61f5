"""A real tinyproxy for the proxy tests: its own process, config and log.

``Tinyproxy(directory, ...)`` writes a config (listening on a free
127.0.0.1 port, allowing 127.0.0.1 only, CONNECT to the given ports only,
optionally Basic auth, logging at Info to a file in ``directory``) and
``start()`` runs ``tinyproxy -d`` (in the foreground: the process started
is the proxy, stopped by its pid). A system tinyproxy the Debian package
may have started (port 8888) is never used. The ``tinyproxy`` fixture of
``tests/process/test_http_proxy.py`` skips when the binary is missing.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time

STARTUP_TIMEOUT_S = 10


def tinyproxy_binary():
    """The tinyproxy executable, or None."""
    return shutil.which("tinyproxy") or next(
        (
            p
            for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tinyproxy:
    """One tinyproxy process.

    Args:
        directory: where its config and log go (created).
        binary: the executable.
        connect_ports: the ports CONNECT may reach (none: CONNECT refused).
        auth: ``(user, password)`` to require Basic auth, or None.
    """

    def __init__(self, directory, binary, *, connect_ports=(), auth=None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.port = _free_port()
        self.log = self.dir / "tinyproxy.log"
        self.config = self.dir / "tinyproxy.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "Allow 127.0.0.1",
            f'LogFile "{self.log}"',
            "LogLevel Info",
            "MaxClients 20",
            *(f"ConnectPort {port}" for port in connect_ports),
        ]
        if not connect_ports:
            lines.append("ConnectPort 1")  # some port: CONNECT elsewhere refused
        if auth is not None:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        self.config.write_text("\n".join(lines) + "\n")
        self.proc = None
        self._out = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._out = (self.dir / "tinyproxy.out").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, "-d", "-c", str(self.config)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tinyproxy exited: {self.output()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            time.sleep(0.05)
        raise AssertionError(f"tinyproxy did not listen in time: {self.output()}")

    def output(self):
        parts = []
        for path in (self.dir / "tinyproxy.out", self.log):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def log_lines(self, word):
        """The log's lines that hold ``word``."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if word in line]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._out is not None:
            self._out.close()
            self._out = None
