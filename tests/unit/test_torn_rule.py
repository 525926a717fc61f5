"""The reader's acceptance rule, with the writer acting in the middle of a copy.

``MidCopy`` is a segment whose first slice at or after ``at`` (by default
the payload copy ``read_consistent`` makes) runs writer steps halfway
through, so the copy holds the first half from before them and the second
half from after.
"""

import pytest

from hotcfg import _codec
from hotcfg._errors import CorruptSegmentError


class MidCopy(bytearray):
    def __init__(self, size):
        super().__init__(size)
        self.during_copy = None
        self.at = _codec.DATA_START

    def __getitem__(self, key):
        steps = self.during_copy
        if not (isinstance(key, slice) and steps and key.start >= self.at):
            return super().__getitem__(key)
        self.during_copy = None
        middle = (key.start + key.stop) // 2
        first = bytes(super().__getitem__(slice(key.start, middle)))
        steps()
        return first + bytes(super().__getitem__(slice(middle, key.stop)))


def segment():
    buf = MidCopy(1 << 16)
    _codec.format_segment(buf, capacity=len(buf), writer_pid=1)
    return buf


def write(buf, data, source="t"):
    """The writer's payload step for the next generation; returns its commit."""
    header = _codec.read_header(buf)
    payload = _codec.encode(data)
    offset = _codec.plan_offset(header, len(payload))
    generation = header.generation + 1
    crc = _codec.write_payload(buf, offset, payload, generation=generation)

    def commit():
        _codec.commit(
            buf, generation=generation, offset=offset, length=len(payload), crc=crc,
            published_at=0.0, source=source, writer_pid=1,
        )  # fmt: skip

    return commit


def publish(buf, data, source="t"):
    write(buf, data, source)()


def test_publish_completing_during_the_copy_costs_no_retry():
    buf = segment()
    publish(buf, {"v": "a" * 200})
    buf.during_copy = lambda: publish(buf, {"v": "b" * 200})
    header, payload = _codec.read_consistent(buf, attempts=1)
    assert header.generation == 1
    assert _codec.decode_payload(payload)["v"] == "a" * 200


def test_second_write_starting_during_the_copy_is_refused():
    buf = segment()
    publish(buf, {"v": "a" * 200})

    def two_more():
        publish(buf, {"v": "b" * 200})
        write(buf, {"v": "c" * 200})  # may land on generation 1's bytes

    buf.during_copy = two_more
    with pytest.raises(CorruptSegmentError, match="payload reused during read"):
        _codec.read_consistent(buf, attempts=1)
    header, payload = _codec.read_consistent(buf, attempts=1)
    assert header.generation == 2
    assert _codec.decode_payload(payload)["v"] == "b" * 200


def test_descriptor_rewritten_while_read_is_refused():
    buf = segment()
    publish(buf, {"v": "a" * 200}, source="first")
    buf.at = _codec._DESC_OFFSET  # the descriptor's label, read after its fields

    def two_more():
        publish(buf, {"v": "b" * 200}, source="second")
        publish(buf, {"v": "c" * 200}, source="third")  # generation 1's slot

    buf.during_copy = two_more
    with pytest.raises(CorruptSegmentError, match="payload reused during read"):
        _codec.read_consistent(buf, attempts=1)
    live, payload = _codec.read_consistent(buf, attempts=1)
    assert (live.generation, live.source) == (3, "third")
    assert _codec.decode_payload(payload)["v"] == "c" * 200


def test_header_update_does_not_block_readers():
    buf = segment()
    publish(buf, {"v": 1})
    buf.during_copy = lambda: _codec.record_error(buf, "x.yaml:1:1: bad", at=1.0)
    live, _ = _codec.read_consistent(buf, attempts=1)
    assert live.generation == 1
    _codec._bump_sequence(buf)  # a header update that never finishes
    assert _codec.read_consistent(buf, attempts=1)[0].generation == 1
