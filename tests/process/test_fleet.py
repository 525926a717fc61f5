"""A master's fleet record kept in a real etcd, through outages and lost
leases, by the thread of a real publisher following a key."""

import json
import logging
import os
import shutil
import socket
import time

import pytest

from hotcfg._master import fleet as _fleet
from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.etcd.access import EtcdAccess
from hotcfg._sources.locations import parse_etcd
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from hotcfg.cli import fleet_view
from tests.etcd import PROGRESS_MS
from tests.following import Followed
from tests.httpserver import Reply, good
from tests.waiting import wait_for

KEY = "/app/config.yaml"


class Master:
    """A publisher following ``KEY``, a reader in worker slot 0 (this
    process), and the fleet record thread."""

    def __init__(self, etcd, *, ttl_ms=2000, name="svc", host=None):
        self.etcd = etcd
        self.settings = Settings.resolve(
            {} if host is None else {"HOTCFG_HOST": host},
            source=etcd.source(KEY),
            etcd_progress_ms=PROGRESS_MS,
            etcd_timeout_ms=1000,
            fleet_ttl_ms=ttl_ms,
            name=name,
        )
        self.segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name=name)
        self.publisher = Publisher(
            source_for(self.settings), self.segment, self.settings, keep_history=False
        )
        self.publisher.publish_from_source(raise_errors=True)
        self.publisher.start_watching()
        self.reader = Reader(self.segment.view(), slot=0)
        self.reader.refresh()
        self.fleet = _fleet.start(self.publisher)
        assert self.fleet is not None

    def records(self):
        return _fleet.read_fleet(self.etcd.source(KEY), self.settings).records

    def mine(self):
        """This master's record in etcd, or None."""
        found = [r for r in self.records() if r["pid"] == os.getpid()]
        return found[0] if found else None

    def current(self):
        """Whether the record says what the segment and the source say now."""
        self.reader.refresh()
        mine = self.mine()
        generation = self.publisher.generation
        return mine is not None and (
            mine["generation"] == generation
            and mine["revision"] == self.publisher.source.changed_at
            and mine["workers"] == [{"pid": os.getpid(), "generation": generation}]
        )

    def lease_in_etcd(self):
        """The lease the record is stored under (0: none, or no record)."""
        out = self.etcd.ctl("get", "--prefix", _fleet.PREFIX, "--write-out=json")
        kvs = json.loads(out).get("kvs") or []
        return int(kvs[0].get("lease", 0)) if kvs else 0

    def close(self):
        self.reader.close()
        self.publisher.close()


@pytest.fixture
def master(etcd):
    etcd.put(KEY, "value: one\n")
    masters = []

    def start(**kwargs):
        masters.append(Master(etcd, **kwargs))
        return masters[-1]

    yield start
    for m in masters:
        m.close()


def test_the_record_follows_each_publish_and_a_close_removes_it_at_once(etcd, master):
    # A lease of a minute: only a revocation removes the record at once.
    m = master(ttl_ms=60000)
    wait_for(m.current, "the record of generation 1")
    first = m.mine()
    assert first["host"] == socket.gethostname()
    assert first["service"] == "svc"
    assert first["source"] == etcd.source(KEY)
    assert first["error"] is None
    assert m.lease_in_etcd() == m.fleet.lease

    etcd.put(KEY, "value: two\n")
    wait_for(lambda: m.publisher.generation == 2 and m.current(), "generation 2")
    assert m.mine()["revision"] > first["revision"]

    etcd.put(KEY, "value: [unclosed\n")
    wait_for(lambda: (m.mine() or {}).get("error"), "the rejection in the record")
    assert m.mine()["error"].startswith(etcd.source(KEY))
    assert "unclosed" not in m.mine()["error"]  # the reason, never the content
    assert m.mine()["generation"] == 2

    m.close()
    assert m.records() == []


def test_two_publishers_on_one_machine_labelled_h1_and_h2_are_two_hosts(
    etcd, master
):
    h1 = master(name="one", host="h1")
    h2 = master(name="two", host="h2")
    wait_for(lambda: len(h1.records()) == 2, "both records")

    records = h1.records()
    assert [(r["host"], r["pid"], r["service"]) for r in records] == [
        ("h1", os.getpid(), "one"),
        ("h2", os.getpid(), "two"),
    ]
    keys = etcd.ctl("get", "--prefix", _fleet.PREFIX, "--keys-only").split()
    prefix = _fleet.prefix_for(KEY)
    assert sorted(keys) == [f"{prefix}h1:{os.getpid()}", f"{prefix}h2:{os.getpid()}"]
    assert fleet_view.summary(records, 0).startswith("2 hosts, 2 workers")

    h2.close()
    assert [r["host"] for r in h1.records()] == ["h1"]


