"""A staged rollout on a real 3-member etcd cluster with three real Gunicorn
masters labelled h1, h2 and h3 (``HOTCFG_HOST``), 2 workers each, every one
following the key ``KEY`` and refusing a ``limit`` above 100 (a JSON Schema).

Throughout each test a thread asks the three services for their value
without pause (:class:`Hammer`) and keeps every answer with the host that
gave it, so a test can say what a host never served. Operators' commands
(``push --canary``, ``promote``, ``abort``, ``history``, ``status
--fleet``) run as new processes, as an operator runs them.

The cluster and the masters are started once for the module; each test
starts from the key on a fresh main value, no canary, every member and
every master running (a killed one started again), and leaves no canary
behind.
"""

import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException

import pytest

from hotcfg._sources.etcd.rollout import audit_key, canary_key
from tests.etcd import PROGRESS_MS, EtcdCluster, etcd_binary
from tests.waiting import wait_for

from .conftest import ROOT, Service

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

KEY = "/app/config.yaml"
CANARY = canary_key(KEY)
AUDIT = audit_key(KEY)
HOSTS = ("h1", "h2", "h3")
WORKERS = 2
#: Short, so a killed master's record goes within seconds.
FLEET_TTL_MS = 2000
SCHEMA = {
    "type": "object",
    "required": ["value", "limit"],
    "properties": {
        "value": {"type": "string"},
        "limit": {"type": "integer", "maximum": 100},
    },
}


def doc(value, limit=10):
    return f"value: {value}\nlimit: {limit}\n"


