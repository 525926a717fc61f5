"""A real etcd server for tests: one member on free 127.0.0.1 ports, over
plain HTTP or TLS, with or without client certificates and auth."""

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

#: etcd's progress-notification interval in the tests (its default is 10 min).
PROGRESS_MS = 500

#: etcd's root user's password once :meth:`Etcd.enable_auth` ran.
ROOT_PASSWORD = "root-secret-7f3a"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """One etcd member with its data in ``directory``; ``stop()`` and
    ``start()`` again keep the data and the ports.

    Args:
        server_cert: an ``Issued`` certificate (``tests.etcd_certs``): the
            member serves clients over TLS with it.
        ca_file: the CA that ``ctl`` and the health check trust; with
            ``client_cert_auth`` the member trusts it for client
            certificates too.
        client_cert: the ``Issued`` client certificate ``ctl`` presents.
        client_cert_auth: the member requires a client certificate.
        extra_args: more flags for etcd (``--auth-token-ttl=2``).
    """

    def __init__(
        self,
        directory,
        binary,
        *,
        server_cert=None,
        ca_file=None,
        client_cert=None,
        client_cert_auth=False,
        extra_args=(),
    ):
        self.binary = binary
        directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory / "data"
        self.log_path = directory / "etcd.log"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.server_cert = server_cert
        self.ca_file = ca_file
        self.client_cert = client_cert
        self.client_cert_auth = client_cert_auth
        self.extra_args = tuple(extra_args)
        self.root_password = None  # set once auth is enabled
        self.proc = None
        self._log = None

    @property
    def scheme(self):
        return "https" if self.server_cert is not None else "http"

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    def source(self, key):
        """The ``HOTCFG_SOURCE`` of ``key`` (which starts with ``/``)."""
        return f"etcd://{self.endpoint}{key}"

    def _tls_flags(self):
        flags = []
        if self.server_cert is not None:
            flags += [
                f"--cert-file={self.server_cert.cert}",
                f"--key-file={self.server_cert.key}",
            ]
        if self.client_cert_auth:
            flags += ["--client-cert-auth", f"--trusted-ca-file={self.ca_file}"]
        return flags

    def _health_context(self):
        if self.server_cert is None:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert is not None:
            context.load_cert_chain(self.client_cert.cert, self.client_cert.key)
        return context

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"{self.scheme}://{self.endpoint}"
        context = self._health_context()
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
                *self._tls_flags(),
                *self.extra_args,
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
                url = f"{client}/health"
                with urllib.request.urlopen(url, timeout=1, context=context) as r:
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

    def ctl(self, *args):
        """Run ``etcdctl`` against this member (over TLS, as root once auth
        is on, as the member needs); its output."""
        etcdctl = shutil.which("etcdctl") or "etcdctl"
        flags = [f"--endpoints={self.scheme}://{self.endpoint}"]
        if self.server_cert is not None:
            flags.append(f"--cacert={self.ca_file}")
        if self.client_cert is not None:
            flags += [
                f"--cert={self.client_cert.cert}",
                f"--key={self.client_cert.key}",
            ]
        if self.root_password is not None:
            flags.append(f"--user=root:{self.root_password}")
        done = subprocess.run(
            [etcdctl, *flags, *args],
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

    def revision(self):
        out = self.ctl("endpoint", "status", "--write-out=fields")
        for line in out.splitlines():
            if line.startswith('"Revision"'):
                return int(line.split(":")[1])
        raise AssertionError(out)

    def enable_auth(self, user, password, prefix):
        """Turn etcd auth on: a root user (:data:`ROOT_PASSWORD`), and
        ``user`` with ``password`` and readwrite on the keys under
        ``prefix``; ``ctl`` is root from now on."""
        self.ctl("user", "add", f"root:{ROOT_PASSWORD}", "--interactive=false")
        self.ctl("user", "add", f"{user}:{password}", "--interactive=false")
        self.ctl("role", "add", "hotcfg-readers")
        self.ctl(
            "role",
            "grant-permission",
            "hotcfg-readers",
            "--prefix=true",
            "readwrite",
            prefix,
        )
        self.ctl("user", "grant-role", user, "hotcfg-readers")
        self.ctl("auth", "enable")
        self.root_password = ROOT_PASSWORD


@contextlib.contextmanager
def running_etcd(directory, **options):
    """An :class:`Etcd` member with ``options``, started, and stopped by pid
    on leaving (also when the test fails); skips without etcd."""
    server = Etcd(directory, etcd_binary(), **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def etcd_binary():
    """The etcd binary, or skip the test saying why."""
    binary = shutil.which("etcd")
    if binary is None:
        pytest.skip("no etcd binary on PATH (Debian: apt-get install etcd-server)")
    if shutil.which("etcdctl") is None:
        pytest.skip("no etcdctl on PATH (Debian: apt-get install etcd-client)")
    return binary
