"""Whole segments with a valid magic and arbitrary header fields and payloads.

A worker trusts nothing it maps: whatever the header says (offsets past the
end, lengths near 2**64, a CRC that matches a hostile payload, a capacity the
file does not have), the codec gives a Snapshot or a CorruptSegmentError,
and a Reader's refresh() keeps serving a snapshot instead of raising into a
request.
"""

import collections
import contextlib
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotcfg._errors import CorruptSegmentError
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout as _layout
from hotcfg._segment import payload as _payload
from hotcfg._segment.shm import Segment, SegmentView
from hotcfg._segment.snapshot import Snapshot
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from hotcfg._worker.reader import Reader, same_value

SIZE = 1 << 18
U16, U32, U64 = 2**16 - 1, 2**32 - 1, 2**64 - 1
EDGES = [0, 1, _layout.DATA_START, SIZE - 1, SIZE, SIZE + 1, 2**31, 2**63 - 1, 2**63]


def edgy(top):
    """Integers up to ``top``, often at the edges where bounds checks live."""
    return st.one_of(
        st.integers(0, top), st.sampled_from([e for e in EDGES if e <= top] + [top])
    )


# Payloads msgpack itself finds hard: deep nesting, lengths claiming
# gigabytes, non-string and nil keys, reserved bytes, trailing data.
NASTY = [
    b"\x91" * 100_000,
    b"\x81\xa1a" * 30_000 + b"\xc0",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\x81\xa1a\xc6\xff\xff\xff\xff",
    b"\x81\xa1a\xdb\xff\xff\xff\xff",
    b"\x81\x01\x01",
    b"\x81\xc0\xc0",
    b"\x81\xc4\x01a\x01",
    b"\x81\xa1a\xd7\xff" + bytes(8),
    b"\x81\xa1a\xc7\xff\x01",
    b"\xc1",
    b"\x80\x80",
    b"\x92\x80",
    b"",
]
keys = st.text(max_size=4) | st.integers(0, 9) | st.binary(max_size=2)
scalars = st.none() | st.booleans() | st.integers(-(2**63), U64) | st.floats()
values = st.recursive(
    scalars | st.text(max_size=8) | st.binary(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3),
    max_leaves=10,
)
documents = st.dictionaries(st.text(max_size=6), values, max_size=5)


def section(value):
    return msgpack.ExtType(_payload.SECTION_EXT, msgpack.packb(value))


# Lazy sections where they belong (top level) and where they do not.
sectioned = st.one_of(
    st.dictionaries(st.text(max_size=4), values.map(section), max_size=3),
    st.dictionaries(
        st.text(max_size=4),
        st.dictionaries(st.text(max_size=4), values.map(section), max_size=2),
        max_size=2,
    ),
    st.lists(values.map(section), max_size=2),
)
payloads = st.one_of(
    documents.map(_payload.encode),  # what a publisher writes
    sectioned.map(lambda v: msgpack.packb(v, use_bin_type=True)),
    values.map(lambda v: msgpack.packb(v, use_bin_type=True)),
    st.sampled_from(NASTY),
    st.binary(max_size=600),
)

HEADER_FIELDS = {  # name: (offset, struct format)
    "layout": (8, "<H"),
    "flags": (10, "<H"),
    "header size": (12, "<I"),
    "sequence": (16, "<Q"),
    "generation": (24, "<Q"),
    "capacity": (32, "<Q"),
    "writing": (_layout.WRITING_OFFSET, "<Q"),
}
DESC_FIELDS = {"generation": (0, "<Q"), "offset": (8, "<Q"), "length": (16, "<Q")}
DESC_FIELDS["crc"] = (24, "<I")


class Fuzzed(bytearray):
    """A segment that shows its header, not its 256 KiB, when a test fails."""

    def __repr__(self):
        header = _layout._FIXED.unpack_from(self, 0)
        return f"Fuzzed(header={header}, mutations={self.mutations})"

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


def _put(buf, offset, fmt, value):
    size = struct.calcsize(fmt)
    struct.pack_into(fmt, buf, offset, value % (1 << (8 * size)))


