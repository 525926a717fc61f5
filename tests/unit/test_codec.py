import contextlib
import gc
import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcfg._errors import CorruptSegmentError
from hotcfg._segment import layout
from hotcfg._segment import payload as _payload

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
documents = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def fresh(capacity=1 << 16):
    buf = bytearray(capacity)
    layout.format_segment(buf, capacity=capacity, writer_pid=1)
    return buf


def publish(buf, data, generation):
    payload = _payload.encode(data)
    header = layout.read_header(buf)
    offset = layout.plan_offset(header, len(payload))
    crc = layout.write_payload(buf, offset, payload, generation=generation)
    layout.commit(
        buf,
        generation=generation,
        offset=offset,
        length=len(payload),
        crc=crc,
        published_at=1.0,
        source="test",
        writer_pid=1,
    )


def thaw_equal(snapshot, data):
    return snapshot.to_dict() == msgpack.unpackb(msgpack.packb(data), raw=False)


@given(st.lists(documents, min_size=1, max_size=5))
def test_round_trip_over_generations(docs):
    buf = fresh(1 << 20)
    for generation, doc in enumerate(docs, 1):
        publish(buf, doc, generation)
        snap = _payload.decode(buf)
        assert snap.generation == generation
        assert thaw_equal(snap, doc)
        # Values serialize as they are, with no thaw().
        assert json.loads(json.dumps(dict(snap))) == json.loads(json.dumps(doc))
        assert msgpack.packb(dict(snap)) == msgpack.packb(doc)


def test_fresh_segment_is_generation_zero_and_empty():
    snap = _payload.decode(fresh())
    assert snap.generation == 0
    assert dict(snap) == {}


def published(doc):
    """A segment with ``doc`` as generation 1, and what each generation held."""
    buf = fresh()
    publish(buf, doc, 1)
    return buf, {0: {}, 1: doc}


def assert_published_or_corrupt(buf, history):
    """Either CorruptSegmentError, or exactly what was published as that
    generation: never a mix, never data that no publish wrote."""
    try:
        snap = _payload.decode(buf)
    except CorruptSegmentError:
        return None
    assert snap.generation in history
    assert thaw_equal(snap, history[snap.generation])
    return snap


@given(documents, st.data())
@settings(max_examples=50)
def test_any_truncation_is_corrupt_or_snapshot(doc, data):
    buf, history = published(doc)
    header = layout.read_header(buf)
    end = data.draw(st.integers(0, len(buf) - 1))
    snap = assert_published_or_corrupt(bytes(buf[:end]), history)
    whole = end >= header.payload_offset + header.payload_length
    assert (snap is not None) == whole
    if whole:
        assert snap.generation == 1


def regions(buf):
    """Byte ranges of a segment with generation 1 live, for flips to hit."""
    header = layout.read_header(buf)
    live = layout._desc_offset(1)  # generation 1's descriptor slot
    other = layout._desc_offset(0)
    fields = layout._DESC.size  # generation, offset, length, CRC, time, label len
    payload = header.payload_offset
    return {
        "header": range(128),
        "writing generation": range(layout.WRITING_OFFSET, layout.WRITING_OFFSET + 8),
        "live descriptor fields": range(live, live + fields),
        "live descriptor label": range(live + fields, live + layout.DESC_SIZE),
        "other descriptor": range(other, other + layout.DESC_SIZE),
        "payload": range(payload, payload + header.payload_length),
    }


@given(documents, st.data(), st.integers(1, 255))
@settings(max_examples=300)
def test_flipped_byte_is_corrupt_or_snapshot(doc, data, xor):
    buf, history = published(doc)
    spans = regions(buf)
    span = spans[data.draw(st.sampled_from(sorted(spans)))]
    index = data.draw(st.sampled_from(span)) if span else 0
    buf[index] ^= xor
    # A flip outside what the CRC covers (the header's copy of the publish
    # time, the other generation's descriptor) may still decode, and one in
    # the generation may land on generation 0's intact descriptor: each
    # must give what was really published as that generation.
    assert_published_or_corrupt(buf, history)


