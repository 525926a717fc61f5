"""Lazy top-level sections: a large payload's big values are decoded on first
access in a worker, and eagerly everywhere else."""

import threading

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcfg._content.frozen import thaw
from hotcfg._errors import CorruptSegmentError
from hotcfg._segment import payload as _payload
from hotcfg._segment.snapshot import Section, Sections


def big(n, tag="x"):
    return {f"k{i:05d}": {"on": i % 2 == 0, "name": f"{tag}{i}"} for i in range(n)}


LARGE = {"small": 1, "flags": big(6000), "rules": big(6000, "r"), "tiny": {"a": 1}}


def pending(snapshot):
    return sum(type(v) is Section for v in snapshot.data._values.values())


def test_small_payloads_stay_plain_msgpack():
    data = {"a": {"b": [1, 2]}, "c": "x" * 1000}
    assert _payload.encode(data) == msgpack.packb(data, use_bin_type=True)


def test_large_payload_keeps_big_sections_packed_until_read():
    payload = _payload.encode(LARGE)
    assert len(payload) >= _payload.LAZY_MIN_BYTES
    snap = _payload.decode_payload(payload, lazy=True)
    assert isinstance(snap.data, Sections)
    assert pending(snap) == 2  # flags and rules; small values are inline
    assert snap.get("small") == 1
    assert snap.get("tiny.a") == 1
    assert "flags" in snap
    assert pending(snap) == 2  # membership decodes nothing
    assert snap.get("flags.k00003.name") == "x3"
    assert pending(snap) == 1
    assert snap.to_dict() == LARGE
    assert pending(snap) == 0


def test_eager_decode_leaves_nothing_packed():
    snap = _payload.decode_payload(_payload.encode(LARGE))
    assert pending(snap) == 0
    assert snap.to_dict() == LARGE


def test_lazy_and_eager_snapshots_are_equal():
    payload = _payload.encode(LARGE)
    lazy = _payload.decode_payload(payload, lazy=True, generation=3)
    assert lazy == _payload.decode_payload(payload, generation=3)


def test_racing_threads_read_one_section_alike():
    snap = _payload.decode_payload(_payload.encode(LARGE), lazy=True)
    barrier = threading.Barrier(8)
    seen = []

    def read():
        barrier.wait()
        seen.append(thaw(snap["rules"]))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(value == LARGE["rules"] for value in seen)
    assert pending(snap) == 1


def packed(outer):
    return msgpack.packb(outer, use_bin_type=True)


def test_a_section_below_the_top_level_is_corrupt():
    inner = msgpack.ExtType(_payload.SECTION_EXT, packed({"a": 1}))
    with pytest.raises(CorruptSegmentError, match="below the top level"):
        _payload.decode_payload(packed({"x": {"y": inner}}), lazy=True)


def test_an_unknown_ext_type_is_corrupt():
    with pytest.raises(CorruptSegmentError):
        _payload.decode_payload(packed({"x": msgpack.ExtType(9, b"\x01")}), lazy=True)


def test_an_undecodable_section_fails_on_access_lazily_and_at_once_eagerly():
    payload = packed({"ok": 1, "bad": msgpack.ExtType(_payload.SECTION_EXT, b"\xc1")})
    snap = _payload.decode_payload(payload, lazy=True)
    assert snap.get("ok") == 1
    with pytest.raises(CorruptSegmentError, match="undecodable section"):
        snap.get("bad.x")
    # The master decodes eagerly before publishing, so it never goes live.
    with pytest.raises(CorruptSegmentError):
        _payload.decode_payload(payload)


def test_a_section_inside_a_section_is_corrupt():
    nested = packed({"z": msgpack.ExtType(_payload.SECTION_EXT, packed(1))})
    payload = packed({"a": msgpack.ExtType(_payload.SECTION_EXT, nested)})
    with pytest.raises(CorruptSegmentError):
        _payload.decode_payload(payload)


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), values, max_size=8))
def test_round_trip_with_every_section_lazy(data):
    # Every payload and every top-level value counts as large here.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_payload, "LAZY_MIN_BYTES", 0)
        mp.setattr(_payload, "SECTION_MIN_BYTES", 0)
        payload = _payload.encode(data)
    for lazy in (True, False):
        assert _payload.decode_payload(payload, lazy=lazy).to_dict() == data


def test_a_workers_switch_leaves_sections_packed_and_callbacks_see_them(tmp_path):
    from hotcfg._master.publisher import Publisher
    from hotcfg._segment.shm import Segment
    from hotcfg._settings import Settings
    from hotcfg._sources.file import FileSource
    from hotcfg._worker.reader import ChangeCallbacks, Reader

    source = tmp_path / "unused.yaml"
    source.write_text("{}\n")
    segment = Segment.create(str(tmp_path / "seg"), name="t")
    publisher = Publisher(
        FileSource(str(source), "yaml", 64 << 20), segment, Settings()
    )
    changes = []
    callbacks = ChangeCallbacks()
    callbacks.add("rules.k00002.name", lambda old, new: changes.append((old, new)))
    publisher.publish(LARGE)
    reader = Reader(segment.view(), callbacks=callbacks)
    try:
        assert pending(reader.refresh()) == 2
        changed = dict(LARGE, rules=dict(LARGE["rules"], k00002={"name": "new"}))
        publisher.publish(changed)
        snap = reader.refresh()
        assert changes == [("r2", "new")]
        assert pending(snap) == 1  # the callback's path decoded "rules" only
        assert snap.to_dict() == changed
    finally:
        reader.close()
        publisher.close()
