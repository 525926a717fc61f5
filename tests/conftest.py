import os

import pytest


@pytest.fixture(autouse=True)
def _private_segment_dir(tmp_path, monkeypatch):
    """Each test gets its own segment directory, so nothing leaks between tests."""
    seg = tmp_path / "segments"
    monkeypatch.setenv("HOTCFG_SEGMENT_DIR", str(seg))
    os.makedirs(seg, mode=0o700)
    return seg
