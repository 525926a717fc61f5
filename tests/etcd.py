"""Real etcd servers for tests on free 127.0.0.1 ports: one member
(:class:`Etcd`), over plain HTTP or TLS, with or without client
certificates and auth, or a cluster of three (:class:`EtcdCluster`)."""

import contextlib
import json
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

    Alone by default; a member of a cluster gets its ``name``, extra
    ``flags`` and, before its first start, ``initial_cluster``.

    Args:
        server_cert: an ``Issued`` certificate (``tests.etcd_certs``): the
            member serves clients over TLS with it.
        ca_file: the CA that ``ctl`` and the health check trust; with
            ``client_cert_auth`` the member trusts it for client
            certificates too.
        client_cert: the ``Issued`` client certificate ``ctl`` presents.
        client_cert_auth: the member requires a client certificate.
        extra_args: more flags for etcd (``--auth-token-ttl=2``).
        progress_ms: its progress-notification interval (None: etcd's
            own, 10 minutes).
    """

    def __init__(
        self,
        directory,
        binary,
        *,
        name="test",
        flags=(),
        server_cert=None,
        ca_file=None,
        client_cert=None,
        client_cert_auth=False,
        extra_args=(),
        progress_ms=PROGRESS_MS,
    ):
        self.binary = binary
        self.progress_ms = progress_ms
        self.name = name
        self.flags = list(flags)
        self.initial_cluster = None  # "name=peer-url,...": None, this one alone
        directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory / "data"
        self.log_path = directory / "etcd.log"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.server_cert = server_cert
        self.ca_file = ca_file
        self.client_cert = client_cert
        self.client_cert_auth = client_cert_auth
        self.flags += list(extra_args)
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

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

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
        self.launch()
        self.wait_healthy()

    def launch(self):
        """Start the process without waiting for it to answer (the members
        of a new cluster answer only once enough of them run)."""
        peer = self.peer_url
        client = f"{self.scheme}://{self.endpoint}"
        cluster = self.initial_cluster or f"{self.name}={peer}"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--name={self.name}",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={cluster}",
                *(
                    [
                        f"--experimental-watch-progress-notify-interval={self.progress_ms}ms"
                    ]
                    if self.progress_ms is not None
                    else []
                ),
                "--logger=zap",
                "--log-outputs=stderr",
                *self._tls_flags(),
                *self.flags,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self):
        """Wait until the member answers ``/health`` (it has a leader)."""
        client = f"{self.scheme}://{self.endpoint}"
        context = self._health_context()
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

    def stop(self, sig=signal.SIGTERM):
        """Stop the process (``SIGKILL``: no leadership transfer, no goodbye)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()

    @contextlib.contextmanager
    def elsewhere(self, meanwhile=None):
        """For the block, the member serves on another client port (for
        ``ctl``): a client of its own port is cut off and misses what
        happens. Stopped first, then ``meanwhile()`` (waiting for the
        client to notice); started on its own port again after the block."""
        own = self.client_port
        self.stop()
        if meanwhile is not None:
            meanwhile()
        self.client_port = free_port()
        self.start()
        try:
            yield self
        finally:
            self.stop()
            self.client_port = own
            self.start()

    def ctl(self, *args, stdin=None):
        """Run ``etcdctl`` against this member (over TLS, as root once auth
        is on, as the member needs; ``stdin``: text it reads, as ``txn``
        does); its output."""
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
            input=stdin,
            capture_output=True,
            text=True,
            env=dict(os.environ, ETCDCTL_API="3"),
            check=False,
            timeout=20,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def put(self, key, value=None, *, stdin=None):
        """Put ``value`` (or ``stdin``, for a value too long for an argument)
        at ``key``; the revision of this put, from its own answer: the store's
        revision read after it may be a master's fleet record's already."""
        args = ["put", "--write-out=json", "--", key]
        reply = self.ctl(*args, *([] if value is None else [value]), stdin=stdin)
        return int(json.loads(reply)["header"]["revision"])

    def txn(self, *operations):
        """Run ``operations`` (``"put /k v"``, ``"del /k"``) as one etcd
        transaction, so they land at one revision; that revision."""
        out = self.ctl(
            "txn",
            "--write-out=json",
            stdin="\n" + "\n".join(operations) + "\n\n\n",
        )
        reply = json.loads(out)
        assert reply.get("succeeded"), out
        return int(reply["header"]["revision"])

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


class EtcdCluster:
    """Three etcd members on free ports, started together, each stoppable and
    startable again (by pid, keeping its data and ports).

    Elections are quick (50 ms heartbeats, 500 ms election timeout), and the
    progress-notification interval is :data:`PROGRESS_MS` as for one member
    unless ``progress_ms`` says otherwise (None: etcd's own, 10 minutes).
    """

    FLAGS = ("--heartbeat-interval=50", "--election-timeout=500")

    def __init__(self, directory, binary, size=3, progress_ms=PROGRESS_MS):
        self.members = [
            Etcd(
                directory / f"m{n}",
                binary,
                name=f"m{n}",
                flags=self.FLAGS,
                progress_ms=progress_ms,
            )
            for n in range(size)
        ]
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = cluster

    def start(self, *members):
        """Start ``members`` (default: all) together, then wait until each
        answers."""
        members = members or self.members
        for member in members:
            member.launch()
        for member in members:
            member.wait_healthy()

    def stop(self):
        for member in self.members:
            member.stop()

    def running(self):
        return [m for m in self.members if m.proc is not None]

    def source(self, key, members=None):
        """The ``HOTCFG_SOURCE`` of ``key`` on ``members`` (default: all, in
        this order)."""
        endpoints = ",".join(m.endpoint for m in members or self.members)
        return f"etcd://{endpoints}{key}"

    def ctl(self, *args, check=True, members=None):
        """Run ``etcdctl`` against ``members`` (default: the running ones);
        its output (with ``check=False``: the finished process)."""
        etcdctl = shutil.which("etcdctl") or "etcdctl"
        endpoints = ",".join(m.endpoint for m in members or self.running())
        done = subprocess.run(
            [etcdctl, f"--endpoints={endpoints}", *args],
            capture_output=True,
            text=True,
            env=dict(os.environ, ETCDCTL_API="3"),
            check=False,
            timeout=20,
        )
        if not check:
            return done
        assert done.returncode == 0, done.stderr
        return done.stdout

    def put(self, key, value):
        """Put ``value`` at ``key``; the new revision."""
        reply = json.loads(self.ctl("put", "--write-out=json", "--", key, value))
        return int(reply["header"]["revision"])

    def mod_revision(self, key):
        """The revision ``key`` was last written at (0: no such key)."""
        reply = json.loads(self.ctl("get", "--write-out=json", "--", key))
        kvs = reply.get("kvs") or []
        return int(kvs[0]["mod_revision"]) if kvs else 0

    def leader(self):
        """The running member that is the leader, or None (none elected, or
        the members do not agree yet)."""
        done = self.ctl("endpoint", "status", "--write-out=json", check=False)
        if done.returncode != 0:
            return None
        ids = {}
        leaders = set()
        for status in json.loads(done.stdout):
            ids[status["Status"]["header"]["member_id"]] = status["Endpoint"]
            leaders.add(status["Status"]["leader"])
        if len(leaders) != 1:
            return None
        endpoint = ids.get(leaders.pop())
        return next((m for m in self.running() if m.endpoint == endpoint), None)


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
