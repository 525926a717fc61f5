"""An etcd prefix as one nested mapping, followed by a real publisher
against a real etcd member."""

import logging

import pytest

from hotcfg._errors import ConfigError
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for
from tests.etcd import PROGRESS_MS
from tests.following import Followed
from tests.waiting import wait_for

PREFIX = "/app/config/"


@pytest.fixture
def followed(etcd):
    etcd.put("/app/config/db/host", "db.local")
    etcd.put("/app/config/db/timeout", "5")
    etcd.put("/app/config/name", "svc")
    etcd.put("/app/config/limits", "{rps: 100, burst: 20}")
    # Beside the prefix, not under it: never read.
    etcd.put("/app/config", "outside: true")
    etcd.put("/app/configx/name", "outside")
    followed = Followed(
        Settings.resolve(
            {},
            source=etcd.source(PREFIX),
            etcd_progress_ms=PROGRESS_MS,
            etcd_timeout_ms=2000,
        ),
        name="p",
    )
    yield followed
    followed.close()


def test_the_keys_under_the_prefix_are_one_nested_mapping(followed):
    assert followed.source.fmt == "yaml"
    assert followed.snapshot().to_dict() == {
        "db": {"host": "db.local", "timeout": 5},
        "name": "svc",
        "limits": {"rps": 100, "burst": 20},
    }


def test_a_txn_writing_two_keys_is_one_publish(etcd, followed):
    before = followed.publisher.generation
    etcd.txn("put /app/config/db/timeout 30", "put /app/config/name svc-2")
    snapshot = followed.wait(
        lambda s: s.get("name") == "svc-2", "the txn's second key published"
    )
    # Both keys are new in the one snapshot that has either, and nothing
    # was published between the txn's two writes.
    assert snapshot.get("db.timeout") == 30
    assert snapshot.generation == before + 1
    assert followed.publisher.generation == before + 1


def test_a_deleted_key_leaves_the_mapping(etcd, followed):
    etcd.ctl("del", "/app/config/db/host")
    snapshot = followed.wait(
        lambda s: "host" not in s.get("db"), "the deleted key gone"
    )
    assert snapshot.get("db") == {"timeout": 5}
    assert followed.error() == ""


def test_a_key_that_is_a_value_and_a_parent_is_refused_naming_both(etcd, followed):
    generation = followed.publisher.generation
    etcd.put("/app/config/db", "postgres")
    wait_for(lambda: "parent" in followed.error(), "the conflict recorded")
    assert followed.error() == (
        f"{etcd.source(PREFIX)}: key /app/config/db holds a value and is also the "
        "parent of key /app/config/db/host: a key is either a value or a folder "
        "of keys; delete or move one of them"
    )
    assert followed.snapshot().get("db.host") == "db.local"
    assert followed.publisher.generation == generation

    etcd.ctl("del", "/app/config/db")
    wait_for(lambda: followed.error() == "", "the conflict gone")
    assert followed.publisher.generation == generation  # the same content


def test_no_keys_under_the_prefix_keeps_the_last_good(etcd, followed):
    generation = followed.publisher.generation
    etcd.ctl("del", "--prefix", PREFIX)
    emptied_at = etcd.revision()
    wait_for(lambda: "no keys" in followed.error(), "the empty prefix recorded")
    assert followed.error() == (
        f"{etcd.source(PREFIX)}: no keys under {PREFIX} (the last was deleted at "
        f"revision {emptied_at})"
    )
    assert followed.snapshot().get("name") == "svc"
    assert followed.publisher.generation == generation
    assert etcd.ctl("get", "/app/config", "--print-value-only") == "outside: true\n"

    etcd.put("/app/config/name", "back")
    snapshot = followed.wait(lambda s: s.get("name") == "back", "the new key")
    assert snapshot.to_dict() == {"name": "back"}
    assert followed.error() == ""


def test_a_bad_value_is_refused_naming_its_key(etcd, followed):
    etcd.put("/app/config/limits", "{rps: [unclosed")
    wait_for(lambda: followed.error(), "the rejection recorded")
    assert followed.error().startswith(f"{etcd.source('/app/config/limits')}:")
    etcd.put("/app/config/limits", "")
    wait_for(lambda: "empty" in followed.error(), "the empty value recorded")
    assert "key /app/config/limits holds an empty value" in followed.error()
    assert followed.snapshot().get("limits.rps") == 100


def test_the_cap_is_over_the_sum_of_the_values(etcd):
    for n in range(4):
        etcd.put(f"/app/config/part{n}", "x" * 20)  # 80 bytes together

    def load(max_bytes):
        settings = Settings.resolve({}, source=etcd.source(PREFIX), max_bytes=max_bytes)
        return source_for(settings).load()

    with pytest.raises(ConfigError) as info:
        load(79)
    assert info.value.reason == (
        f"the values under {PREFIX} at revision 5 are 80 bytes together, over the "
        f"79-byte limit (HOTCFG_MAX_BYTES; the largest: {PREFIX}part0, 20 bytes)"
    )
    assert load(80) == {f"part{n}": "x" * 20 for n in range(4)}


def test_no_keys_at_the_first_read_refuses(etcd):
    settings = Settings.resolve({}, source=etcd.source("/nothing/"))
    with pytest.raises(ConfigError) as info:
        source_for(settings).load()
    assert info.value.reason == "no keys under /nothing/"


def test_compaction_while_disconnected_reads_the_prefix_in_full(etcd, followed, caplog):
    caplog.set_level(logging.INFO, logger="hotcfg")
    # Disconnected (the member answers etcdctl on another port meanwhile):
    # a key deleted then, and compacted away, must not stay in the mapping.
    with etcd.elsewhere(
        lambda: wait_for(lambda: "unreachable" in followed.error(), "the outage")
    ):
        etcd.ctl("del", "/app/config/limits")
        revision = etcd.put("/app/config/name", "after")
        etcd.ctl("compact", str(revision))
    snapshot = followed.wait(lambda s: s.get("name") == "after", "the re-read")
    assert "limits" not in snapshot
    assert "compacted" in caplog.text
    assert f"read {etcd.source(PREFIX)} in full at revision {revision}" in caplog.text