def hotcfg(*args, timeout=60):
    """``hotcfg ARGS`` as a new process, with the test's environment (no
    ``HOTCFG_SCHEMA``: the operator's shell knows nothing of the masters'
    rules); the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "hotcfg", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def started(*args, **env):
    """``hotcfg ARGS`` started as a new process (``env`` added to its
    environment), not waited for."""
    return subprocess.Popen(
        [sys.executable, "-m", "hotcfg", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
    )


def finished(procs, timeout=60):
    """Wait for every process of ``procs``; (exit code, out, err) each.
    One still running at the timeout is killed by its pid."""
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            done.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


class HoldingProxy:
    """A TCP proxy to 127.0.0.1:``target_port`` that holds an etcd
    transaction deleting a key (a promote's: the first request carrying
    ``marker``) until :meth:`release`; :attr:`held` is set once it holds.

    ``hold="request"``: the request is held; its client has read all it
    decides on and waits for its write. ``hold="answer"``: the request
    goes through and etcd's answer is held; on :meth:`release` with
    ``cut`` the connection is closed instead of answering: the write
    landed and its client never hears of it."""

    def __init__(self, target_port, hold="request", marker=b"request_delete_range"):
        self.target_port = target_port
        self.hold = hold
        self.marker = marker
        self.cut = False
        self.held = threading.Event()
        self._sent = threading.Event()  # the marked request went through
        self._released = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        self._sockets = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def release(self, cut=False):
        self.cut = cut
        self._released.set()

    def _accept(self):
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            pumps = (
                (client, upstream, self._request),
                (upstream, client, self._answer),
            )
            for src, dst, hook in pumps:
                thread = threading.Thread(
                    target=self._pump, args=(src, dst, hook), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _request(self, data, tail):
        """Before a chunk to etcd goes: hold it if it is the marked one."""
        if self.marker in tail + data and not self._sent.is_set():
            if self.hold == "request":
                self.held.set()
                self._released.wait(60)
            self._sent.set()
        return True

    def _answer(self, data, tail):
        """Before a chunk from etcd goes: hold the marked request's answer;
        False: drop the connection instead."""
        if self.hold == "answer" and self._sent.is_set() and not self.held.is_set():
            self.held.set()
            self._released.wait(60)
            return not self.cut
        return True

    def _pump(self, src, dst, hook):
        tail = b""
        try:
            while data := src.recv(65536):
                if not hook(data, tail):
                    break
                tail = data[-len(self.marker) :]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self):
        self._stopping = True
        self._released.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() just before the request was sent
    host: str
    pid: int
    value: object


class Hammer:
    """Requests without pause to every master in turn, from a thread; keeps
    every answer, and every failure with the host that failed."""

    def __init__(self, services):
        self.targets = [(host, svc.port) for host, svc in services.items()]
        self.answers = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for host, port in self.targets:
                sent = time.monotonic()
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/", headers={"Connection": "close"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        body = json.loads(resp.read())
                except (OSError, urllib.error.URLError, ValueError, HTTPException) as e:
                    self.errors.append((host, repr(e)))
                    continue
                self.answers.append(Answer(sent, host, body["pid"], body["value"]))

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def served(self, value, hosts=HOSTS, before=None):
        """The answers from ``hosts`` that carried ``value`` (asked before
        the monotonic time ``before``, if given)."""
        return [
            a
            for a in list(self.answers)
            if a.host in hosts
            and a.value == value
            and (before is None or a.sent < before)
        ]


class Fleet:
    """The cluster, the three masters, and what the tests ask of them."""

    def __init__(self, cluster, base_dir):
        self.cluster = cluster
        self.base_dir = base_dir
        self.schema = base_dir / "schema.json"
        self.schema.write_text(json.dumps(SCHEMA))
        self.masters = {}
        self.retired = []  # masters killed by a test, stopped again at the end
        self._starts = 0

    @property
    def url(self):
        return self.cluster.source(KEY)

    def start_master(self, host):
        """Master ``host`` with 2 workers, its own segment directory, on a
        free port."""
        self._starts += 1
        where = self.base_dir / f"{host}-{self._starts}"
        where.mkdir()
        segments = where / "segments"
        segments.mkdir(mode=0o700)
        env = {
            "HOTCFG_SOURCE": self.url,
            "HOTCFG_HOST": host,
            "HOTCFG_NAME": "web",
            "HOTCFG_SEGMENT_DIR": str(segments),
            "HOTCFG_SCHEMA": str(self.schema),
            "HOTCFG_ETCD_PROGRESS_MS": str(PROGRESS_MS),
            "HOTCFG_ETCD_TIMEOUT_MS": "1000",
            "HOTCFG_FLEET_TTL_MS": str(FLEET_TTL_MS),
        }
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HOTCFG_SEGMENT_DIR", str(segments))  # Service reads it
            self.masters[host] = Service(where, env_extra=env, workers=WORKERS)

    def kill(self, host):
        """SIGKILL master ``host`` (its workers go with their group): no
        exit hook, its fleet record waits for its lease."""
        svc = self.masters[host]
        svc.stop(signal.SIGKILL)
        self.retired.append(svc)

    def stop(self):
        for svc in [*self.masters.values(), *self.retired]:
            svc.stop()

    # -- etcd ------------------------------------------------------------------

    def get(self, key):
        """``key``'s value and mod_revision ((None, 0): no such key), read
        again while the members elect a leader."""
        found = []

        def read():
            done = self.cluster.ctl(
                "--command-timeout=2s",
                "get",
                "--write-out=json",
                "--",
                key,
                check=False,
            )
            if done.returncode != 0:
                return False
            found.append(json.loads(done.stdout))
            return True

        wait_for(read, f"a read of {key}", timeout_s=30)
        kvs = found[-1].get("kvs") or []
        if not kvs:
            return None, 0
        return base64.b64decode(kvs[0]["value"]).decode(), int(kvs[0]["mod_revision"])

    def report(self):
        """``hotcfg status --fleet URL --json``, parsed (None: it failed)."""
        done = hotcfg("status", "--fleet", self.url, "--json", timeout=30)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def record(self, report, host):
        """The record of the live master ``host`` in ``report``."""
        pid = self.masters[host].proc.pid
        return next((r for r in report["records"] if r["pid"] == pid), None)

    def on_track(self, hosts, track, revision):
        """Each master of ``hosts``: its record on ``track`` at ``revision``,
        no rejection, every worker Gunicorn runs on its live generation."""
        report = self.report()
        if report is None:
            return False
        for host in hosts:
            mine = self.record(report, host)
            if mine is None or mine.get("track") != track:
                return False
            if mine["revision"] != revision or mine["error"]:
                return False
            pids = {w["pid"] for w in mine["workers"]}
            if pids != self.masters[host].worker_pids():
                return False
            if any(w["generation"] != mine["generation"] for w in mine["workers"]):
                return False
        return True

    def wait_on_track(self, hosts, track, revision, timeout_s=30.0):
        wait_for(
            lambda: self.on_track(hosts, track, revision),
            f"{', '.join(hosts)} on track {track} at revision {revision}",
            timeout_s=timeout_s,
        )

    def wait_rejected(self, host):
        """Until ``host``'s record names a rejection."""

        def rejected():
            report = self.report()
            mine = report and self.record(report, host)
            return bool(mine and mine["error"])

        wait_for(rejected, f"{host}'s record naming the rejection")

    def serve(self, hosts, value):
        """Every worker of every master of ``hosts`` answers ``value``."""
        for host in hosts:
            self.masters[host].all_workers_answer(value)

    def push_canary(self, tmp_path, value, hosts="h1", limit=10, *extra):
        """``hotcfg push FILE URL --canary HOSTS``, which must succeed; the
        canary's mod_revision."""
        path = tmp_path / f"{value}.yaml"
        path.write_text(doc(value, limit))
        began = time.monotonic()
        done = hotcfg("push", str(path), self.url, "--canary", hosts, *extra)
        self.push_s = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        content, revision = self.get(CANARY)
        assert content is not None, "push --canary wrote no canary"
        return revision

    def on_canary(self, tmp_path, value, *extra):
        """A canary of ``value`` to h1, served by every h1 worker and h1's
        record on it; its revision."""
        revision = self.push_canary(tmp_path, value, "h1", 10, *extra)
        self.wait_on_track(["h1"], "canary", revision)
        self.serve(["h1"], value)
        return revision


