"""An etcd key's source with its canary and audit record beside it, fed
watch responses by hand: which document a master serves by its host label,
a promote applied whole, a canary nobody serves, and who made what is
served. No etcd: the source is marked watching, so ``load()`` gives what
the responses left."""

import base64
import json
import logging

import pytest

from hotcfg._errors import ConfigError, SourceError
from hotcfg._sources.etcd.rollout import Audit, Canary, Selector
from hotcfg._sources.etcd.source import EtcdSource
from hotcfg._sources.locations import parse_etcd

KEY = "/app/config"
MAX = 4096


def source(host, *, max_bytes=MAX):
    followed = EtcdSource(
        parse_etcd(f"etcd://127.0.0.1:1{KEY}"), "yaml", max_bytes, host=host
    )
    followed._watching = True  # load() gives what is held
    return followed


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def put(key, value, revision):
    return {"kv": {"key": b64(key), "value": b64(value), "mod_revision": str(revision)}}


def delete(key, revision):
    return {"type": "DELETE", "kv": {"key": b64(key), "mod_revision": str(revision)}}


def response(*events):
    return {"header": {"revision": "0"}, "events": list(events)}


def canary(selector, text="value: canary\n", **fields):
    return Canary(Selector.parse(selector), text.encode(), **fields).encode()


def audit(action="push", author="ann@desk", message="why"):
    return Audit(action, author, message, at=1.5).encode()


def on_canary(host, selector="web-1"):
    """A source of ``host`` holding main at 2 and a canary at 3."""
    followed = source(host)
    followed.apply(response(put(KEY, "value: main\n", 2)))
    followed.apply(
        response(put(KEY + "#canary", canary(selector, author="bob", message="m"), 3))
    )
    return followed


def test_a_selected_master_serves_the_canary_and_the_others_the_key():
    chosen, other = on_canary("web-1"), on_canary("web-2")
    assert chosen.load() == {"value": "canary"}
    assert (chosen.track, chosen.changed_at) == ("canary", 3)
    assert other.load() == {"value": "main"}
    assert (other.track, other.changed_at) == ("main", 2)


def test_a_percentage_selects_by_the_stable_bucket_of_the_label():
    hosts = [f"web-{n}" for n in range(40)]
    picked = {h for h in hosts if Selector.parse("30%").selects(h)}
    assert picked
    assert picked != set(hosts)
    for host in hosts:
        served = on_canary(host, "30%").load()["value"]
        assert served == ("canary" if host in picked else "main"), host


def test_a_promote_is_applied_whole_in_one_response():
    chosen, other = on_canary("web-1"), on_canary("web-2")
    promote = response(
        put(KEY, "value: canary\n", 4),
        delete(KEY + "#canary", 4),
        put(KEY + "#audit", audit("promote"), 4),
    )
    for followed in (chosen, other):
        assert followed.apply(promote) is True
        assert followed.load() == {"value": "canary"}
        assert (followed.track, followed.changed_at) == ("main", 4)
        assert followed.provenance == Audit("promote", "ann@desk", "why", 1.5)


def test_an_abort_puts_the_selected_master_back_on_the_key():
    chosen = on_canary("web-1")
    chosen.apply(response(delete(KEY + "#canary", 5)))
    assert chosen.load() == {"value": "main"}
    assert (chosen.track, chosen.changed_at) == ("main", 2)


def test_an_audit_record_alone_changes_nothing_served():
    followed = on_canary("web-2")
    assert followed.apply(response(put(KEY + "#audit", audit(), 9))) is False
    assert followed.revision == 9


def test_other_keys_of_the_range_are_ignored():
    followed = source("web-1")
    followed.apply(response(put(KEY, "value: main\n", 2)))
    assert followed.apply(response(put(KEY + "!x", "value: other\n", 3))) is False
    assert followed.apply(response(put(KEY + "#canaryx", canary("web-1"), 4))) is False
    assert followed.load() == {"value": "main"}


