"""The etcd source and a real publisher against a real etcd member."""

import logging
import os
import signal
import time

import pytest

from hotcfg._errors import ConfigError
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from tests.etcd import PROGRESS_MS
from tests.following import Followed
from tests.waiting import wait_for

KEY = "/app/config.yaml"


@pytest.fixture
def followed(etcd):
    etcd.put(KEY, "value: one\n")
    followed = Followed(
        Settings.resolve(
            {},
            source=etcd.source(KEY),
            etcd_progress_ms=PROGRESS_MS,
            etcd_timeout_ms=2000,
        ),
        name="e",
    )
    yield followed
    followed.close()


def test_settings_name_the_endpoints_the_key_and_its_format():
    settings = Settings.resolve(
        {"HOTCFG_SOURCE": "etcd://10.0.0.1:2379,[::1],etcd-2/app/config"},
        format="json",
    )
    source = source_for(settings)
    assert source.target.endpoints == (
        ("10.0.0.1", 2379),
        ("::1", 2379),
        ("etcd-2", 2379),
    )
    assert source.target.key == "/app/config"
    assert source.fmt == "json"
    assert source.location == "etcd://10.0.0.1:2379,[::1]:2379,etcd-2:2379/app/config"
    assert Settings.resolve({}, source="etcd://h/app/c.toml").format == "toml"
    with pytest.raises(ConfigError, match="HOTCFG_SOURCE"):
        Settings.resolve({}, source="etcd://h/app/config")  # no format
    with pytest.raises(ConfigError, match="not supported yet"):
        Settings.resolve({}, source="etcd://user:pw@h/app/c.yaml")


def test_a_put_is_published_and_a_delete_keeps_the_last_good(etcd, followed):
    assert followed.value() == "one"
    etcd.put(KEY, "value: two\n")
    followed.wait_value("two")
    generation = followed.publisher.generation

    deleted_at = etcd.ctl("del", KEY) and etcd.revision()
    wait_for(lambda: "deleted" in followed.error(), "the deletion recorded")
    assert f"key {KEY} was deleted at revision {deleted_at}" in followed.error()
    assert followed.value() == "two"
    assert followed.publisher.generation == generation

    etcd.put(KEY, "")
    wait_for(lambda: "empty" in followed.error(), "the empty value recorded")
    assert followed.value() == "two"

    etcd.put(KEY, "value: three\n")
    followed.wait_value("three")
    assert followed.error() == ""


def test_invalid_yaml_is_rejected_and_the_last_good_kept(etcd, followed):
    etcd.put(KEY, "value: [unclosed\n")
    wait_for(lambda: followed.error(), "the rejection recorded")
    assert followed.error().startswith(etcd.source(KEY))
    assert followed.value() == "one"
    etcd.put(KEY, "value: fixed\n")
    followed.wait_value("fixed")


def test_a_missing_key_or_an_unreachable_cluster_refuses_the_first_read(etcd):
    settings = Settings.resolve({}, source=etcd.source("/nothing.yaml"))
    with pytest.raises(ConfigError, match=r"key /nothing\.yaml does not exist"):
        source_for(settings).load()
    port = etcd.client_port
    etcd.stop()
    with pytest.raises(ConfigError, match=f"etcd unreachable: 127.0.0.1:{port}"):
        source_for(settings).load()


