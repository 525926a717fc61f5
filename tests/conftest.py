import os
import subprocess

import pytest


@pytest.fixture(autouse=True)
def _private_segment_dir(tmp_path, monkeypatch):
    """Each test gets its own segment directory, so nothing leaks between tests."""
    seg = tmp_path / "segments"
    monkeypatch.setenv("HOTCFG_SEGMENT_DIR", str(seg))
    os.makedirs(seg, mode=0o700)
    return seg


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a private tmpfs of that size and returns its
    path (skips where mounting is not allowed); unmounted at teardown."""
    mounted = []

    def mount(size):
        path = tmp_path / f"tmpfs-{len(mounted)}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr!r}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", path], check=False)
