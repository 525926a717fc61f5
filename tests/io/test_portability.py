"""hotcfg without the Linux-only calls: what macOS and the BSDs lack.

The calls are taken away from ``os`` (as they are missing there) and
``/dev/shm`` is made to look absent, then the real segment code runs.
"""

import os
import textwrap

import pytest

from hotcfg._errors import SegmentError
from hotcfg._segment.shm import Segment
from tests.process import run_script

# os functions only Linux has (some of them on some versions only).
LINUX_ONLY = (
    "posix_fallocate", "posix_fadvise", "memfd_create", "pidfd_open",
    "eventfd", "splice", "copy_file_range", "sched_setaffinity",
    "sched_getaffinity",
)  # fmt: skip

WITHOUT_LINUX = textwrap.dedent(
    """
    import os, os.path
    for name in {names!r}:
        if hasattr(os, name):
            delattr(os, name)
    _isdir = os.path.isdir
    os.path.isdir = lambda p: False if os.fspath(p) == "/dev/shm" else _isdir(p)
    """
).format(names=LINUX_ONLY)

STANDALONE = WITHOUT_LINUX + textwrap.dedent(
    """
    import sys, tempfile, time
    import hotcfg

    def allocated(directory):
        [name] = [n for n in os.listdir(directory) if n.endswith(".seg")]
        info = os.stat(os.path.join(directory, name))
        return info.st_size, info.st_blocks * 512

    path = sys.argv[1]
    assert hotcfg.get("value") == "one", hotcfg.get("value")
    directory = os.path.join(tempfile.gettempdir(), f"hotcfg-{os.geteuid()}")
    size, blocks = allocated(directory)
    assert blocks >= size, (size, blocks)  # written, not sparse
    # Bigger than the first segment: the publish grows it.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("value: two\\npad: " + "x" * 1_500_000 + "\\n")
    os.replace(tmp, path)
    deadline = time.monotonic() + 10
    while hotcfg.get("value") != "two" and time.monotonic() < deadline:
        time.sleep(0.01)
    grown, blocks = allocated(directory)
    assert grown > size and blocks >= grown, (size, grown, blocks)
    print(hotcfg.get("value"), hotcfg.generation(), len(hotcfg.get("pad")))
    """
)


def test_single_process_mode_without_linux_calls(tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # No HOTCFG_SEGMENT_DIR: the default must find the temp dir by itself.
    monkeypatch.delenv("HOTCFG_SEGMENT_DIR")
    output = run_script(
        STANDALONE, config, config, TMPDIR=str(tmpdir), HOTCFG_DEBOUNCE_MS="10"
    )
    assert output == "two 2 1500000"


@pytest.fixture
def no_fallocate(monkeypatch):
    monkeypatch.delattr(os, "posix_fallocate", raising=False)


def test_segment_without_fallocate_is_written_out(tmp_path, no_fallocate):
    segment = Segment.create(str(tmp_path / "segments"), name="p")
    try:
        old = segment.capacity
        segment.buffer[old - 4 : old] = b"last"
        segment.ensure_capacity(3 * old)
        info = os.fstat(segment.fd)
        assert info.st_size == segment.capacity
        assert info.st_blocks * 512 >= info.st_size
        assert segment.buffer[old - 4 : old] == b"last"  # the old bytes kept
    finally:
        segment.close(unlink=True)


def test_full_disk_without_fallocate_fails_at_creation(tmpfs, no_fallocate):
    mount = tmpfs("256k")
    with pytest.raises(SegmentError, match="cannot reserve"):
        Segment.create(str(mount / "segments"), name="p")
    assert list((mount / "segments").iterdir()) == []
