"""Which segments ``--name`` and ``--pid`` select."""

import argparse

from hotcfg.cli.select import segment_paths


def select(directory, name=None, pid=None):
    args = argparse.Namespace(segment=None, dir=str(directory), name=name, pid=pid)
    return sorted(p.rsplit("/", 1)[1] for p in segment_paths(args))


def test_name_is_matched_whole_and_pid_exactly(tmp_path):
    for file in (
        "app-123-0a1b2c3d.seg",
        "app-v2-456-0a1b2c3d.seg",
        "hotcfg-789-ff.seg",
    ):
        (tmp_path / file).write_bytes(b"")
    (tmp_path / "app-0a1b2c3d.history").write_bytes(b"")
    assert select(tmp_path, name="app") == ["app-123-0a1b2c3d.seg"]
    assert select(tmp_path, name="app-v2") == ["app-v2-456-0a1b2c3d.seg"]
    assert select(tmp_path, pid=456) == ["app-v2-456-0a1b2c3d.seg"]
    assert select(tmp_path, pid=45) == []
    assert len(select(tmp_path)) == 3
