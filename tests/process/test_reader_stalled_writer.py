"""A new worker's first read waits out a writer stalled mid-update."""

import threading
import time

from hotcfg import _codec
from hotcfg._reader import Reader
from hotcfg._segment import Segment


def test_first_read_waits_for_a_stalled_writer(tmp_path):
    segment = Segment.create(str(tmp_path / "segments"), name="stall")
    try:
        payload = _codec.encode({"value": 1})
        crc = _codec.write_payload(segment.buffer, _codec.DATA_START, payload)
        _codec.commit(
            segment.buffer, generation=1, offset=_codec.DATA_START,
            length=len(payload), crc=crc, published_at=0.0, source="test",
            writer_pid=1,
        )  # fmt: skip
        # The next header update begins (odd sequence) and the writer is
        # descheduled: readers must not take the header as it is.
        _codec._bump_sequence(segment.buffer)

        def resume():
            time.sleep(0.3)  # far longer than a thousand sched_yield() calls
            _codec._bump_sequence(segment.buffer)

        writer = threading.Thread(target=resume)
        writer.start()
        try:
            reader = Reader(segment.view())
        finally:
            writer.join()
        # Without the wait the reader starts on the empty generation 0.
        assert reader.snapshot.generation == 1
        assert reader.snapshot.get("value") == 1
        reader.close()
    finally:
        segment.close(unlink=True)
