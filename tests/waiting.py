"""Waiting for an event instead of sleeping a fixed time.

A fixed settle sleep lets a late, wrong publish pass; these wait for what
must happen (a publish, a read, a refusal recorded in the segment).
"""

import time

import pytest

from hotcfg._segment import layout


def wait_for(predicate, what, timeout_s=20.0):
    """Poll ``predicate`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def rejected_count(buf):
    """How many documents the publisher refused so far (the segment header)."""
    return layout.read_header(buf).rejected_count
