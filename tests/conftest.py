import asyncio
import os
import subprocess
import time

import pytest

from hotcfg import _runtime
from hotcfg._worker.reader import ChangeCallbacks

#: How long a test waits for this process's reader to see a saved change.
SWITCH_TIMEOUT_S = 20


@pytest.fixture(autouse=True)
def _private_segment_dir(tmp_path, monkeypatch):
    """Each test gets its own segment directory, so nothing leaks between tests."""
    seg = tmp_path / "segments"
    monkeypatch.setenv("HOTCFG_SEGMENT_DIR", str(seg))
    os.makedirs(seg, mode=0o700)
    return seg


#: The variables that send HTTP clients (hotcfg's HTTP source among them)
#: through a proxy; lowercase and uppercase forms are both read.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUEST_METHOD",
)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch):
    """A developer's or a CI machine's proxy settings never change what a
    test sees: every test starts without them (the proxy tests set their
    own), and so do the processes it starts."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a private tmpfs of that size and returns its
    path (skips where mounting is not allowed); unmounted at teardown."""
    mounted = []

    def mount(size):
        path = tmp_path / f"tmpfs-{len(mounted)}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr!r}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", path], check=False)


class FreshHotcfg:
    """hotcfg in the test's own process: save a file as editors do, and wait
    (bounded) until this process's reader has switched to a value."""

    def save(self, path, text):
        partial = f"{path}.tmp"
        with open(partial, "w") as f:
            f.write(text)
        os.replace(partial, path)

    def wait_for(self, key, value):
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while not self._switched(key, value, deadline):
            time.sleep(0.01)

    async def wait_for_async(self, key, value):
        """:meth:`wait_for` that lets the event loop run meanwhile."""
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while not self._switched(key, value, deadline):
            await asyncio.sleep(0.01)

    @staticmethod
    def _switched(key, value, deadline):
        seen = _runtime.reader().refresh().get(key)
        if seen == value:
            return True
        assert time.monotonic() < deadline, f"{key} is still {seen!r}, not {value!r}"
        return False


@pytest.fixture
def fresh_hotcfg(monkeypatch):
    """The test starts as a new process would: no publisher, no reader, no
    change callbacks, settings resolved on first use from the environment the
    test sets (``monkeypatch.setenv("HOTCFG_SOURCE", ...)``). Whatever started
    inside is closed afterwards (watcher stopped, segment removed)."""
    # isolated() keeps callbacks (users register them at import time); a
    # test's own must not outlive it.
    monkeypatch.setattr(_runtime, "_callbacks", ChangeCallbacks())
    with _runtime.isolated(None):
        yield FreshHotcfg()


@pytest.fixture
def etcd(tmp_path):
    """A real etcd member on free 127.0.0.1 ports, data in ``tmp_path``,
    stopped at teardown (also when the test fails); skips without etcd."""
    from tests.etcd import Etcd, etcd_binary

    server = Etcd(tmp_path / "etcd", etcd_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_cluster(tmp_path):
    """A real 3-member etcd cluster on free 127.0.0.1 ports, data in
    ``tmp_path``, every member stopped at teardown (also when the test
    fails); skips without etcd."""
    from tests.etcd import EtcdCluster, etcd_binary

    cluster = EtcdCluster(tmp_path / "etcd-cluster", etcd_binary())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def http_server():
    """A real, scriptable HTTP server on a free 127.0.0.1 port
    (``tests/httpserver.py``), stopped at teardown (also when the test
    fails)."""
    from tests.httpserver import ScriptedServer

    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tinyproxy(tmp_path):
    """``tinyproxy(connect_ports=(...), auth=(user, password))`` starts a
    real tinyproxy on a free 127.0.0.1 port (``tests/tinyproxy.py``),
    stopped by its pid at teardown (also when the test fails); skips
    without the tinyproxy binary."""
    from tests.tinyproxy import Tinyproxy, tinyproxy_binary

    binary = tinyproxy_binary()
    if binary is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy)")
    started = []

    def start(connect_ports=(), auth=None):
        proxy = Tinyproxy(
            tmp_path / f"tinyproxy-{len(started)}",
            binary,
            connect_ports=connect_ports,
            auth=auth,
        )
        started.append(proxy)
        return proxy.start()

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()
