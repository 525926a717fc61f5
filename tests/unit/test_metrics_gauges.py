"""The metrics' state gauges follow what ``hotcfg status`` reads: the
standing rejection and its kind, the cache served since the start, the
running validator. Scraped from a real publisher's registry."""

import os
import threading

import pytest

from hotcfg._errors import UnreachableError
from hotcfg._master import metrics
from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from tests.waiting import wait_for

prometheus_client = pytest.importorskip("prometheus_client")

GATE = threading.Event()


def waiting_validator(config):
    """A validator that runs until the test opens the gate."""
    GATE.wait(30)
    return config


def scrape(publisher):
    text = prometheus_client.generate_latest(metrics.registry(publisher)).decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def rejecting(samples):
    return {
        reason
        for reason in metrics.REASONS
        if samples[f'hotcfg_rejecting{{reason="{reason}"}}'] == 1
    }


class StoreSource(FileSource):
    """A file standing for a store that can be out of reach, as etcd or an
    HTTP server is (while a file ``<path>.away`` exists): the master keeps
    a cache of it."""

    @property
    def keeps_cache(self):
        return True

    def load(self):
        if os.path.exists(f"{self.path}.away"):
            raise UnreachableError(f"{self.path}: the store is out of reach")
        return super().load()


@pytest.fixture
def made():
    publishers = []
    yield publishers
    GATE.set()
    for publisher in publishers:
        publisher.close()


def test_source_up_and_rejecting_follow_the_standing_rejection(tmp_path, made):
    path = tmp_path / "config.yaml"
    path.write_text("value: one\n")
    segment = Segment.create(str(tmp_path / "seg"), name="t")
    publisher = Publisher(
        FileSource(str(path), "yaml", 1 << 20), segment, Settings(), keep_history=False
    )
    made.append(publisher)
    publisher.publish_from_source(raise_errors=True)
    first = scrape(publisher)
    assert first["hotcfg_source_up"] == 1
    assert rejecting(first) == set()
    assert first["hotcfg_last_publish_timestamp_seconds"] > 0
    assert first["hotcfg_serving_cache"] == 0
    assert first["hotcfg_validating_since_timestamp_seconds"] == 0

    path.write_text("value: [\n")
    publisher.publish_from_source()
    bad = scrape(publisher)
    assert bad["hotcfg_source_up"] == 1  # read, then refused
    assert rejecting(bad) == {"parse"}

    os.remove(path)
    for _ in range(2):  # read again and again: still one gauge at 1
        publisher.publish_from_source()
        gone = scrape(publisher)
        assert gone["hotcfg_source_up"] == 0
        assert rejecting(gone) == {"source"}

    path.write_text("value: one\n")  # the live content again: no publish
    publisher.publish_from_source()
    back = scrape(publisher)
    assert back["hotcfg_source_up"] == 1
    assert rejecting(back) == set()
    assert back["hotcfg_generation"] == 1
    assert back['hotcfg_rejections_total{reason="source"}'] == 2
    assert (
        back["hotcfg_last_publish_timestamp_seconds"]
        == (first["hotcfg_last_publish_timestamp_seconds"])
    )


def test_serving_cache_holds_from_a_start_on_the_cache_until_the_store_answers(
    tmp_path, made
):
    path = tmp_path / "config.yaml"
    path.write_text("value: one\n")
    seg_dir = str(tmp_path / "seg")

    def master():
        source = StoreSource(str(path), "yaml", 1 << 20)
        publisher = Publisher(source, Segment.create(seg_dir, name="t"), Settings())
        made.append(publisher)
        return publisher

    first = master()
    first.start()
    assert scrape(first)["hotcfg_serving_cache"] == 0
    first.close()

    away = tmp_path / "config.yaml.away"
    away.touch()
    publisher = master()
    publisher.start()
    cached = scrape(publisher)
    assert cached["hotcfg_serving_cache"] == 1
    assert cached["hotcfg_source_up"] == 0
    assert rejecting(cached) == {"source"}

    away.unlink()
    publisher.publish_from_source()
    live = scrape(publisher)
    assert live["hotcfg_serving_cache"] == 0
    assert live["hotcfg_source_up"] == 1
    assert rejecting(live) == set()


def test_validating_since_is_the_running_validators_start(tmp_path, made, monkeypatch):
    GATE.clear()
    path = tmp_path / "config.yaml"
    path.write_text("value: one\n")
    settings = Settings.resolve(
        {
            "HOTCFG_SOURCE": str(path),
            "HOTCFG_VALIDATOR": f"{__name__}:waiting_validator",
        }
    )
    segment = Segment.create(str(tmp_path / "seg"), name="t")
    publisher = Publisher(
        FileSource(str(path), "yaml", 1 << 20), segment, settings, keep_history=False
    )
    made.append(publisher)
    running = threading.Thread(target=publisher.publish_from_source)
    running.start()
    try:
        wait_for(lambda: publisher.validating is not None, "the validator to start")
        during = scrape(publisher)
        assert during["hotcfg_validating"] == 1
        since = publisher.validating.since
        assert during["hotcfg_validating_since_timestamp_seconds"] == since
    finally:
        GATE.set()
        running.join(30)
    after = scrape(publisher)
    assert after["hotcfg_validating"] == 0
    assert after["hotcfg_validating_since_timestamp_seconds"] == 0
    assert after["hotcfg_generation"] == 1