@pytest.fixture(scope="module")
def the_fleet(tmp_path_factory):
    pytest.importorskip(
        "jsonschema", reason="the masters' rule is a JSON Schema: hotcfg[schema]"
    )
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), etcd_binary())
    fleet = Fleet(cluster, tmp_path_factory.mktemp("masters"))
    try:
        cluster.start()
        cluster.put(KEY, doc("start"))
        for host in HOSTS:
            fleet.start_master(host)
        fleet.serve(HOSTS, "start")
        yield fleet
    finally:
        fleet.stop()
        cluster.stop()


@pytest.fixture
def fleet(the_fleet, request):
    """The module's fleet with every member and master running, no canary,
    the key on a value of this test's own (every worker serving it, every
    record on it), and a :class:`Hammer` on the three masters from then
    until the test ends; no canary left behind."""
    fleet = the_fleet
    cluster = fleet.cluster
    stopped = [m for m in cluster.members if m.proc is None]
    if stopped:
        cluster.start(*stopped)
    fleet.get(KEY)  # a leader answers
    cluster.ctl("del", "--", CANARY)
    for host in HOSTS:
        if fleet.masters[host].proc.poll() is not None:
            fleet.start_master(host)
    main = f"main-{request.node.name[5:25]}"
    cluster.put(KEY, doc(main))
    _, revision = fleet.get(KEY)
    fleet.serve(HOSTS, main)
    fleet.wait_on_track(HOSTS, "main", revision)
    fleet.main = main
    fleet.hammer = Hammer(fleet.masters)
    try:
        yield fleet
    finally:
        fleet.hammer.stop()
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            cluster.ctl("del", "--", CANARY)


def no_failed_request(hammer, but=()):
    failed = [(h, e) for h, e in hammer.errors if h not in but]
    assert not failed, failed[:5]
    assert hammer.answers, "no answer at all"


