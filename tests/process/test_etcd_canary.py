"""A publisher following a real etcd key while a canary runs beside it:
a canary record nobody can read is served by nobody and said so once, an
etcd layer of a layered source follows the canary as a plain key does, and
a user granted the key alone (not the range beside it) follows the key as
before, told what to grant."""

import json
import logging

import pytest

from hotcfg._master import fleet
from hotcfg._settings import Settings
from hotcfg._sources.etcd.rollout import Audit, Canary, Selector
from tests.etcd import PROGRESS_MS, running_etcd
from tests.etcd_certs import etcd_certificates
from tests.following import Followed
from tests.waiting import wait_for

KEY = "/app/config.yaml"


def _settings(etcd, source=None, **more):
    return Settings.resolve(
        {},
        source=source or etcd.source(KEY),
        etcd_progress_ms=PROGRESS_MS,
        etcd_timeout_ms=2000,
        debounce_ms=10,
        **more,
    )


def quoted(text):
    """``text`` as one value of ``etcdctl txn``'s input (a Go string)."""
    return json.dumps(text)


def canary_put(selector, text, **fields):
    record = Canary(Selector.parse(selector), text.encode(), **fields).encode()
    return f"put {KEY}#canary {quoted(record.decode())}"


def test_a_canary_record_nobody_can_read_is_served_by_nobody(etcd, caplog):
    caplog.set_level(logging.WARNING, logger="hotcfg")
    etcd.put(KEY, "value: one\n")
    followed = Followed(_settings(etcd, host="web-1"), name="garbled")
    try:
        followed.wait_value("one")
        broken = etcd.txn(f"put {KEY}#canary {quoted('{not a canary')}")
        wait_for(lambda: followed.source.canary_problem, "the canary refused")
        assert f"{KEY}#canary at revision {broken}" in followed.source.canary_problem
        record = fleet.publisher_content(followed.publisher, host="web-1")
        assert record["track"] == "main"
        assert record["canary_error"] == followed.source.canary_problem
        assert record["error"] is None  # the key itself is served, unrefused
        etcd.put(KEY, "value: two\n")  # the key is still followed
        followed.wait_value("two")
        assert caplog.text.count("is served by nobody") == 1
        # A readable canary for this host replaces it: served at once.
        revision = etcd.txn(canary_put("web-1", "value: canary\n"))
        followed.wait_value("canary")
        record = fleet.publisher_content(followed.publisher, host="web-1")
        assert (record["track"], record["revision"]) == ("canary", revision)
        assert record["canary_error"] is None
    finally:
        followed.close()