@given(st.binary(max_size=5000))
def test_random_bytes_never_raise_anything_else(blob):
    with contextlib.suppress(CorruptSegmentError):
        _payload.decode(blob)


def test_torn_payload_is_detected():
    buf = fresh()
    publish(buf, {"value": "a" * 100}, 1)
    header = layout.read_header(buf)
    buf[header.payload_offset + 10] ^= 0xFF  # a half-applied write
    with pytest.raises(CorruptSegmentError):
        _payload.decode(buf)


def test_header_update_in_progress_does_not_block_readers():
    buf = fresh()
    publish(buf, {"a": 1}, 1)
    layout._bump_sequence(buf)  # odd: the writer is, say, recording an error
    live, payload = layout.read_consistent(buf, attempts=1)
    assert live.generation == 1
    assert _payload.decode_payload(payload)["a"] == 1


def test_new_payload_never_overwrites_live_one():
    buf = fresh(1 << 20)
    for generation in range(1, 30):
        header = layout.read_header(buf)
        size = (generation * 997) % 5000 + 10
        offset = layout.plan_offset(header, size)
        live = range(
            header.payload_offset, header.payload_offset + header.payload_length
        )
        assert offset + size <= live.start or offset >= live.stop
        publish(buf, {"x": "y" * size}, generation)


def test_error_is_recorded_and_cleared_by_next_publish():
    buf = fresh()
    layout.record_error(buf, "bad.yaml:1:1: nope", at=5.0)
    header = layout.read_header(buf)
    assert header.error == "bad.yaml:1:1: nope"
    assert header.rejected_count == 1
    publish(buf, {"a": 1}, 1)
    assert layout.read_header(buf).error is None


def test_worker_table():
    buf = fresh()
    layout.write_worker(buf, 3, pid=42, generation=7, applied_at=1.5)
    assert layout.read_workers(buf) == [layout.WorkerRecord(3, 42, 7, 1.5)]
    layout.clear_worker(buf, 3)
    assert layout.read_workers(buf) == []


def test_snapshot_is_immutable_and_dotted():
    buf = fresh()
    publish(buf, {"db": {"timeout": 5, "hosts": ["a", "b"]}}, 1)
    snap = _payload.decode(buf)
    assert snap.get("db.timeout") == 5
    assert snap.get("db.missing", "d") == "d"
    assert snap.get("db.hosts") == ("a", "b")
    with pytest.raises(TypeError):
        snap["db"]["timeout"] = 6


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("payload", [_payload.encode({"a": [1, {"b": 2}]}), b"\xc1"])
def test_decode_leaves_the_collector_as_it_found_it(
    enabled: bool, payload: bytes
) -> None:
    # The collector is paused while unpacking; a corrupt payload must not
    # leave it off, and an app that turned it off must find it off.
    (gc.enable if enabled else gc.disable)()
    try:
        with contextlib.suppress(CorruptSegmentError):
            _payload.decode_payload(payload)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_fresh_segment_payload_is_the_empty_map():
    # layout writes generation 0's payload without importing msgpack.
    assert _payload.encode({}) == layout.EMPTY_PAYLOAD


def test_validating_is_recorded_and_cleared_under_the_seqlock():
    from hotcfg._segment import layout

    buf = bytearray(layout.DATA_START + 4096)
    layout.format_segment(buf, capacity=len(buf), writer_pid=1)
    assert layout.read_header(buf).validating is None
    sequence = layout.read_header(buf).sequence
    layout.record_validating(buf, "validator app:check " + "x" * 400, since=12.5)
    header = layout.read_header(buf)
    assert header.validating.startswith("validator app:check x")
    assert len(header.validating.encode()) == layout.VALIDATOR_MAX_BYTES
    assert header.validating_since == 12.5
    assert header.sequence == sequence + 2
    layout.record_validating(buf, "", since=0.0)
    assert layout.read_header(buf).validating is None
