"""Whole segments with a valid magic and arbitrary header fields and payloads.

A worker trusts nothing it maps: whatever the header says (offsets past the
end, lengths near 2**64, a CRC that matches a hostile payload, a capacity the
file does not have), the codec gives a Snapshot or a CorruptSegmentError,
and a Reader's refresh() keeps serving a snapshot instead of raising into a
request.
"""

import contextlib
import os
import tempfile
import zlib
from collections.abc import Mapping

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotcfg import _layout, _payload
from hotcfg._errors import CorruptSegmentError
from hotcfg._publisher import Publisher
from hotcfg._reader import Reader, same_value
from hotcfg._segment import Segment, SegmentView
from hotcfg._settings import Settings
from hotcfg._snapshot import Snapshot
from hotcfg._sources import FileSource

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
scalars = st.none() | st.booleans() | st.integers(-(2**63), U64) | st.floats()
values = st.recursive(
    scalars | st.text(max_size=8) | st.binary(max_size=8),
    lambda c: st.lists(c, max_size=3)
    | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), c, max_size=3),
    max_leaves=10,
)
payloads = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(NASTY),
    values.map(lambda v: msgpack.packb(v, use_bin_type=True)),
)


class Fuzzed(bytearray):
    """A segment that shows its header, not its 256 KiB, when a test fails."""

    def __repr__(self):
        header = _layout._FIXED.unpack_from(self, 0)
        return f"Fuzzed(header={header})"

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


@st.composite
def segments(draw):
    buf = Fuzzed(SIZE)
    _layout.format_segment(buf, capacity=SIZE, writer_pid=1)
    payload = draw(payloads)
    at = draw(st.integers(_layout.DATA_START, SIZE - len(payload)))
    buf[at : at + len(payload)] = payload

    def mostly(value, top):
        # Honest often enough that decoding gets past the first check.
        return draw(st.one_of(st.just(value), st.just(value), edgy(top)))

    fields = (
        _layout.MAGIC,
        mostly(_layout.LAYOUT_VERSION, U16),
        draw(edgy(U16)),  # flags
        mostly(_layout.HEADER_SIZE, U32),
        mostly(2 * draw(st.integers(0, 2**62)), U64),  # sequence: odd = busy
        draw(edgy(U64)),  # generation
        mostly(SIZE, U64),  # capacity
        mostly(at, U64),  # payload offset
        mostly(len(payload), U64),
        mostly(zlib.crc32(payload), U32),
        draw(edgy(U32)),  # writer pid
        draw(st.floats()),  # published at
        draw(st.floats()),  # error at
        draw(edgy(U64)),  # rejected count
        draw(edgy(U32)),  # table offset
        draw(edgy(U32)),  # table slots
        mostly(draw(st.integers(0, _layout.SOURCE_MAX_BYTES)), U16),
        mostly(draw(st.integers(0, _layout.ERROR_MAX_BYTES)), U16),
    )
    _layout._FIXED.pack_into(buf, 0, *fields)
    text = draw(st.binary(max_size=64))
    buf[104 : 104 + len(text)] = text
    return buf


def check_snapshot(snap, buf):
    assert isinstance(snap, Snapshot)
    assert isinstance(snap.data, Mapping)
    assert all(isinstance(k, str) for k in snap.data)
    assert snap.generation == _layout.read_generation(buf)


@settings(max_examples=300, deadline=None)
@given(segments())
def test_codec_decode_gives_snapshot_or_corrupt_segment_error(buf):
    with contextlib.suppress(CorruptSegmentError):
        check_snapshot(_payload.decode(buf), buf)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(segments())
def test_reader_refresh_survives_any_segment(buf):
    """The worker's path over a real mapping: refresh() never raises."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fuzz.seg")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, bytes(buf))
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
    # Otherwise the worker applied exactly what the codec decodes.
    assert expected is not None
    check_snapshot(snap, buf)
    assert same_value(snap.data, expected.data)


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