def test_a_restarted_etcd_is_followed_again_from_the_last_revision(
    etcd, followed, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg")
    etcd.stop()
    wait_for(lambda: "etcd unreachable" in followed.error(), "unreachable recorded")
    assert followed.value() == "one"
    etcd.start()
    etcd.put(KEY, "value: after\n")
    followed.wait_value("after")
    assert followed.error() == ""
    assert "following etcd://" in caplog.text


def test_compaction_while_disconnected_reads_the_key_in_full(etcd, followed, caplog):
    caplog.set_level(logging.INFO, logger="hotcfg")
    # Disconnected: the source cannot reach etcd, so its stream misses what
    # happens meanwhile (the member is up, for etcdctl, on another port).
    source = followed.source
    with etcd.elsewhere(
        lambda: wait_for(lambda: "unreachable" in followed.error(), "the outage")
    ):
        for n in range(5):
            revision = etcd.put(KEY, f"value: put-{n}\n")
        etcd.ctl("compact", str(revision))
    followed.wait_value("put-4")
    assert "compacted" in caplog.text
    assert f"read {etcd.source(KEY)} in full at revision {revision}" in caplog.text
    assert source.revision >= revision


def test_progress_notifications_keep_a_quiet_watch_and_a_silent_one_is_left(
    etcd, followed, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg")
    # Quiet for longer than the stream's read timeout (1.5 x 500 ms + 2 s):
    # etcd's progress notifications keep it alive.
    time.sleep(3.5)
    assert "lost the etcd watch" not in caplog.text
    assert followed.error() == ""
    # A member that stops answering (frozen, not closed: no FIN) is left
    # once the read timeout passes (or a probe finds it silent, whichever
    # comes first), and the reason recorded.
    os.kill(etcd.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: "etcd unreachable" in followed.error(), "silence noticed")
        assert "no word for" in caplog.text or "a probe had no answer" in caplog.text
    finally:
        os.kill(etcd.proc.pid, signal.SIGCONT)
    etcd.put(KEY, "value: thawed\n")
    followed.wait_value("thawed")


def test_a_progress_notification_moves_the_revision_not_the_last_change(etcd, followed):
    """The fleet record shows ``changed_at``: a quiet key must not change it
    however far the store moves (other keys, progress notifications)."""
    changed = etcd.put(KEY, "value: two\n")
    followed.wait_value("two")
    assert followed.source.changed_at == changed
    etcd.put("/elsewhere", "x")
    wait_for(lambda: followed.source.revision > changed, "a progress notification")
    assert followed.source.changed_at == changed
    etcd.ctl("del", KEY)
    wait_for(lambda: followed.source.changed_at > changed, "the deletion held")


def _master(etcd, name="cold"):
    """A publisher as the Gunicorn master starts one (history and cache kept)."""
    settings = Settings.resolve(
        {}, source=etcd.source(KEY), etcd_progress_ms=PROGRESS_MS, etcd_timeout_ms=1000
    )
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name=name)
    return Publisher(source_for(settings), segment, settings, keep_history=True)


def test_a_master_started_while_etcd_is_down_serves_its_cache(etcd, caplog):
    caplog.set_level(logging.INFO, logger="hotcfg")
    etcd.put(KEY, "value: cached\n")
    first = _master(etcd)
    assert first.start() == 1
    cache = first.cache_path
    assert cache is not None
    assert cache.endswith(".cache")
    assert os.stat(cache).st_mode & 0o777 == 0o600
    first.close()
    etcd.stop()

    master = _master(etcd)
    try:
        assert master.start() is not None
        master.start_watching()
        reader = Reader(master.segment.view())
        assert reader.refresh().get("value") == "cached"
        header = layout.read_header(master.segment.buffer)
        assert header.source == f"cache:{etcd.source(KEY)}"
        assert "etcd unreachable" in header.error
        assert "serving the cache from" in header.error
        assert "(age " in header.error
        assert "serving the cache from" in caplog.text
        assert "the live content is published when the store answers" in caplog.text
        # The watcher's own failures keep saying the cache is served.
        time.sleep(0.5)
        assert "serving the cache" in layout.read_header(master.segment.buffer).error

        etcd.start()  # same data directory and ports
        etcd.put(KEY, "value: live\n")
        wait_for(lambda: reader.refresh().get("value") == "live", "the live value")
        # Cleared just after the publish returns, in the watcher's thread.
        wait_for(lambda: master.from_cache is None, "the cache no longer served")
        assert not layout.read_header(master.segment.buffer).error
        reader.close()
    finally:
        master.close()


def test_the_cache_confirmed_by_etcd_is_published_under_the_live_source(etcd):
    etcd.put(KEY, "value: same\n")
    first = _master(etcd)
    assert first.start() == 1
    first.close()
    etcd.stop()

    master = _master(etcd)
    try:
        cached = master.start()
        assert cached is not None
        assert layout.read_header(master.segment.buffer).source.startswith("cache:")
        master.start_watching()
        etcd.start()  # the key still holds the cached content
        wait_for(lambda: master.from_cache is None, "the cache no longer served")
        header = layout.read_header(master.segment.buffer)
        assert header.source == etcd.source(KEY)
        assert header.generation == cached + 1
        assert not header.error
    finally:
        master.close()


def test_a_master_started_while_etcd_is_down_without_a_cache_refuses(etcd):
    etcd.stop()
    master = _master(etcd)
    try:
        with pytest.raises(ConfigError, match="etcd unreachable"):
            master.start()
        assert master.start(start_empty=True) is None
        error = layout.read_header(master.segment.buffer).error
        assert "etcd unreachable" in error
        assert "serving" not in error
    finally:
        master.close()


def test_a_corrupt_or_foreign_cache_is_not_trusted(etcd, caplog):
    etcd.put(KEY, "value: cached\n")
    first = _master(etcd)
    first.start()
    cache = first.cache_path
    first.close()
    etcd.stop()
    os.chmod(cache, 0o644)  # readable by others: not ours to trust
    master = _master(etcd)
    try:
        with pytest.raises(ConfigError, match="etcd unreachable"):
            master.start()
        assert "ignoring the cache file" in caplog.text
    finally:
        master.close()