@pytest.mark.parametrize(
    "record",
    [b"{not json", json.dumps({"format": "other"}).encode(), b"\xff\xfe"],
)
def test_a_canary_that_does_not_decode_is_served_by_nobody(record, caplog):
    caplog.set_level(logging.WARNING, logger="hotcfg")
    for host in ("web-1", "web-2"):
        followed = source(host)
        followed.apply(response(put(KEY, "value: main\n", 2)))
        followed.apply(response(put(KEY + "#canary", record, 3)))
        assert followed.load() == {"value": "main"}
        followed.load()  # logged once per revision
        assert followed.track == "main"
        assert "#canary at revision 3" in followed.canary_problem
    assert caplog.text.count("is served by nobody") == 2


def test_a_canary_record_too_large_to_hold_is_served_by_nobody():
    followed = source("web-1")
    followed.apply(response(put(KEY, "value: main\n", 2)))
    big = canary("web-1", "value: " + "x" * (3 * MAX) + "\n")
    followed.apply(response(put(KEY + "#canary", big, 3)))
    assert followed.load() == {"value": "main"}
    assert "bytes, over the" in followed.canary_problem


def test_a_selected_master_rejects_canary_content_over_the_limit_by_its_size():
    followed = source("web-1")
    followed.apply(response(put(KEY, "value: main\n", 2)))
    text = "value: " + "x" * (MAX + 100) + "\n"  # the record fits its own limit
    followed.apply(response(put(KEY + "#canary", canary("web-1", text), 3)))
    with pytest.raises(SourceError, match=f"{len(text)} bytes, over the {MAX}-byte"):
        followed.load()
    assert followed.track == "canary"
    assert followed.canary_problem is None
    assert source_unselected_serves_main(text)


def source_unselected_serves_main(text):
    other = source("web-2")
    other.apply(response(put(KEY, "value: main\n", 2)))
    other.apply(response(put(KEY + "#canary", canary("web-1", text), 3)))
    return other.load() == {"value": "main"}


def test_canary_content_that_does_not_parse_names_the_canary_key():
    followed = source("web-1")
    followed.apply(response(put(KEY, "value: main\n", 2)))
    followed.apply(response(put(KEY + "#canary", canary("web-1", "a: [\n"), 3)))
    with pytest.raises(ConfigError, match=r"etcd://127\.0\.0\.1:1/app/config#canary"):
        followed.load()


def test_provenance_is_the_audit_of_the_same_transaction_or_none():
    followed = source("web-2")
    followed.apply(
        response(put(KEY, "value: one\n", 2), put(KEY + "#audit", audit(), 2))
    )
    followed.load()
    assert followed.provenance == Audit("push", "ann@desk", "why", 1.5)
    followed.apply(response(put(KEY, "value: two\n", 3)))  # by hand: no audit
    followed.load()
    assert followed.provenance is None


def test_provenance_on_the_canary_is_its_author_and_message():
    followed = on_canary("web-1")
    followed.load()
    assert followed.provenance == Audit("canary", "bob", "m", 0.0, selector="web-1")


def test_a_source_refused_the_range_ignores_canaries():
    followed = source("web-1")
    followed._ranged = False
    followed.apply(response(put(KEY, "value: main\n", 2)))
    followed.apply(response(put(KEY + "#canary", canary("web-1"), 3)))
    assert followed.load() == {"value": "main"}
    assert "range_end" not in followed.watched()


def test_after_an_abort_the_selected_master_records_the_abort():
    chosen = on_canary("web-1")
    chosen.load()
    chosen.apply(
        response(delete(KEY + "#canary", 5), put(KEY + "#audit", audit("abort"), 5))
    )
    assert chosen.load() == {"value": "main"}
    assert chosen.provenance == Audit("abort", "ann@desk", "why", 1.5)
    chosen.apply(response(put(KEY + "#audit", audit("push", "eve"), 6)))
    chosen.load()
    assert chosen.provenance is None  # an audit of no change of what is served