@st.composite
def segments(draw):
    """A segment a publisher really wrote, then mutated.

    The payload is a real one or hostile bytes, always with a valid CRC and
    descriptor, so most examples reach the payload decoder; the mutations
    then rewrite payload bytes (with or without fixing the CRC), descriptor
    fields or header fields.
    """
    buf = Fuzzed(SIZE)
    buf.mutations = []
    _layout.format_segment(buf, capacity=SIZE, writer_pid=1)
    payload = draw(payloads)
    generation = draw(st.one_of(st.integers(1, 5), edgy(U64 - 1).filter(bool)))
    offset = draw(st.integers(_layout.DATA_START, SIZE - len(payload)))
    crc = _layout.write_payload(buf, offset, payload, generation=generation)
    _layout.commit(
        buf, generation=generation, offset=offset, length=len(payload), crc=crc,
        published_at=draw(st.floats()), source=draw(st.text(max_size=8)),
        writer_pid=1,
    )  # fmt: skip
    desc = _layout._desc_offset(generation)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        # Weighted toward mutated msgpack that passes the CRC: the decoder's
        # input; the other kinds test the checks in front of it.
        kind = draw(
            st.sampled_from(["payload+crc"] * 3 + ["payload", "desc", "header"])
        )
        if kind.startswith("payload") and payload:
            at = draw(st.integers(offset, offset + len(payload) - 1))
            new = draw(st.binary(min_size=1, max_size=8))
            buf[at : at + len(new)] = new[: SIZE - at]
            if kind == "payload+crc":  # mutated msgpack that passes the CRC
                fixed = zlib.crc32(bytes(buf[offset : offset + len(payload)]))
                _put(buf, desc + 24, "<I", fixed)
            buf.mutations.append((kind, at, new))
        elif kind == "desc":
            name = draw(st.sampled_from(sorted(DESC_FIELDS)))
            at, fmt = DESC_FIELDS[name]
            value = draw(edgy(U64))
            _put(buf, desc + at, fmt, value)
            buf.mutations.append((kind, name, value))
        elif kind == "header":
            name = draw(st.sampled_from(sorted(HEADER_FIELDS)))
            at, fmt = HEADER_FIELDS[name]
            value = draw(edgy(U64))
            _put(buf, at, fmt, value)
            buf.mutations.append((kind, name, value))
    return buf


def check_snapshot(snap, buf):
    assert isinstance(snap, Snapshot)
    assert isinstance(snap.data, Mapping)
    assert all(isinstance(k, str) for k in snap.data)
    assert snap.generation == _layout.read_generation(buf)


@contextlib.contextmanager
def counting_decoder(counts):
    """Count the examples that got past the segment checks into decode_payload."""
    real = _payload.decode_payload
    reached = False

    def wrapper(*args, **kwargs):
        nonlocal reached
        reached = True
        return real(*args, **kwargs)

    _payload.decode_payload = wrapper
    try:
        yield
    finally:
        _payload.decode_payload = real
        counts["reached"] += reached


def report(counts, what):
    share = counts["reached"] / counts["examples"]
    print(f"{what}: {counts['reached']} of {counts['examples']} examples "
          f"({share:.0%}) reached the payload decoder")  # fmt: skip
    return share


def test_codec_decode_gives_snapshot_or_corrupt_segment_error():
    counts = collections.Counter()

    @settings(max_examples=300, deadline=None)
    @given(segments())
    def decode_one(buf):
        counts["examples"] += 1
        with counting_decoder(counts), contextlib.suppress(CorruptSegmentError):
            check_snapshot(_payload.decode(buf), buf)

    decode_one()
    # Before the segments were built through the layout functions, almost
    # every example stopped at the descriptor check: keep the decoder fed.
    assert report(counts, "decode") >= 0.4


def test_reader_refresh_survives_any_segment():
    """The worker's path over a real mapping: refresh() never raises."""
    counts = collections.Counter()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(segments())
    def refresh_one(buf):
        counts["examples"] += 1
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "fuzz.seg")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, bytes(buf))
            with counting_decoder(counts):
                reader = Reader(SegmentView(fd))
                try:
                    snap = reader.refresh()
                    reader.mark_stale()
                    again = reader.refresh()
                finally:
                    reader.close()
        assert again.generation == snap.generation
        try:
            expected = _payload.decode(buf)
        except CorruptSegmentError:
            expected = None
        if snap.published_at == 0.0 and snap.generation == 0 and not snap.data:
            return  # kept the empty start-up snapshot: the segment was refused
        check_snapshot(snap, buf)
        if expected is None:
            # Only a lazy section that fails once decoded lets the worker
            # switch where the full decode refuses; reading it says so.
            with pytest.raises(CorruptSegmentError, match="undecodable section"):
                snap.data.decode_all()
            return
        # Otherwise the worker applied exactly what the codec decodes.
        assert same_value(snap.data, expected.data)

    refresh_one()
    assert report(counts, "refresh") >= 0.4


def test_reader_survives_a_capacity_the_file_does_not_have():
    """Found by the test above: a capacity of 2**63 made mmap() raise
    OverflowError out of refresh(), into the request."""
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="hotcfg")
    publisher = Publisher(FileSource("unused", "yaml", 1), segment, Settings())
    try:
        publisher.publish({"value": 1})
        reader = Reader(segment.view())
        for lie in (2**63, 2**64 - 1, segment.capacity + 4096):
            _layout.set_capacity(segment.buffer, lie)
            publisher.publish({"value": lie})
            reader.mark_stale()
            assert reader.refresh().get("value") == 1
        _layout.set_capacity(segment.buffer, segment.capacity)
        publisher.publish({"value": "fixed"})
        assert reader.refresh().get("value") == "fixed"
        reader.close()
    finally:
        publisher.close()