def test_the_record_comes_back_after_etcd_restarts_and_the_loss_is_logged_once(
    etcd, master, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg._master.fleet")
    m = master()
    wait_for(m.current, "the record")

    etcd.stop()
    wait_for(lambda: m.fleet.failures >= 3, "three failed attempts")
    etcd.start()
    wait_for(lambda: m.fleet.failures == 0 and m.current(), "the record kept again")
    etcd.put(KEY, "value: two\n")
    wait_for(lambda: m.publisher.generation == 2 and m.current(), "generation 2")

    messages = [
        r.getMessage() for r in caplog.records if r.name == "hotcfg._master.fleet"
    ]
    lost = [text for text in messages if "cannot keep the fleet record" in text]
    back = [text for text in messages if "is kept again" in text]
    assert len(lost) == 1, messages
    assert len(back) == 1, messages


def test_a_cluster_restored_without_the_lease_gets_a_new_one_and_the_record(
    etcd, master
):
    m = master()
    wait_for(m.current, "the record")
    old = m.fleet.lease

    etcd.stop()
    shutil.rmtree(etcd.data_dir)  # the lease and the record are gone with it
    etcd.start()
    wait_for(lambda: m.mine() is not None, "the record back in the new cluster")
    assert m.fleet.lease != old
    assert m.lease_in_etcd() == m.fleet.lease


def test_a_lease_revoked_behind_its_back_is_replaced(etcd, master):
    m = master()
    wait_for(m.current, "the record")
    old = m.fleet.lease
    etcd.ctl("lease", "revoke", format(old, "x"))
    assert m.lease_in_etcd() == 0  # the record went with the lease

    wait_for(lambda: m.mine() is not None, "the record put again")
    assert m.fleet.lease not in (None, old)
    assert m.lease_in_etcd() == m.fleet.lease


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_never_touches_the_masters_record(etcd, master):
    m = master()
    wait_for(m.current, "the record")
    lease = m.fleet.lease
    pid = os.fork()
    if pid == 0:  # what a worker's exit does with what it inherited
        try:
            m.fleet.stop()
            m.publisher.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert m.mine() is not None
    assert m.fleet.lease == lease
    etcd.put(KEY, "value: two\n")  # and the master's thread still keeps it
    wait_for(lambda: m.publisher.generation == 2 and m.current(), "generation 2")


def test_an_unchanged_record_is_only_renewed_and_a_change_is_put(etcd):
    content = {"generation": 1}
    keeper = _fleet.FleetRecord(
        parse_etcd(etcd.source(KEY)),
        lambda: dict(content, host="h", pid=1, revision=1, workers=[]),
        access=EtcdAccess(),
        host="h",
        ttl_s=2,
        timeout_s=1,
    ).start()
    try:

        def put_at():
            out = etcd.ctl("get", keeper.key, "--write-out=json")
            kvs = json.loads(out).get("kvs") or []
            return int(kvs[0]["mod_revision"]) if kvs else 0

        wait_for(put_at, "the record")
        first = put_at()
        wait_for(lambda: keeper.renewals >= 3, "three keep-alives")
        assert put_at() == first

        content["generation"] = 2
        wait_for(lambda: put_at() > first, "the changed record put")
        records = _fleet.read_fleet(etcd.source(KEY), Settings.resolve({})).records
        assert [r["generation"] for r in records] == [2]
    finally:
        keeper.stop()


def test_a_layered_master_is_recorded_under_its_etcd_layer(etcd, tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("value: base\n")
    settings = Settings.resolve(
        {}, source=f"{base} | {etcd.source(KEY)}", etcd_progress_ms=PROGRESS_MS
    )
    followed = _fleet.etcd_source_of(source_for(settings, environ={}))
    assert followed is not None
    assert followed.target == parse_etcd(etcd.source(KEY))
    plain = Settings.resolve({}, source=str(base))
    assert _fleet.etcd_source_of(source_for(plain, environ={})) is None


def test_the_fleet_of_a_prefix_is_compared_with_its_newest_key(etcd):
    etcd.put("/app/conf/a", "1")
    newest = etcd.put("/app/conf/b", "2")
    etcd.put("/app/other", "3")  # not under the prefix
    fleet = _fleet.read_fleet(etcd.source("/app/conf/"), Settings.resolve({}))
    assert fleet.key_revision == newest


def test_a_master_serving_its_cache_says_so_in_its_record(etcd, http_server):
    """Started while its HTTP layer answers 503, the master serves its
    cache; its record (the etcd layer's) and the fleet view say so."""
    etcd.put(KEY, "value: one\n")
    http_server.answer(good("extra: 1\n"))
    settings = Settings.resolve(
        {},
        source=f"{etcd.source(KEY)} | {http_server.url()}",
        etcd_progress_ms=PROGRESS_MS,
        etcd_timeout_ms=1000,
        fleet_ttl_ms=2000,
        name="svc",
    )
    Followed(settings, name="svc", keep_history=True).close()  # the cache
    http_server.answer(Reply(503, b"down\n", "text/plain"))
    master = Followed(settings, name="svc", keep_history=True)
    try:
        assert master.publisher.from_cache is not None
        assert _fleet.start(master.publisher) is not None

        def fleet():
            return _fleet.read_fleet(etcd.source(KEY), settings)

        wait_for(lambda: fleet().records, "the record")
        found = fleet()
        summary = fleet_view.summary(found.records, found.key_revision)
        assert summary.endswith(
            f"behind revision {found.key_revision}: "
            f"{socket.gethostname()}:{os.getpid()} (cache)"
        )
        (mine,) = found.records
        assert mine["serving"] == "cache"
        assert "503" in mine["error"]
    finally:
        master.close()


def test_a_long_publish_keeps_the_lease_and_the_record(etcd, master):
    """A publish that runs longer than the lease (a slow validator) holds
    the publisher's lock the record is read under: the keeper renews the
    lease meanwhile and puts the record once the publish is done, so the
    master never drops out of the fleet view (and of promote's gates)."""
    m = master(ttl_ms=2000)
    wait_for(m.current, "the record")
    lease = m.fleet.lease
    renewals = m.fleet.renewals
    with m.publisher.serial:  # as a publish does, for 2 lease lifetimes
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            assert m.lease_in_etcd() == lease, "the record went with its lease"
            time.sleep(0.2)
    assert m.fleet.renewals > renewals
    etcd.put(KEY, "value: two\n")
    wait_for(m.current, "the record after the publish")
    assert m.fleet.lease == lease
