"""A publisher following a real source as the master runs one, and a reader
on its segment: what the process tests of remote sources share."""

import os

from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from tests.waiting import wait_for


class Followed:
    """Started as the master starts it (``Publisher.start``: the source, or
    the cache, or empty), then watching; closed by :meth:`close`."""

    def __init__(self, settings, *, name="f", start_empty=False, keep_history=False):
        self.settings = settings
        self.source = source_for(settings)
        self.segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name=name)
        self.publisher = Publisher(
            self.source, self.segment, settings, keep_history=keep_history
        )
        self.reader = None
        try:
            self.publisher.start(start_empty=start_empty)
        except BaseException:
            self.publisher.close()
            raise
        self.publisher.start_watching()
        self.reader = Reader(self.segment.view())

    def snapshot(self):
        return self.reader.refresh()

    def value(self):
        return self.snapshot().get("value")

    def wait_value(self, value):
        wait_for(lambda: self.value() == value, f"value={value}")

    def wait(self, predicate, what):
        """The first snapshot that satisfies ``predicate``."""
        seen = []

        def check():
            seen[:] = [self.snapshot()]
            return predicate(seen[0])

        wait_for(check, what)
        return seen[0]

    def error(self):
        return layout.read_header(self.segment.buffer).error or ""

    def close(self):
        if self.reader is not None:
            self.reader.close()
        self.publisher.close()
