"""``Publisher.publish_now`` (``hotcfg wait``) reads a remote source now,
beside its watch or poll; what the watch or poll brings later that is older
than that read never replaces it."""

import base64
import os
import threading

import pytest

from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from tests.following import Followed
from tests.httpserver import Reply, good
from tests.stalling_proxy import StallingProxy
from tests.waiting import wait_for

KEY = "/app/config.yaml"
PREFIX = "/app/conf/"


def put_event(key, text, mod_revision):
    """One event of an etcd watch response, as the gateway sends it."""
    return {
        "kv": {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(text.encode()).decode(),
            "mod_revision": str(mod_revision),
        }
    }


def watched(etcd, key):
    """A source of ``key`` being watched, without its threads: the test
    hands it watch responses itself."""
    source = source_for(Settings.resolve({}, source=etcd.source(key)))
    source._watching = True  # load() gives what is held, as under a watch
    return source


@pytest.mark.parametrize("key", [KEY, PREFIX])
def test_a_watch_response_older_than_a_read_changes_nothing(etcd, key):
    """The watch delivers, late, a put that a read now has passed."""
    path = KEY if key == KEY else PREFIX + "value"
    stale = etcd.put(path, "two" if key == PREFIX else "value: two\n")
    etcd.put(path, "three" if key == PREFIX else "value: three\n")
    source = watched(etcd, key)
    source.refresh()
    assert source.load() == {"value": "three"}
    late = put_event(path, "two" if key == PREFIX else "value: two\n", stale)
    assert source.apply({"events": [late]}) is False
    assert source.load() == {"value": "three"}


@pytest.mark.parametrize("key", [KEY, PREFIX])
def test_a_read_older_than_the_watch_changes_nothing(etcd, key):
    """A read answered before a put the watch has applied since."""
    path = KEY if key == KEY else PREFIX + "value"
    revision = etcd.put(path, "one" if key == PREFIX else "value: one\n")
    source = watched(etcd, key)
    newer = put_event(path, "four" if key == PREFIX else "value: four\n", revision + 5)
    assert source.apply({"events": [newer]}) is True
    source.refresh()  # the store is at ``revision``: older than what is held
    assert source.load() == {"value": "four"}
    assert source.revision == revision + 5


def test_an_etcd_read_now_is_not_undone_by_the_watch_catching_up(etcd):
    """Two puts held back on the watch stream, the key read now, then the
    stream delivers them: both are older than the read and change nothing;
    the next put is the next generation."""
    etcd.put(KEY, "value: one\n")
    proxy = StallingProxy(etcd.client_port)
    followed = None
    try:
        followed = Followed(
            Settings.resolve(
                {}, source=f"etcd://127.0.0.1:{proxy.port}{KEY}", etcd_timeout_ms=2000
            ),
            name="r",
        )
        followed.wait_value("one")
        proxy.stall()
        etcd.put(KEY, "value: two\n")
        etcd.put(KEY, "value: three\n")
        current = followed.publisher.publish_now(timeout_s=10)
        assert (current.rejected, current.note) == (None, None)
        assert followed.snapshot().generation == current.generation
        assert followed.value() == "three"
        publishes = followed.publisher.publishes

        proxy.resume()
        etcd.put(KEY, "value: four\n")
        followed.wait_value("four")
        assert followed.publisher.publishes == publishes + 1
        assert followed.snapshot().generation == current.generation + 1
    finally:
        if followed is not None:
            followed.close()
        proxy.stop()


def test_an_http_fetch_now_is_not_undone_by_an_older_poll(http_server):
    """The poll thread's fetch began before the change and ends after the
    fetch made now: its older answer is dropped."""
    http_server.answer(good("value: one\n"))
    settings = Settings.resolve(
        {},
        source=http_server.url(),
        poll_interval_ms=600_000,
        http_timeout_ms=10_000,
    )
    source = source_for(settings)
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="h")
    publisher = Publisher(source, segment, settings, keep_history=False)
    polled = threading.Event()

    def on_change():
        publisher.publish_from_source()
        polled.set()

    watching = reader = None
    try:
        publisher.start()
        watching = source.watch(on_change, settings)
        reader = Reader(segment.view())
        # About a second to send: the poll's answer arrives last.
        slow = b"value: old\n" + b"#" * 40 + b"\n"
        http_server.answer(Reply(body=slow, trickle_s=0.025))
        watching.notice()  # poll at once (and call on_change after)
        wait_for(lambda: http_server.count() == 2, "the poll under way")
        http_server.answer(good("value: new\n"))
        current = publisher.publish_now(timeout_s=10)
        assert reader.refresh().get("value") == "new"

        wait_for(polled.is_set, "the poll's answer handled")
        assert http_server.count() == 3
        assert reader.refresh().get("value") == "new"
        assert publisher.generation == current.generation
    finally:
        if watching is not None:
            watching.stop()
        if reader is not None:
            reader.close()
        publisher.close()
