"""Which claim files ``hotcfg clean`` may remove, and that it removes them
under the lock, so a master never loses the files it holds."""

import fcntl
import os

import pytest

from hotcfg._master import claim, leftovers


def _private(tmp_path):
    directory = tmp_path / "claims"
    directory.mkdir(mode=0o700)
    return str(directory)


def _write(path, text="x"):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.encode())
    os.close(fd)


def test_a_held_claim_is_not_stale_and_a_released_one_is(tmp_path):
    directory = _private(tmp_path)
    held = claim.claim(directory, "app", "file:/x.yaml")
    assert held is not None
    _write(held.history_path)
    assert leftovers.find(directory) == ([], [])
    assert leftovers.remove(directory) == ([], [])
    assert os.path.exists(held.history_path)
    held.release()
    [stale], skipped = leftovers.find(directory)
    assert skipped == []
    assert stale.base == held.base
    assert stale.last_pid == os.getpid()
    assert set(stale.files) == {held.history_path, held.base + ".lock"}
    [removed], _ = leftovers.remove(directory)
    assert removed.base == held.base
    assert os.listdir(directory) == []


def test_files_without_a_lock_are_stale_and_removed_whole(tmp_path):
    directory = _private(tmp_path)
    base = os.path.join(directory, "app-0a1b2c3d")
    _write(base + ".cache")
    _write(os.path.join(directory, ".app-0a1b2c3d.cache.tmp-1-ab"))
    [stale], _ = leftovers.find(directory)
    assert not os.path.exists(base + ".lock")  # made to hold the lock, then gone
    assert len(stale.files) == 2
    leftovers.remove(directory)
    assert os.listdir(directory) == []


def test_a_master_that_locked_a_removed_file_locks_the_new_one(tmp_path):
    directory = _private(tmp_path)
    first = claim.claim(directory, "app", "file:/x.yaml")
    first.release()
    lock_path = first.base + ".lock"
    # A master opens the lock file; clean removes it (holding the lock)
    # before that master's flock; the master must not lock the unlinked file.
    opened = os.open(lock_path, os.O_RDWR)
    leftovers.remove(directory)
    fcntl.flock(opened, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not claim._still_named(opened, lock_path)
    os.close(opened)
    second = claim.claim(directory, "app", "file:/x.yaml")
    assert second is not None
    assert second.base == first.base
    info = os.stat(lock_path)
    assert info.st_ino == os.fstat(second._fd).st_ino
    second.release()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_another_users_files_are_left(tmp_path):
    directory = _private(tmp_path)
    base = os.path.join(directory, "app-0a1b2c3d")
    _write(base + ".history")
    os.chown(base + ".history", 65534, 65534)
    stale, [skipped] = leftovers.remove(directory)
    assert stale == []
    assert "not to us" in skipped.reason
    assert os.path.exists(base + ".history")
