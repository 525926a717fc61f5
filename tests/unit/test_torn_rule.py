"""The reader's acceptance rule, with the writer acting in the middle of a copy.

``MidCopy`` is a segment whose first slice at or after ``at`` (by default
the payload copy ``read_consistent`` makes) runs writer steps halfway
through, so the copy holds the first half from before them and the second
half from after.
"""

import pytest

from hotcfg._errors import CorruptSegmentError
from hotcfg._segment import layout
from hotcfg._segment import payload as _payload


class MidCopy(bytearray):
    def __init__(self, size):
        super().__init__(size)
        self.during_copy = None
        self.at = layout.DATA_START

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
    layout.format_segment(buf, capacity=len(buf), writer_pid=1)
    return buf


def write(buf, data, source="t"):
    """The writer's payload step for the next generation; returns its commit."""
    header = layout.read_header(buf)
    payload = _payload.encode(data)
    offset = layout.plan_offset(header, len(payload))
    generation = header.generation + 1
    crc = layout.write_payload(buf, offset, payload, generation=generation)

    def commit():
        layout.commit(
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
    header, payload = layout.read_consistent(buf, attempts=1)
    assert header.generation == 1
    assert _payload.decode_payload(payload)["v"] == "a" * 200


def test_second_write_starting_during_the_copy_is_refused():
    buf = segment()
    publish(buf, {"v": "a" * 200})

    def two_more():
        publish(buf, {"v": "b" * 200})
        write(buf, {"v": "c" * 200})  # may land on generation 1's bytes

    buf.during_copy = two_more
    with pytest.raises(CorruptSegmentError, match="payload reused during read"):
        layout.read_consistent(buf, attempts=1)
    header, payload = layout.read_consistent(buf, attempts=1)
    assert header.generation == 2
    assert _payload.decode_payload(payload)["v"] == "b" * 200


def test_descriptor_rewritten_while_read_is_refused():
    buf = segment()
    publish(buf, {"v": "a" * 200}, source="first")
    buf.at = layout._DESC_OFFSET  # the descriptor's label, read after its fields

    def two_more():
        publish(buf, {"v": "b" * 200}, source="second")
        publish(buf, {"v": "c" * 200}, source="third")  # generation 1's slot

    buf.during_copy = two_more
    with pytest.raises(CorruptSegmentError, match="payload reused during read"):
        layout.read_consistent(buf, attempts=1)
    live, payload = layout.read_consistent(buf, attempts=1)
    assert (live.generation, live.source) == (3, "third")
    assert _payload.decode_payload(payload)["v"] == "c" * 200


def test_header_update_does_not_block_readers():
    buf = segment()
    publish(buf, {"v": 1})
    buf.during_copy = lambda: layout.record_error(buf, "x.yaml:1:1: bad", at=1.0)
    live, _ = layout.read_consistent(buf, attempts=1)
    assert live.generation == 1
    layout._bump_sequence(buf)  # a header update that never finishes
    assert layout.read_consistent(buf, attempts=1)[0].generation == 1


# The header (what ``hotcfg status`` shows) is read under the seqlock instead.


def test_header_read_during_a_commit_is_retried():
    buf = segment()
    publish(buf, {"v": 1}, source="first-label")
    buf.at = layout._SOURCE_OFFSET  # the label, read after the fixed fields
    buf.during_copy = lambda: publish(buf, {"v": 2}, source="second-label")
    pauses = []
    header = layout.read_header(buf, pause=lambda: pauses.append(1))
    # Without the seqlock this would be generation 1 with a label spliced
    # from "first-label" and "second-label".
    assert (header.generation, header.source) == (2, "second-label")
    assert header.sequence % 2 == 0
    assert pauses == [1]


def test_header_read_while_an_update_is_in_progress_gives_up():
    buf = segment()
    publish(buf, {"v": 1})
    layout._bump_sequence(buf)  # odd: an update that never finishes
    pauses = []
    with pytest.raises(CorruptSegmentError, match="update still in progress"):
        layout.read_header(buf, attempts=3, pause=lambda: pauses.append(1))
    assert len(pauses) == 3
    layout._bump_sequence(buf)  # even: the update finished
    assert layout.read_header(buf, attempts=1).generation == 1
