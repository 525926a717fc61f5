"""``hotcfg agent`` publishing for app processes that only read
(``HOTCFG_PEERS=read``), all real processes sharing a ``HOTCFG_NAME``: one
file watcher on the host, every idle reader switched by the agent's wake-up,
``hotcfg status`` naming the agent and its readers, a restarted agent
followed, and readers in another PID namespace (which no signal of the
agent's can reach) woken by their socket in the segment directory.

What the tests check they read from outside the processes: ``/proc/locks``,
``/proc/<pid>/fd``, ``hotcfg status --json``, the files the readers'
``on_change`` callbacks write (tests/apps/agent_reader.py) and their HTTP
answers. Every process is stopped by pid at the end, also on failure."""

import json
import os
import signal
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.peers import (
    alive,
    kill_all,
    last_value,
    lock_holder,
    need_proc,
    never_backwards,
    publisher_lock,
    seen,
    wait_until,
    watchers,
    write_atomic,
)

from . import ROOT

NAME = "shop"
READERS = 3


class Deployment:
    """One service's segment directory, its config, the agents and readers
    started on it, and what the test reads of them."""

    def __init__(self, tmp_path):
        self.segment_dir = tmp_path / "seg"
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.config = tmp_path / "c.yaml"
        self.config.write_text("value: 1\n")
        self.env = dict(
            os.environ,
            HOTCFG_SOURCE=str(self.config),
            HOTCFG_NAME=NAME,
            HOTCFG_SEGMENT_DIR=str(self.segment_dir),
            HOTCFG_DEBOUNCE_MS="10",
            PYTHONPATH=str(ROOT),
        )
        self.processes = []

    def start(self, argv, **env):
        process = subprocess.Popen(
            argv,
            env=dict(self.env, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a group of its own: shared by name alone
        )
        self.processes.append(process)
        return process

    def start_agent(self):
        agent = self.start([sys.executable, "-m", "hotcfg", "agent"])
        wait_until(lambda: self.holder() == agent.pid, "the agent holding the lock")
        # Published (the lock comes first): a change written from now on is
        # a new generation, not the agent's first read.
        wait_until(lambda: self.published_by(agent.pid), "the agent's first publish")
        return agent

    def published_by(self, pid):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "hotcfg",
                "status",
                "--json",
                "--dir",
                str(self.segment_dir),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        services = json.loads(out.stdout or "[]") if out.returncode == 0 else []
        return any(s["master_pid"] == pid and s["generation"] >= 1 for s in services)

    def reader_argv(self, index):
        return [
            sys.executable,
            "-m",
            "tests.apps.agent_reader",
            str(self.out),
            str(index),
        ]

    def start_readers(self, n=READERS):
        return [self.start(self.reader_argv(i), HOTCFG_PEERS="read") for i in range(n)]

    def ready(self, n=READERS):
        """{index: (pid as the reader sees it, port)} once ``n`` are serving."""

        def found():
            got = {}
            for path in self.out.glob("ready-*"):
                if path.name.endswith(".tmp"):
                    continue
                pid, port = path.read_text().split()
                got[path.name.split("-", 1)[1]] = (int(pid), int(port))
            return got if len(got) == n else None

        return wait_until(found, f"{n} readers serving")

    def holder(self):
        lock = publisher_lock(self.segment_dir)
        return None if lock is None else lock_holder(lock)

    def status(self):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "hotcfg",
                "status",
                "--json",
                "--dir",
                str(self.segment_dir),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        (service,) = json.loads(out.stdout)
        return service

    def all_at(self, value, n=READERS):
        return wait_until(
            lambda: all(last_value(self.out, str(i)) == value for i in range(n)),
            f"every reader on value {value}",
        )

    def stop(self, extra=()):
        kill_all([p.pid for p in self.processes] + list(extra))
        for process in self.processes:
            process.wait(timeout=10)
            process.stderr.close()


@pytest.fixture
def deployment(tmp_path):
    need_proc()
    started = Deployment(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def fetch(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        generation, value = r.read().decode().split()
    return int(generation), int(value)


def applied_at(out, index, generation):
    """When reader ``index``'s callback saw ``generation`` (time.time())."""
    for line in (Path(out) / f"at-{index}").read_text().splitlines():
        gen, at = line.split()
        if int(gen) == generation:
            return float(at)
    raise AssertionError(f"reader {index} never applied generation {generation}")


@pytest.mark.timeout(120)
def test_agent_publishes_for_readers_and_a_restarted_agent_is_followed(deployment):
    d = deployment
    agent = d.start_agent()
    readers = d.start_readers()
    ports = {index: port for index, (_, port) in d.ready().items()}
    pids = sorted(r.pid for r in readers)
    assert all(seen(d.out, str(i), "init") == [(1, 1)] for i in range(READERS))

    # One watcher on the host: the agent's; the readers watch nothing.
    assert watchers([agent.pid, *pids]) == [agent.pid]
    status = d.status()
    assert (status["role"], status["master_pid"]) == ("agent", agent.pid)
    assert sorted(w["pid"] for w in status["workers"]) == pids
    shown = _hotcfg(d, "status").stdout
    assert f"agent       pid {agent.pid} (running), hotcfg agent" in shown

    # A change reaches every idle reader (no request is made to them).
    write_atomic(d.config, "value: 2\n")
    waited = _hotcfg(d, "wait")  # the deploy step: until every reader applied
    assert waited.returncode == 0, waited.stderr
    d.all_at(2)

    # The agent stops: the readers keep serving the last good config, none
    # of them takes over (nobody holds the lock, nobody watches).
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0, agent.stderr.read()
    assert d.holder() is None
    assert all(alive(pid) for pid in pids)
    write_atomic(d.config, "value: 3\n")
    assert all(fetch(port)[1] == 2 for port in ports.values())
    assert watchers(pids) == []

    # A new agent publishes the change made meanwhile; every reader follows.
    again = d.start_agent()
    d.all_at(3)
    assert all(fetch(port)[1] == 3 for port in ports.values())
    status = d.status()
    assert (status["role"], status["master_pid"]) == ("agent", again.pid)
    assert sorted(w["pid"] for w in status["workers"]) == pids
    assert watchers([again.pid, *pids]) == [again.pid]
    for i in range(READERS):
        assert never_backwards(seen(d.out, str(i))), seen(d.out, str(i))


def test_a_reader_without_an_agent_raises_not_configured_after_its_wait(tmp_path):
    seg = tmp_path / "seg"
    script = (
        "import hotcfg\n"
        "from hotcfg import _runtime\n"
        "_runtime.AGENT_WAIT_S = 0.3\n"
        "try:\n"
        "    hotcfg.snapshot()\n"
        "except hotcfg.NotConfiguredError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = dict(
        os.environ,
        HOTCFG_SOURCE=str(tmp_path / "c.yaml"),
        HOTCFG_NAME=NAME,
        HOTCFG_SEGMENT_DIR=str(seg),
        HOTCFG_PEERS="read",
        PYTHONPATH=str(ROOT),
    )
    (tmp_path / "c.yaml").write_text("value: 1\n")
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: HOTCFG_PEERS=read: no hotcfg agent")
    # It never published: no segment, no watcher, nothing locked.
    assert list(seg.glob("*.seg")) == []
    assert list(seg.glob("*.history")) == []


def _unshare_refused():
    """Why ``unshare --pid --fork --mount-proc`` cannot run here (None: it can)."""
    try:
        out = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except FileNotFoundError:
        return "no unshare command (util-linux)"
    if out.returncode != 0:
        return f"unshare --pid --fork --mount-proc refused: {out.stderr.strip()}"
    return None


def descendants(pid):
    """The pids under ``pid`` (its children, theirs...), from /proc."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.timeout(120)
def test_readers_in_another_pid_namespace_are_woken_by_their_socket(deployment):
    reason = _unshare_refused()
    if reason:
        pytest.skip(reason)
    d = deployment
    agent = d.start_agent()
    # The readers in a PID namespace of their own; their safety poll off, so
    # that only a wake-up can switch them while idle.
    launch = " & ".join(" ".join(d.reader_argv(i)) for i in range(READERS)) + " & wait"
    ns = d.start(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            launch,
        ],
        HOTCFG_PEERS="read",
        AGENT_READER_NO_POLL="1",
    )
    try:
        ready = d.ready()
        inner = sorted(pid for pid, _ in ready.values())
        outer = [p for p in descendants(ns.pid) if p != ns.pid]
        # The table lists the pids as the readers see them: not the host's.
        status = d.status()
        assert sorted(w["pid"] for w in status["workers"]) == inner
        assert not set(inner) & set(outer)
        assert sorted(Path(d.segment_dir).glob("*.wake-*")) != []

        latencies = []
        for value in (2, 3, 4):
            write_atomic(d.config, f"value: {value}\n")
            d.all_at(value)
            generation = d.status()["generation"]
            published = d.status()["published_at"]
            last = max(applied_at(d.out, str(i), generation) for i in range(READERS))
            latencies.append((last - _epoch(published)) * 1000.0)
        print(
            "publish -> every reader in the other namespace applied: "
            f"median {statistics.median(latencies):.1f} ms over {len(latencies)}"
        )
        assert agent.poll() is None
    finally:
        d.stop(extra=descendants(ns.pid))


def _epoch(iso):
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _shipped_settings(kit):
    """The agent's and the app's ``HOTCFG_*`` settings as the shipped files
    give them (ops/systemd, ops/kubernetes), and the directory that exists
    before either starts (systemd's RuntimeDirectory, the emptyDir)."""
    from tests.unit.test_ops_agent import environment, pod_parts, unit_environment

    if kit == "systemd":
        agent = unit_environment()
        # The app's unit: the same settings, and HOTCFG_PEERS=read
        # (ops/systemd/hotcfg-agent.service's header).
        app = dict(agent, HOTCFG_PEERS="read")
        return agent, app, "/run/app", 0o700
    spec, maps, agent_c, app_c = pod_parts()
    (volume,) = [v for v in spec["volumes"] if "emptyDir" in v]
    (mount,) = [m for m in app_c["volumeMounts"] if m["name"] == volume["name"]]
    # An emptyDir is world-writable; hotcfg makes its directory inside.
    return (
        environment(agent_c, maps),
        environment(app_c, maps),
        mount["mountPath"],
        0o777,
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kit", ["systemd", "kubernetes"])
def test_the_shipped_files_settings_run_an_agent_and_its_readers(deployment, kit):
    import socket

    d = deployment
    agent_env, app_env, premade, mode = _shipped_settings(kit)
    root = d.out.parent / "root"

    def here(path):
        return str(root / path.lstrip("/"))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for env in (agent_env, app_env):
        env["HOTCFG_SOURCE"] = here(env["HOTCFG_SOURCE"])
        env["HOTCFG_SEGMENT_DIR"] = here(env["HOTCFG_SEGMENT_DIR"])
        if "HOTCFG_METRICS" in env:
            env["HOTCFG_METRICS"] = f"127.0.0.1:{port}"
    Path(here(premade)).mkdir(parents=True)
    os.chmod(here(premade), mode)
    source = Path(agent_env["HOTCFG_SOURCE"])
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("value: 1\n")
    d.config, d.segment_dir = source, Path(agent_env["HOTCFG_SEGMENT_DIR"])

    agent = d.start([sys.executable, "-m", "hotcfg", "agent"], **agent_env)
    wait_until(lambda: d.holder() == agent.pid, "the agent holding the lock")
    for i in range(2):
        d.start(d.reader_argv(i), **app_env)
    d.ready(2)
    write_atomic(source, "value: 2\n")
    d.all_at(2, n=2)
    if "HOTCFG_METRICS" in agent_env:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=10
        ) as r:
            assert b"hotcfg_" in r.read()
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0


def _hotcfg(d, *args):
    return subprocess.run(
        [sys.executable, "-m", "hotcfg", *args, "--dir", str(d.segment_dir)],
        env=d.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.timeout(90)
def test_the_agents_control_socket_rolls_back_and_hup_reads_the_source(deployment):
    d = deployment
    agent = d.start_agent()
    write_atomic(d.config, "value: 2\n")
    wait_until(lambda: d.status()["generation"] == 2, "generation 2")

    history = _hotcfg(d, "history", "--json")
    assert history.returncode == 0, history.stderr
    rollback = _hotcfg(d, "rollback")
    assert rollback.returncode == 0, rollback.stderr
    wait_until(lambda: d.status()["generation"] == 3, "generation 3, the rollback")
    assert _hotcfg(d, "get", "value").stdout.strip() == "1"

    # HUP: what the source holds, even after the rollback.
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: d.status()["generation"] == 4, "generation 4 after HUP")
    assert _hotcfg(d, "get", "value").stdout.strip() == "2"
    assert agent.poll() is None
    agent.send_signal(signal.SIGINT)
    assert agent.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("source", "code", "said"),
    [(None, 1, "needs HOTCFG_SOURCE"), ("value: [\n", 78, "")],
    ids=["no-source", "bad-source"],
)
def test_the_agent_refuses_to_start_without_a_good_source(
    deployment, source, code, said
):
    d = deployment
    env = dict(d.env)
    if source is None:
        del env["HOTCFG_SOURCE"]
    else:
        d.config.write_text(source)
    out = subprocess.run(
        [sys.executable, "-m", "hotcfg", "agent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == code, out.stderr
    assert said in out.stderr
    assert d.holder() is None
