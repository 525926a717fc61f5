"""``status`` reads the segment's header while the writer may be preempted
in the middle of an update (a busy host): it waits for it, instead of
calling the segment broken, and gives up only on an update that never
ends."""

import threading

import pytest

from hotcfg._errors import CorruptSegmentError
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment


@pytest.fixture
def segment(tmp_path):
    directory = tmp_path / "segments"
    segment = Segment.create(str(directory), name="h")
    yield segment
    segment.close(unlink=True)


def test_a_header_update_held_for_a_while_is_waited_for(segment):
    view = segment.view()
    try:
        layout._bump_sequence(segment.buffer)  # odd: the writer is "preempted"
        finished = threading.Event()

        def finish_later():
            # Longer than a thousand sched_yield() calls take on an idle
            # CPU, far shorter than the reader's patience.
            finished.wait(0.1)
            layout._bump_sequence(segment.buffer)

        writer = threading.Thread(target=finish_later)
        writer.start()
        try:
            assert view.header().sequence % 2 == 0
        finally:
            finished.set()
            writer.join()
    finally:
        view.close()


def test_an_update_that_never_ends_is_reported(segment):
    view = segment.view()
    try:
        layout._bump_sequence(segment.buffer)  # a writer killed mid-update
        with pytest.raises(CorruptSegmentError, match="update still in progress"):
            view.header()
    finally:
        view.close()
