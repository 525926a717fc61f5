"""``hotcfg status --stale`` and ``hotcfg clean`` with real Gunicorn masters:
the files of a stopped service are listed and removed, a live one's never."""

import json
import os

import pytest

pytestmark = pytest.mark.e2e


def _files(segments):
    return sorted(
        name
        for name in os.listdir(segments)
        if name.endswith((".history", ".cache", ".lock"))
    )


def _bases(segments):
    return {name.rsplit(".", 1)[0] for name in _files(segments)}


def test_stale_lists_and_clean_removes_only_stopped_services(start_service, tmp_path):
    (tmp_path / "gone").mkdir()
    (tmp_path / "live").mkdir()
    gone = start_service(tmp_path / "gone", workers=1)
    gone_bases = _bases(gone.segments)
    assert len(gone_bases) == 1
    gone.stop()
    live = start_service(tmp_path / "live", workers=1)
    live.write_atomic("value: two\n")
    live.all_workers_answer("two")
    [live_base] = _bases(live.segments) - gone_bases
    [gone_base] = gone_bases

    out = live.hotcfg("status", "--stale")
    assert out.returncode == 0, out.stderr
    assert "1 stopped services left files" in out.stdout
    assert gone_base in out.stdout
    assert live_base not in out.stdout
    assert f"master pid {gone.proc.pid}" in out.stdout
    report = json.loads(live.hotcfg("status", "--stale", "--json").stdout)
    assert [os.path.basename(s["base"]) for s in report["stale"]] == [gone_base]

    before = _files(live.segments)
    out = live.hotcfg("clean", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would remove: 2 files of 1 stopped services" in out.stdout
    assert _files(live.segments) == before

    out = live.hotcfg("clean")
    assert out.returncode == 0, out.stderr
    assert "removed: 2 files of 1 stopped services" in out.stdout
    assert _bases(live.segments) == {live_base}
    # The live service still keeps its history and its lock.
    history = json.loads(live.hotcfg("history", "--json").stdout)
    assert len(history) == 2
    live.write_atomic("value: three\n")
    live.all_workers_answer("three")
    assert len(json.loads(live.hotcfg("history", "--json").stdout)) == 3
    assert "no files of stopped services" in live.hotcfg("status", "--stale").stdout


def test_a_service_restarted_after_clean_starts_afresh(start_service, tmp_path):
    (tmp_path / "a").mkdir()
    first = start_service(tmp_path / "a", workers=1)
    first.stop()
    assert first.hotcfg("clean").returncode == 0
    assert _files(first.segments) == []
    (tmp_path / "b").mkdir()
    second = start_service(tmp_path / "b", workers=1, port=first.port)
    assert len(_bases(second.segments)) == 1
    assert second.hotcfg("history").returncode == 0
