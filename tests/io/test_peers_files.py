"""The files peers share (``_master.election``, ``_segment.slots``,
``Segment.open_or_create``), with real files, locks and processes: private,
never followed, slots race-free and freed by death, the segment kept."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from hotcfg._errors import SegmentError
from hotcfg._master import election
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment, SegmentView
from hotcfg._segment.slots import WorkerSlots
from hotcfg._settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "peers-files"
    path.mkdir(mode=0o700)
    return path


def test_the_publisher_lock_is_private_and_never_followed(directory, tmp_path):
    base = str(directory / "hotcfg-peers-feed")
    first = election.Election(base)
    try:
        assert os.stat(base + ".publisher").st_mode & 0o777 == 0o600
        assert first.try_lead()
        second = election.Election(base)
        try:
            assert not second.try_lead()
            assert second.holder() == os.getpid()
        finally:
            second.release()
    finally:
        first.release(remove=True)
    assert not os.path.exists(base + ".publisher")

    target = tmp_path / "victim"
    target.write_text("precious")
    os.symlink(target, base + ".publisher")
    with pytest.raises(SegmentError):
        election.Election(base)
    assert target.read_text() == "precious"


def test_a_waiting_process_is_elected_when_the_holder_releases(directory):
    base = str(directory / "hotcfg-peers-feed")
    leader, waiter = election.Election(base), election.Election(base)
    elected = []
    try:
        assert leader.try_lead()
        assert not waiter.try_lead()
        import threading

        done = threading.Event()
        waiter.wait_to_lead(lambda: (elected.append(True), done.set()))
        leader.release()
        assert done.wait(10)
        assert waiter.leading
        assert elected == [True]
    finally:
        waiter.release()


HOLD_SLOT = textwrap.dedent(
    """
    import sys, time
    from hotcfg._segment.shm import SegmentView
    from hotcfg._segment.slots import WorkerSlots
    view = SegmentView.open_shared(sys.argv[1])
    slot = WorkerSlots(sys.argv[2]).claim(view.buffer)
    print(slot, flush=True)
    time.sleep(60)
    """
)


def test_slots_are_one_process_each_and_freed_by_death(directory):
    segment = Segment.open_or_create(str(directory), token="hotcfg-peers-feed",
                                     name="hotcfg")  # fmt: skip
    slots_path = str(directory / "hotcfg-peers-feed.slots")
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_SLOT, segment.path, slots_path],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "0"
        mine = WorkerSlots(slots_path)
        assert mine.claim(segment.buffer) == 1  # slot 0 is the child's
        assert mine.reap(segment.buffer) == []  # alive: kept
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert mine.reap(segment.buffer) == [child.pid]
        pids = {r.slot: r.pid for r in layout.read_workers(segment.buffer)}
        assert pids == {1: os.getpid()}
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        segment.close(unlink=True)


def test_the_shared_segment_is_opened_again_never_recreated(directory):
    first = Segment.open_or_create(str(directory), token="hotcfg-peers-feed",
                                   name="hotcfg")  # fmt: skip
    first.write_generation(b"\x80", after=0, source="one")
    reader = SegmentView.open_shared(first.path)
    try:
        again = Segment.open_or_create(str(directory), token="hotcfg-peers-feed",
                                       name="hotcfg")  # fmt: skip
        assert os.stat(again.path).st_ino == os.stat(first.path).st_ino
        assert layout.read_generation(again.buffer) == 1
        again.write_generation(b"\x80", after=0, source="two")
        assert layout.read_generation(reader.buffer) == 2  # the same mapping
        first.close(unlink=True)  # a peer still maps it: kept
        assert os.path.exists(again.path)
        again.close(unlink=True)
        assert os.path.exists(again.path)
    finally:
        reader.close()


def test_one_service_is_source_settings_and_group_or_a_name(monkeypatch):
    monkeypatch.delenv("HOTCFG_NAME", raising=False)
    one = Settings.resolve({}, source="/srv/a.yaml")
    assert election.service_base(one, pgid=7) == election.service_base(one, pgid=7)
    assert election.service_base(one, pgid=7) != election.service_base(one, pgid=8)
    other = Settings.resolve({}, source="/srv/b.yaml")
    assert election.service_base(one, pgid=7) != election.service_base(other, pgid=7)
    checked = Settings.resolve({}, source="/srv/a.yaml", max_bytes=1000)
    assert election.service_base(one, pgid=7) != election.service_base(checked, pgid=7)
    before = election.service_base(one, pgid=7)
    monkeypatch.setenv("HOTCFG_SET__DB__TIMEOUT", "5")
    assert election.service_base(one, pgid=7) != before
    named = Settings.resolve({}, source="/srv/a.yaml", name="shop")
    assert election.service_base(named, pgid=7) == election.service_base(named, pgid=8)
    assert os.path.basename(election.service_base(named, pgid=7)).startswith(
        "shop-peers-"
    )
