"""Hostile things found where the segment would go: refused, never followed.

Runs real files in a real directory. The tests that hand a file to another
user need root (``chown``) and are skipped otherwise.
"""

import contextlib
import os
import stat

import pytest

from hotcfg import cli
from hotcfg._errors import SegmentError
from hotcfg._segment.shm import Segment, SegmentView, remove_stale

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


@pytest.fixture
def victim(tmp_path):
    """A file an attacker would like clobbered or truncated."""
    path = tmp_path / "victim"
    path.write_bytes(b"precious")
    return path


def untouched(victim):
    return victim.read_bytes() == b"precious"


@pytest.mark.parametrize("kind", ["file", "symlink"])
@pytest.mark.parametrize("where", [".tmp-{}", "{}.seg"])
def test_name_taken_in_advance_is_refused(tmp_path, victim, kind, where):
    directory = tmp_path / "segments"
    planted = directory / where.format("hotcfg-1-feed")
    if kind == "file":
        planted.write_bytes(b"planted")
    else:
        planted.symlink_to(victim)
    with pytest.raises(SegmentError, match="cannot create segment"):
        Segment._create_named(str(directory), "hotcfg-1-feed", 1 << 16)
    assert untouched(victim)
    if kind == "file":
        assert planted.read_bytes() == b"planted"
    assert sorted(p.name for p in directory.iterdir()) == [planted.name]


def test_symlinked_directory_is_refused(tmp_path, victim):
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    link = tmp_path / "segments-link"
    link.symlink_to(real)
    with pytest.raises(SegmentError, match="not a directory"):
        Segment.create(str(link), name="hotcfg")
    assert list(real.iterdir()) == []


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777, 0o1777], ids=oct)
def test_shared_directory_is_refused_not_fixed(tmp_path, mode):
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(SegmentError, match=f"mode {mode & 0o7777:o}.*0700"):
        Segment.create(str(directory), name="hotcfg")
    assert (directory.stat().st_mode & 0o7777) == mode  # left as it was
    assert list(directory.iterdir()) == []


@as_root
def test_directory_of_another_user_is_refused(tmp_path):
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY, NOBODY)
    with pytest.raises(SegmentError, match=f"belongs to uid {NOBODY}"):
        Segment.create(str(directory), name="hotcfg")
    assert list(directory.iterdir()) == []


@pytest.fixture
def live_segment(tmp_path):
    segment = Segment.create(str(tmp_path / "segments"), name="hotcfg")
    yield segment
    segment.close(unlink=True)


@contextlib.contextmanager
def umask(mask):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077], ids=oct)
def test_a_new_segment_is_a_private_regular_file_of_ours(tmp_path, mask):
    """0600 whatever the umask (0: nothing narrows a wider mode), ours, a
    regular file, in a 0700 directory; no temporary name left behind."""
    directory = tmp_path / "segments"
    with umask(mask):
        segment = Segment.create(str(directory), name="hotcfg")
    try:
        info = os.lstat(segment.path)
        assert stat.S_ISREG(info.st_mode)
        assert oct(stat.S_IMODE(info.st_mode)) == oct(0o600)
        assert info.st_uid == os.geteuid()
        assert oct(stat.S_IMODE(directory.stat().st_mode)) == oct(0o700)
        assert [p.name for p in directory.iterdir()] == [os.path.basename(segment.path)]
    finally:
        segment.close(unlink=True)


def test_a_file_of_another_uid_is_refused_on_open_root_or_not(tmp_path):
    """The owner check, with a file that is not ours: one given away (root),
    or one of root's (anyone else)."""
    if os.geteuid() == 0:
        theirs = tmp_path / "hotcfg-1-theirs.seg"
        theirs.write_bytes(bytes(4096))
        theirs.chmod(0o600)
        os.chown(theirs, NOBODY, NOBODY)
        owner = NOBODY
    else:
        theirs = "/etc/passwd"
        owner = os.stat(theirs).st_uid
        if owner == os.geteuid():
            pytest.skip(f"{theirs} belongs to this test's uid; no foreign file")
    with pytest.raises(SegmentError, match=f"belongs to uid {owner}, not to us"):
        SegmentView.open(str(theirs))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660], ids=oct)
def test_segment_readable_by_others_is_refused_on_open(live_segment, mode, capsys):
    os.chmod(live_segment.path, mode)
    with pytest.raises(SegmentError, match="accessible to others"):
        SegmentView.open(live_segment.path)
    assert cli.main(["status", "--segment", live_segment.path]) == 77
    assert "accessible to others" in capsys.readouterr().err


@as_root
def test_segment_of_another_user_is_refused_on_open(live_segment, capsys):
    os.chown(live_segment.path, NOBODY, NOBODY)
    with pytest.raises(SegmentError, match=f"belongs to uid {NOBODY}"):
        SegmentView.open(live_segment.path)
    assert cli.main(["get", "value", "--segment", live_segment.path]) == 77
    assert f"belongs to uid {NOBODY}" in capsys.readouterr().err


def test_symlink_to_a_segment_is_refused_on_open(live_segment, tmp_path):
    link = tmp_path / "segments" / "hotcfg-9-link.seg"
    link.symlink_to(live_segment.path)
    with pytest.raises(SegmentError, match="symlink"):
        SegmentView.open(str(link))


def test_stale_cleanup_never_follows_or_removes_foreign_files(tmp_path, victim):
    directory = tmp_path / "segments"
    (directory / "hotcfg-1-aaaa.seg").symlink_to(victim)
    foreign = directory / "hotcfg-2-bbbb.seg"
    foreign.write_bytes(b"not ours")
    if os.geteuid() == 0:
        os.chown(foreign, NOBODY, NOBODY)
    else:
        foreign.unlink()
    assert remove_stale(str(directory), name="hotcfg") == []
    assert untouched(victim)


def test_no_room_for_a_new_segment_is_a_clear_error(tmpfs):
    """/dev/shm too full for even the first segment: refused, nothing left."""
    mount = tmpfs("256k")
    with pytest.raises(SegmentError, match=r"cannot reserve .* shared memory"):
        Segment.create(str(mount), name="hotcfg")
    assert list(mount.iterdir()) == []


@pytest.mark.parametrize(
    "command", [["status"], ["status", "--json"], ["get", "value"], ["dump"]]
)
def test_every_command_says_the_same_when_no_service_runs(tmp_path, capsys, command):
    empty = tmp_path / "no-service"
    empty.mkdir(mode=0o700)
    assert cli.main([*command, "--dir", str(empty)]) == 69
    assert capsys.readouterr().err.strip() == (
        f"no running hotcfg service found in {empty} (no live segment; see --dir)"
    )