def test_an_etcd_layer_follows_the_canary_of_its_key(etcd, tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("value: base\nfrom_file: yes\n")
    etcd.put(KEY, "value: one\n")
    layered = f"{base} | {etcd.source(KEY)}"
    chosen = Followed(_settings(etcd, layered, host="web-1"), name="lay1")
    other = Followed(_settings(etcd, layered, host="web-2"), name="lay2")
    try:
        chosen.wait_value("one")
        other.wait_value("one")
        revision = etcd.txn(
            canary_put("web-1", "value: canary\n", author="bob@ops", message="m")
        )
        chosen.wait_value("canary")
        assert chosen.snapshot().get("from_file") is True  # merged as a layer
        # Who made it reaches the publisher through the layers.
        who = chosen.publisher.source.provenance
        assert (who.action, who.author, who.message) == ("canary", "bob@ops", "m")
        record = fleet.publisher_content(chosen.publisher, host="web-1")
        assert (record["track"], record["revision"]) == ("canary", revision)
        etcd.put(KEY, "value: two\n")
        other.wait_value("two")
        assert chosen.value() == "canary"
        assert fleet.publisher_content(other.publisher, host="web-2")["track"] == (
            "main"
        )
    finally:
        chosen.close()
        other.close()


USER = "app"
PASSWORD = "s3cret-Pa55-d41d8cd9"


def test_a_user_granted_the_key_alone_follows_it_without_canaries(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hotcfg")
    certs = etcd_certificates(tmp_path / "certs")
    password_file = tmp_path / "etcd-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    with running_etcd(
        tmp_path / "etcd", server_cert=certs.server, ca_file=certs.ca_file
    ) as etcd:
        # Auth on, root for etcdctl; the master's user may read KEY only.
        etcd.enable_auth("other", PASSWORD, "/elsewhere/")
        etcd.ctl("user", "add", f"{USER}:{PASSWORD}", "--interactive=false")
        etcd.ctl("role", "add", "key-only")
        etcd.ctl("role", "grant-permission", "key-only", "read", KEY)
        etcd.ctl("user", "grant-role", USER, "key-only")
        etcd.put(KEY, "value: one\n")
        etcd.txn(canary_put("web-1", "value: canary\n"))
        settings = _settings(
            etcd,
            host="web-1",
            etcd_user=USER,
            etcd_password_file=str(password_file),
            etcd_ca_file=certs.ca_file,
        )
        followed = Followed(settings, name="keyonly")
        try:
            followed.wait_value("one")  # the canary is not seen, not served
            assert followed.source.track == "main"
            etcd.put(KEY, "value: two\n")  # watched: the key alone
            followed.wait_value("two")
            warnings = [
                r.getMessage()
                for r in caplog.records
                if "refused reading the keys beside" in r.getMessage()
            ]
            assert len(warnings) == 1, warnings
            assert f"[{KEY}, {KEY}$)" in warnings[0]
            assert f"grant-permission ROLE read {KEY} --prefix" in warnings[0]
            assert not followed.error()
        finally:
            followed.close()


@pytest.mark.parametrize("selected", [True, False])
def test_provenance_goes_with_what_the_host_serves(etcd, selected):
    """The history records the audit of the transaction that changed the
    key, or the canary's author and message on the canary."""
    etcd.put(KEY, "value: one\n")
    host = "web-1" if selected else "web-2"
    followed = Followed(_settings(etcd, host=host), name="who", keep_history=False)
    try:
        followed.wait_value("one")
        audit = Audit("push", "ann@desk", "more workers", at=2.0).encode().decode()
        etcd.txn(
            f"put {KEY} {quoted('value: two')}", f"put {KEY}#audit {quoted(audit)}"
        )
        followed.wait_value("two")
        assert followed.source.provenance == Audit(
            "push", "ann@desk", "more workers", 2.0
        )
        revision = etcd.txn(
            canary_put("web-1", "value: canary\n", author="bob", message="try")
        )
        if selected:
            followed.wait_value("canary")
            assert followed.source.provenance == Audit(
                "canary", "bob", "try", 0.0, selector="web-1"
            )
        else:
            wait_for(lambda: followed.source.revision >= revision, "the canary seen")
            followed.publisher.publish_from_source()
            assert followed.value() == "two"
            assert followed.source.track == "main"
    finally:
        followed.close()


def test_a_selected_master_refuses_canary_content_it_cannot_parse(etcd):
    etcd.put(KEY, "value: one\n")
    followed = Followed(_settings(etcd, host="web-1"), name="badcanary")
    try:
        followed.wait_value("one")
        revision = etcd.txn(canary_put("web-1", "value: [unclosed\n"))
        # The publisher's own record of it (the segment's header is written
        # just before): what the fleet record shows.
        wait_for(
            lambda: f"{KEY}#canary" in (followed.publisher.last_error or ""),
            "the canary refused",
        )
        assert f"{KEY}#canary" in followed.error()
        assert followed.value() == "one"  # the last good config stays
        record = fleet.publisher_content(followed.publisher, host="web-1")
        assert (record["track"], record["revision"]) == ("canary", revision)
        assert f"{KEY}#canary" in record["error"]
        assert record["serving"] == f"rejected revision {revision}"
    finally:
        followed.close()


def test_the_record_shows_a_canary_only_once_its_generation_is_published(etcd):
    """A canary received but not yet published is no canary applied: the
    record keeps the revision and track of what was last loaded, so promote
    never takes the generation before it for the canary's."""
    before = etcd.put(KEY, "value: one\n")
    followed = Followed(_settings(etcd, host="web-1"), name="pending")
    try:
        followed.wait_value("one")
        publisher = followed.publisher
        with publisher.serial:  # no publish can run meanwhile
            revision = etcd.txn(canary_put("web-1", "value: canary\n"))
            wait_for(lambda: followed.source.held()[1] == revision, "canary held")
            record = fleet.publisher_content(publisher, host="web-1")
            assert (record["track"], record["revision"]) == ("main", before)
        followed.wait_value("canary")
        wait_for(
            lambda: fleet.publisher_content(publisher, host="web-1")["track"]
            == "canary",
            "the record on the canary",
        )
        record = fleet.publisher_content(publisher, host="web-1")
        assert record["revision"] == revision
        assert record["generation"] == publisher.generation
    finally:
        followed.close()


def _cached(publisher):
    """The document of the entry a cold start of ``publisher`` would serve."""
    from hotcfg._master import coldstart
    from hotcfg._segment.payload import decode_payload

    entry = coldstart.load(publisher.cache_path)
    return None if entry is None else decode_payload(entry.document).to_dict()


def test_the_cache_never_keeps_a_canary_and_keeps_it_once_promoted(etcd):
    """A master restarted while etcd is out of reach serves its cache: that
    must never be a canary, which may have been aborted meanwhile or no
    longer pick this host. Promoted (the same content, now the key's), it
    is cached."""
    import os

    from hotcfg._master.publisher import Publisher
    from hotcfg._segment.shm import Segment
    from hotcfg._sources.select import source_for
    from hotcfg._worker.reader import Reader

    etcd.put(KEY, "value: main\n")
    settings = _settings(etcd, host="web-1")
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="cached")
    publisher = Publisher(source_for(settings), segment, settings, keep_history=True)
    reader = None
    try:
        publisher.start()
        publisher.start_watching()
        reader = Reader(segment.view())
        assert publisher.cache_path is not None
        assert _cached(publisher) == {"value": "main"}
        etcd.txn(canary_put("web-1", "value: canary\n"))
        wait_for(lambda: reader.refresh().get("value") == "canary", "the canary")
        with publisher.serial:  # the publish is done, its files written
            assert _cached(publisher) == {"value": "main"}
        # Promoted: the key gets the canary's content, the canary goes.
        etcd.txn(f"put {KEY} {quoted('value: canary')}", f"del {KEY}#canary")
        wait_for(lambda: _cached(publisher) == {"value": "canary"}, "cached")
        assert reader.refresh().get("value") == "canary"
        # A rollback to a generation the canary made is not cached either.
        etcd.put(KEY, "value: two\n")
        wait_for(lambda: _cached(publisher) == {"value": "two"}, "two cached")
        made = [e for e in publisher.history.entries if e.action == "canary"]
        assert publisher.republish(made[-1], timeout_s=10) is not None
        assert reader.refresh().get("value") == "canary"
        assert _cached(publisher) == {"value": "two"}
    finally:
        if reader is not None:
            reader.close()
        publisher.close()