def test_a_canary_reaches_only_its_host_until_promoted(fleet, tmp_path):
    revision = fleet.on_canary(tmp_path, "canary-1")
    fleet.wait_on_track(["h2", "h3"], "main", fleet.get(KEY)[1])

    report = fleet.report()
    assert report.get("canary"), report
    assert "h1" in json.dumps(report["canary"])
    text = hotcfg("status", "--fleet", fleet.url, timeout=30)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.startswith("canary") and "h1" in line for line in lines), lines
    header = next(line.split() for line in lines if line.startswith("HOST "))
    track = header.index("TRACK")
    rows = {
        row[0]: row
        for row in map(str.split, lines)
        if row[:1] in (["h1"], ["h2"], ["h3"])
    }
    assert {host: row[track] for host, row in rows.items()} == {
        "h1": "canary",
        "h2": "main",
        "h3": "main",
    }, text.stdout

    # Asked of h2 and h3 since the canary was pushed: their main value only.
    fleet.serve(["h2", "h3"], fleet.main)
    promoting = time.monotonic()
    done = hotcfg("promote", fleet.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fleet.get(KEY)[0] == doc("canary-1")
    assert fleet.get(CANARY) == (None, 0)
    fleet.serve(HOSTS, "canary-1")
    fleet.wait_on_track(HOSTS, "main", fleet.get(KEY)[1])
    assert not fleet.report().get("canary")

    fleet.hammer.stop()
    leaked = fleet.hammer.served("canary-1", ("h2", "h3"), before=promoting)
    assert not leaked, f"h2/h3 served the canary before the promote: {leaked[:5]}"
    assert fleet.hammer.served("canary-1", ("h1",), before=promoting)
    assert revision < fleet.get(KEY)[1]
    no_failed_request(fleet.hammer)


def test_a_canary_h1_rejects_cannot_be_promoted_and_is_aborted(fleet, tmp_path):
    main_text, main_revision = fleet.get(KEY)
    fleet.push_canary(tmp_path, "too-high", "h1", 500)

    fleet.wait_rejected("h1")
    done = hotcfg("promote", fleet.url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "h1" in done.stdout + done.stderr
    assert fleet.get(KEY) == (main_text, main_revision)  # nothing promoted

    done = hotcfg("abort", fleet.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fleet.get(CANARY) == (None, 0)
    fleet.serve(HOSTS, fleet.main)
    fleet.wait_on_track(HOSTS, "main", main_revision)

    fleet.hammer.stop()
    assert not fleet.hammer.served("too-high"), "a worker served refused content"
    no_failed_request(fleet.hammer)


def test_two_operators_promote_at_once_and_one_wins(fleet, tmp_path):
    fleet.on_canary(tmp_path, "raced")
    both = [started("promote", fleet.url), started("promote", fleet.url)]
    done = finished(both)
    assert sorted(code for code, _, _ in done) == [0, 1], done
    loser = next(err for code, _, err in done if code == 1)
    # Both read the canary before either wrote: the loser's compare fails.
    # The loser read after the winner wrote: there is no canary to promote.
    assert "conflict" in loser.lower() or "no canary" in loser.lower(), loser
    print(f"the losing promote said: {loser.strip()}")
    assert fleet.get(KEY)[0] == doc("raced")
    assert fleet.get(CANARY) == (None, 0)
    fleet.serve(HOSTS, "raced")
    fleet.hammer.stop()
    no_failed_request(fleet.hammer)


def test_a_promote_that_read_before_another_wrote_is_a_conflict(fleet, tmp_path):
    fleet.on_canary(tmp_path, "second-wins")
    member = fleet.cluster.members[0]
    proxy = HoldingProxy(member.client_port)
    try:
        slow_url = f"etcd://127.0.0.1:{proxy.port}{KEY}"
        # Its reads done, its transaction held: the other operator's promote
        # runs from start to end meanwhile.
        slow = started("promote", slow_url, HOTCFG_ETCD_TIMEOUT_MS="60000")
        wait_for(proxy.held.is_set, "the first promote's transaction", timeout_s=60)
        ((code, out, err),) = finished([started("promote", fleet.url)])
        assert code == 0, out + err
        proxy.release()
        ((code, out, err),) = finished([slow])
    finally:
        proxy.stop()
    assert code == 1, out + err
    assert err.startswith(f"conflict: {slow_url} is not as this promote"), err
    print(f"the promote that read first said: {err.strip()}")
    assert fleet.get(KEY)[0] == doc("second-wins")
    assert fleet.get(CANARY) == (None, 0)
    fleet.serve(HOSTS, "second-wins")
    fleet.hammer.stop()
    no_failed_request(fleet.hammer)


def test_a_master_killed_on_the_canary_leaves_the_fleet_view_with_its_lease(
    fleet, tmp_path
):
    fleet.on_canary(tmp_path, "doomed")
    killed = fleet.masters["h1"].proc.pid
    fleet.kill("h1")

    def gone():
        report = fleet.report()
        return report is not None and killed not in {
            r["pid"] for r in report["records"]
        }

    wait_for(gone, "the killed master's record to go with its lease", timeout_s=60)
    report = fleet.report()
    assert sorted(r["host"] for r in report["records"]) == ["h2", "h3"]
    assert all(r["track"] == "main" for r in report["records"])
    fleet.serve(["h2", "h3"], fleet.main)
    fleet.hammer.stop()
    assert not fleet.hammer.served("doomed", ("h2", "h3"))
    no_failed_request(fleet.hammer, but=("h1",))


def leader_of(cluster):
    seen = []
    wait_for(lambda: seen.append(cluster.leader()) or seen[-1] is not None, "a leader")
    return seen[-1]


#: How the leader dies during a promote: at a random point of its run;
#: with its transaction held before the leader (then let through to the
#: dead member); with its transaction committed and the answer lost.
KILLS = ("random", "before the write", "answer lost")


def promote_as_the_leader_dies(cluster, fleet, kill):
    """``hotcfg promote`` with the leader killed (SIGKILL: no leadership
    transfer, no goodbye) in its midst, as ``kill`` (:data:`KILLS`) says;
    the killed member is started again. The promote's exit code and
    output. Held by a proxy in front of the leader, the first endpoint the
    promote tries; it goes on to the others when that one fails."""
    victim = leader_of(cluster)
    if kill == "random":
        promote = started("promote", fleet.url)
        # Mostly past its start-up: in its reads or its transaction (a
        # push --canary takes about as long).
        time.sleep(random.uniform(0.3, 1.1) * fleet.push_s)
        victim.stop(signal.SIGKILL)
        ((code, out, err),) = finished([promote])
        cluster.start(victim)
        return code, out, err
    proxy = HoldingProxy(
        victim.client_port, hold="request" if kill == "before the write" else "answer"
    )
    try:
        others = [m.endpoint for m in cluster.members if m is not victim]
        url = f"etcd://127.0.0.1:{proxy.port},{','.join(others)}{KEY}"
        promote = started("promote", url, HOTCFG_ETCD_ORDER="listed")
        wait_for(
            lambda: proxy.held.is_set() or promote.poll() is not None,
            "the promote's transaction",
            timeout_s=60,
        )
        victim.stop(signal.SIGKILL)
        proxy.release(cut=True)
        ((code, out, err),) = finished([promote])
    finally:
        proxy.stop()
    cluster.start(victim)
    return code, out, err


@pytest.mark.timeout(420)
def test_a_promote_with_the_leader_killed_happens_whole_or_not_at_all(fleet, tmp_path):
    cluster = fleet.cluster
    outcomes = []
    for round_, kill in enumerate(KILLS * 2):
        value = f"leaderless-{round_}"
        before_text, _ = fleet.get(KEY)
        fleet.on_canary(tmp_path, value)
        canary_text, canary_revision = fleet.get(CANARY)
        code, out, err = promote_as_the_leader_dies(cluster, fleet, kill)

        key_text, _ = fleet.get(KEY)
        left_text, left_revision = fleet.get(CANARY)
        promoted = key_text == doc(value) and left_text is None
        untouched = key_text == before_text and left_revision == canary_revision
        assert promoted or untouched, (
            f"half a promote: K={key_text!r}, canary={left_text!r} "
            f"(exit {code}: {out}{err})"
        )
        assert code in (0, 1, 75), (code, out, err)
        if code == 0:
            assert promoted, (out, err)
        assert left_text in (None, canary_text)
        if kill == "answer lost":  # etcd answered: it was committed
            assert promoted, (code, out, err)
        outcomes.append((kill, code, "promoted" if promoted else "not promoted"))
        if promoted:
            fleet.serve(HOSTS, value)
            fleet.main = value
        else:
            fleet.serve(["h1"], value)
            fleet.serve(["h2", "h3"], fleet.main)
            done = hotcfg("abort", fleet.url)
            assert done.returncode == 0, done.stdout + done.stderr
            fleet.serve(HOSTS, fleet.main)
    print("promotes with the leader killed (kill, exit code, outcome):")
    for outcome in outcomes:
        print(f"  {outcome}")
    fleet.hammer.stop()
    no_failed_request(fleet.hammer)


def history_entries(parsed):
    """The revisions ``history --json`` lists, whatever holds the list."""
    if isinstance(parsed, list):
        return parsed
    for value in parsed.values():
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
    raise AssertionError(f"no list of revisions in {parsed!r}")


def test_the_audit_trail_names_who_did_each_step_and_why(fleet, tmp_path):
    path = tmp_path / "pushed.yaml"
    path.write_text(doc("pushed", limit=20))
    steps = []

    def step(action, author, message, *args):
        done = hotcfg(*args, "-m", message, "--author", author)
        assert done.returncode == 0, done.stdout + done.stderr
        steps.append((action, author, message))

    step("push", "alice@ops", "raise the limit", "push", str(path), fleet.url)
    fleet.serve(HOSTS, "pushed")
    fleet.on_canary(
        tmp_path, "trail", "-m", "try the trail on h1", "--author", "bob@ops"
    )
    steps.append(("canary", "bob@ops", "try the trail on h1"))
    step("promote", "carol@ops", "h1 looks good", "promote", fleet.url)
    fleet.serve(HOSTS, "trail")
    fleet.push_canary(
        tmp_path, "second", "h2", 10, "-m", "try on h2", "--author", "dave@ops"
    )
    steps.append(("canary", "dave@ops", "try on h2"))
    step("abort", "erin@ops", "not today", "abort", fleet.url)
    fleet.serve(HOSTS, "trail")

    done = hotcfg("history", fleet.url, "--json")
    assert done.returncode == 0, done.stderr
    entries = history_entries(json.loads(done.stdout))
    listed = [
        (e.get("action"), e.get("author"), e.get("message"))
        for e in entries
        if e.get("action")
    ]
    for wanted in steps:
        assert wanted in listed, (wanted, entries)
    # Each step once, in the order made (the listing newest first or last).
    mine = [entry for entry in listed if entry in steps]
    assert mine in (steps, steps[::-1]), mine
    pushed = next(e for e in entries if e.get("author") == "alice@ops")
    assert "limit" in json.dumps(pushed.get("paths", pushed)), pushed
    text = hotcfg("history", fleet.url)
    assert text.returncode == 0, text.stderr
    for _, author, message in steps:
        assert author in text.stdout, text.stdout
        assert message in text.stdout, text.stdout
    assert fleet.get(AUDIT)[0] is not None


def test_a_whole_rollout_as_an_operator_sees_it(fleet, tmp_path):
    """A transcript of a rollout (``pytest -s`` prints it): a canary h1
    refuses, the fleet view, the refused promote, the fixed canary, its
    promote, and the history. Each command must exit as an operator
    expects."""
    transcript = []

    def run(expected, *args):
        done = hotcfg(*args)
        shown = " ".join("etcd://.../app/config.yaml" if a == fleet.url else a
                         for a in args)  # fmt: skip
        transcript.append(f"$ hotcfg {shown}  # exit {done.returncode}")
        output = (done.stdout + done.stderr).splitlines()
        transcript.extend(f"  {line}" for line in output)
        assert done.returncode == expected, "\n".join(transcript)
        return done

    bad = tmp_path / "limit-500.yaml"
    bad.write_text(doc("limit-500", 500))
    good = tmp_path / "limit-50.yaml"
    good.write_text(doc("limit-50", 50))
    author = ("--author", "ann@ops")
    run(0, "push", str(bad), fleet.url, "--canary", "h1", "-m", "limit 500", *author)

    fleet.wait_rejected("h1")
    run(0, "status", "--fleet", fleet.url)
    run(1, "promote", fleet.url, "-m", "ship it", *author)
    run(0, "push", str(good), fleet.url, "--canary", "h1", "-m", "limit 50", *author)
    fleet.wait_on_track(["h1"], "canary", fleet.get(CANARY)[1])
    fleet.serve(["h1"], "limit-50")
    run(0, "status", "--fleet", fleet.url)
    promoting = time.monotonic()
    run(0, "promote", fleet.url, "-m", "limit 50 is fine on h1", *author)
    fleet.serve(HOSTS, "limit-50")
    run(0, "history", fleet.url)
    print("\n" + "\n".join(transcript))
    fleet.hammer.stop()
    assert not fleet.hammer.served("limit-500")
    assert not fleet.hammer.served("limit-50", ("h2", "h3"), before=promoting)
    no_failed_request(fleet.hammer)
