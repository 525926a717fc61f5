"""A real Gunicorn following a key on a real 3-member etcd cluster while the
cluster fails: the leader killed mid-stream, the followed member cut off from
the others or frozen, a compaction while the master is away, a master started
with the whole cluster down, bad values and racing pushes.

Throughout each fault a thread asks the service for its value without pause
(``Load``): every answer must be one of the valid values written, and no
worker may go back to an older value or generation. Each test ends with every
worker serving the last valid value.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.etcd import PROGRESS_MS, EtcdCluster, etcd_binary
from tests.waiting import wait_for

from .conftest import ROOT
from .test_etcd import etcd_connections
from .test_faults import Load, running

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"
WORKERS = 3


def settings_for(source, **extra):
    """The service's environment: ``source``, the cluster's progress interval
    and a short timeout, so a lost member is left quickly."""
    return {
        "HOTCFG_SOURCE": source,
        "HOTCFG_ETCD_PROGRESS_MS": str(PROGRESS_MS),
        "HOTCFG_ETCD_TIMEOUT_MS": "1000",
        # These tests know which member the master follows: the first.
        "HOTCFG_ETCD_ORDER": "listed",
        **extra,
    }


def only_valid_served(load, valid):
    """Every answer ``load`` got was one of ``valid`` (in the order written);
    one value per generation; no worker went back to an older value or
    generation; no request failed."""
    assert not load.errors, load.errors[:5]
    assert load.answers, "no answer at all"
    rank = {value: n for n, value in enumerate(valid)}
    invalid = [
        a
        for a in load.answers
        if not (isinstance(a["value"], str) and a["value"] in rank)
    ]
    assert not invalid, f"served content that was never valid: {invalid[:5]}"
    value_of = {}
    last = {}
    for answer in load.answers:
        pid, generation, value = answer["pid"], answer["generation"], answer["value"]
        assert value_of.setdefault(generation, value) == value, (
            f"generation {generation} served as {value_of[generation]!r} and {value!r}"
        )
        before = last.get(pid)
        if before is not None:
            went_back = generation < before[0] or rank[value] < rank[before[1]]
            assert not went_back, f"worker {pid} went from {before} to {answer}"
        last[pid] = (generation, value)


def last_error(service):
    statuses = service.status()
    return (statuses[0]["last_error"] or "") if statuses else ""


def put_until_stored(cluster, key, value, members=None):
    """Put ``value`` through ``members`` (default: the running ones), again
    if a put fails while they elect a leader (every value written is valid,
    so a put that failed and landed anyway serves nothing wrong)."""
    # A put that reached a member while there was no leader fails only at
    # etcdctl's command timeout (5 s by default): try again sooner.
    command = ("--command-timeout=2s", "put", "--", key, value)
    wait_for(
        lambda: cluster.ctl(*command, check=False, members=members).returncode == 0,
        f"{value!r} stored",
    )


def leader_of(cluster):
    """The leader, once the running members agree on one."""
    seen = []
    wait_for(lambda: seen.append(cluster.leader()) or seen[-1] is not None, "a leader")
    return seen[-1]


def test_leader_killed_during_a_stream_of_puts(etcd_cluster, start_service, tmp_path):
    cluster = etcd_cluster
    leader = leader_of(cluster)
    # The master follows its first endpoint: the leader, the member killed.
    members = [leader] + [m for m in cluster.members if m is not leader]
    valid = [f"v{n:02d}" for n in range(20)]
    cluster.put(KEY, f"value: {valid[0]}\n")
    service_source = cluster.source(KEY, members)
    service = start_service(
        tmp_path, env_extra=settings_for(service_source), workers=WORKERS
    )
    service.all_workers_answer(valid[0])
    service.wait_until(
        lambda: etcd_connections(service.proc.pid, leader.client_port),
        "the master following the leader",
    )

    with running(Load(service)) as (load,):
        for n, value in enumerate(valid[1:], start=1):
            if n == 10:
                # The leader now: a busy machine may have had an election.
                victim = leader_of(cluster)
                victim.stop(signal.SIGKILL)  # no leadership transfer, no goodbye
            put_until_stored(cluster, KEY, f"value: {value}\n")
        service.all_workers_answer(valid[-1])
    only_valid_served(load, valid)
    if victim is leader:  # the usual case: the master's stream was cut
        lost = f"lost the etcd watch of {service_source} ({leader.endpoint}: "
        assert lost in service.log.read_text()
    assert not last_error(service)


def test_followed_member_cut_off_from_the_others(etcd_cluster, start_service, tmp_path):
    cluster = etcd_cluster
    followed, *others = cluster.members
    cluster.put(KEY, "value: before\n")
    service = start_service(
        tmp_path, env_extra=settings_for(cluster.source(KEY)), workers=WORKERS
    )
    service.all_workers_answer("before")
    service.wait_until(
        lambda: etcd_connections(service.proc.pid, followed.client_port),
        "the master following the first member",
    )

    with running(Load(service)) as (load,):
        for member in others:
            member.stop()
        # The followed member is up but has no leader: the watch (made with
        # require-leader) is ended by etcd, and the reason is in status.
        service.wait_until(
            lambda: "etcdserver: no leader" in last_error(service),
            "status naming the lost leader",
        )
        assert "etcd unreachable" in last_error(service)
        lost = f"lost the etcd watch of {cluster.source(KEY)} ({followed.endpoint}: "
        assert f"{lost}etcdserver: no leader)" in service.log.read_text()
        service.all_workers_answer("before")

        cluster.start(*others)
        put_until_stored(cluster, KEY, "value: after\n")
        service.all_workers_answer("after")
        service.wait_until(lambda: not last_error(service), "the error cleared")
    only_valid_served(load, ["before", "after"])
    assert "following etcd://" in service.log.read_text()


def test_compaction_while_the_master_is_away(etcd_cluster, start_service, tmp_path):
    cluster = etcd_cluster
    followed = cluster.members[0]
    source = cluster.source(KEY, [followed])  # nowhere else to turn
    cluster.put(KEY, "value: p0\n")
    service = start_service(tmp_path, env_extra=settings_for(source), workers=WORKERS)
    service.all_workers_answer("p0")
    valid = [f"p{n}" for n in range(6)]

    with running(Load(service)) as (load,):
        followed.stop()
        service.wait_until(
            lambda: "etcd unreachable" in last_error(service), "the outage recorded"
        )
        for value in valid[1:]:
            revision = cluster.put(KEY, f"value: {value}\n")
        cluster.ctl("compact", str(revision))
        # The member answers clients only once it has caught up (compaction
        # included), so the master's watch from its old revision is refused.
        cluster.start(followed)
        service.all_workers_answer(valid[-1])
    only_valid_served(load, valid)
    log = service.log.read_text()
    assert f"etcd compacted {source}" in log
    assert f"read {source} in full at revision" in log
    read_at = int(log.split(f"read {source} in full at revision ")[1].split()[0])
    assert read_at >= revision
    assert not last_error(service)


def test_master_started_while_the_cluster_is_down_serves_its_cache(
    etcd_cluster, start_service, tmp_path
):
    cluster = etcd_cluster
    source = cluster.source(KEY)
    cluster.put(KEY, "value: cached\n")
    (tmp_path / "first").mkdir()
    first = start_service(
        tmp_path / "first", env_extra=settings_for(source), workers=WORKERS
    )
    first.all_workers_answer("cached")
    assert [p for p in os.listdir(first.segments) if p.endswith(".cache")]
    first.stop()
    cluster.stop()

    (tmp_path / "second").mkdir()
    second = start_service(  # the same service again, on its address
        tmp_path / "second",
        env_extra=settings_for(source),
        workers=WORKERS,
        port=first.port,
    )
    with running(Load(second)) as (load,):
        second.all_workers_answer("cached")
        status = second.status()[0]
        assert status["source"] == f"cache:{source}"
        assert "etcd unreachable" in status["last_error"]
        assert "serving the cache from" in status["last_error"]
        assert "(age " in status["last_error"]

        cluster.start()
        put_until_stored(cluster, KEY, "value: live\n")
        second.all_workers_answer("live")
        second.wait_until(lambda: not last_error(second), "the error cleared")
        assert second.status()[0]["source"] == source
    only_valid_served(load, ["cached", "live"])
    assert "serving the cache from" in second.log.read_text()


def test_deleted_empty_and_invalid_values_never_reach_a_worker(
    etcd_cluster, start_service, tmp_path
):
    cluster = etcd_cluster
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "required": ["value"],
                "properties": {"value": {"type": "string", "pattern": "^good-"}},
            }
        )
    )
    source = cluster.source(KEY)
    cluster.put(KEY, "value: good-1\n")
    service = start_service(
        tmp_path,
        env_extra=settings_for(source, HOTCFG_SCHEMA=str(schema)),
        workers=WORKERS,
    )
    service.all_workers_answer("good-1")

    def refused(put, reason):
        put()
        service.wait_until(lambda: reason in last_error(service), repr(reason))
        assert last_error(service).startswith(source)

    with running(Load(service)) as (load,):
        refused(lambda: cluster.put(KEY, "value: [unclosed\n"), "invalid YAML")
        refused(lambda: cluster.put(KEY, "value: evil\n"), "violates schema rule")
        service.all_workers_answer("good-1")
        cluster.put(KEY, "value: good-2\n")
        service.all_workers_answer("good-2")
        assert not last_error(service)
        refused(lambda: cluster.ctl("del", KEY), f"key {KEY} was deleted")
        refused(lambda: cluster.put(KEY, ""), "holds an empty value")
        service.all_workers_answer("good-2")
        cluster.put(KEY, "value: good-3\n")
        service.all_workers_answer("good-3")
        assert not last_error(service)
    only_valid_served(load, ["good-1", "good-2", "good-3"])


def test_two_pushes_from_the_same_revision_one_wins(
    etcd_cluster, start_service, tmp_path
):
    cluster = etcd_cluster
    source = cluster.source(KEY)
    cluster.put(KEY, "value: base\n")
    service = start_service(tmp_path, env_extra=settings_for(source), workers=WORKERS)
    service.all_workers_answer("base")
    revision = cluster.mod_revision(KEY)
    files = {}
    for name in ("a", "b"):
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(f"value: pushed-{name}\n")

    with running(Load(service)) as (load,):
        pushes = {
            name: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hotcfg",
                    "push",
                    str(path),
                    source,
                    f"--expect-revision={revision}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
            )
            for name, path in files.items()
        }
        done = {}
        try:
            for name, push in pushes.items():
                out, err = push.communicate(timeout=30)
                done[name] = (push.returncode, out, err)
        finally:
            for push in pushes.values():
                if push.poll() is None:
                    push.kill()
                    push.wait()
        assert sorted(code for code, _, _ in done.values()) == [0, 1], done
        winner = next(name for name, (code, _, _) in done.items() if code == 0)
        loser = "b" if winner == "a" else "a"
        written = cluster.mod_revision(KEY)
        assert f"revision {written}" in done[winner][1]
        conflict = done[loser][2]
        assert conflict.startswith(f"conflict: {source} is at revision {written}")
        assert f"expected revision {revision}" in conflict
        service.all_workers_answer(f"pushed-{winner}")
    only_valid_served(load, ["base", f"pushed-{winner}"])


@pytest.fixture
def quiet_cluster(tmp_path):
    """A 3-member cluster with etcd's own progress-notification interval
    (10 minutes): a silent stream stays silent; stopped at teardown."""
    cluster = EtcdCluster(tmp_path / "quiet", etcd_binary(), progress_ms=None)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def fleet_records(members):
    """The fleet records of ``KEY``, read through ``members`` only."""
    endpoints = ",".join(m.endpoint for m in members)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotcfg",
            "status",
            "--fleet",
            f"etcd://{endpoints}{KEY}",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    return json.loads(done.stdout)["records"] if done.returncode == 0 else []


def test_a_frozen_member_is_left_within_seconds_losing_nothing(
    quiet_cluster, start_service, tmp_path
):
    cluster = quiet_cluster
    followed, *others = cluster.members
    cluster.put(KEY, "value: before\n")
    # Default settings but a short lease, whose keep-alives must not wait
    # on the frozen member longer than the lease lasts.
    env = {
        "HOTCFG_SOURCE": cluster.source(KEY),
        "HOTCFG_FLEET_TTL_MS": "3000",
        "HOTCFG_ETCD_ORDER": "listed",  # the master follows the first member
    }
    service = start_service(tmp_path, env_extra=env, workers=WORKERS)
    service.all_workers_answer("before")
    service.wait_until(
        lambda: etcd_connections(service.proc.pid, followed.client_port),
        "the master following the first member",
    )

    with running(Load(service)) as (load,):
        # Frozen as a GC pause, a stalled disk or a paused VM freezes it:
        # its connections stay open and silent, no FIN, no reset.
        os.kill(followed.proc.pid, signal.SIGSTOP)
        try:
            frozen_at = time.monotonic()
            put_until_stored(cluster, KEY, "value: during-1\n", others)
            service.all_workers_answer("during-1")
            served_s = time.monotonic() - frozen_at
            put_until_stored(cluster, KEY, "value: during-2\n", others)
            service.all_workers_answer("during-2")
            log = service.log.read_text()
            assert f"{followed.endpoint}: the watch was silent and a probe" in log
            assert "lease is gone" not in log
            reply = json.loads(others[0].ctl("get", KEY, "--write-out=json"))
            revision = int(reply["kvs"][0]["mod_revision"])
            mine = service.proc.pid

            def recorded():
                records = {r["pid"]: r for r in fleet_records(others)}
                return mine in records and records[mine]["revision"] == revision

            service.wait_until(recorded, "the fleet record on the last put")
            assert "lease is gone" not in service.log.read_text()
        finally:
            # Killed, not thawed: a put that timed out while the others
            # elected a leader may sit in its buffers and land once it runs.
            followed.stop(signal.SIGKILL)
    only_valid_served(load, ["before", "during-1", "during-2"])
    print(
        f"frozen member: a put through the others served by every worker "
        f"{served_s:.2f} s after the freeze"
    )
