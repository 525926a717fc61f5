"""``hotcfg push``: validate a file, then compare-and-swap it into etcd."""

import os
import threading

from hotcfg import cli
from hotcfg._publisher import Publisher
from hotcfg._reader import Reader
from hotcfg._segment import Segment
from hotcfg._settings import Settings
from hotcfg._sources import source_for
from tests.etcd import PROGRESS_MS
from tests.waiting import wait_for

KEY = "/app/config.yaml"


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_push_is_written_and_a_running_publisher_serves_it(etcd, tmp_path, capsys):
    etcd.put(KEY, "value: one\n")
    settings = Settings.resolve(
        {}, source=etcd.source(KEY), etcd_progress_ms=PROGRESS_MS
    )
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="push")
    publisher = Publisher(source_for(settings), segment, settings, keep_history=False)
    publisher.start()
    publisher.start_watching()
    reader = Reader(segment.view())
    try:
        new = _file(tmp_path, "new.yaml", "value: pushed\nextra: 1\n")
        assert cli.main(["push", new, etcd.source(KEY), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "+ extra" in out
        assert "~ value" in out
        assert "nothing written" in out
        assert "pushed" not in out
        assert reader.refresh().get("value") == "one"

        assert cli.main(["push", new, etcd.source(KEY)]) == 0
        revision = etcd.revision()
        assert f"revision {revision}" in capsys.readouterr().out
        wait_for(lambda: reader.refresh().get("value") == "pushed", "the push served")
        stored = etcd.ctl("get", "--print-value-only", KEY)
        assert stored == "value: pushed\nextra: 1\n\n"
    finally:
        reader.close()
        publisher.close()


def test_two_pushes_from_the_same_revision_one_wins_one_conflicts(
    etcd, tmp_path, capsys
):
    revision = etcd.put(KEY, "value: base\n")
    files = [_file(tmp_path, f"{n}.yaml", f"value: {n}\n") for n in ("a", "b")]
    codes = [None, None]

    def push(n):
        codes[n] = cli.main(
            ["push", files[n], etcd.source(KEY), f"--expect-revision={revision}"]
        )

    threads = [threading.Thread(target=push, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [0, 1]
    err = capsys.readouterr().err
    now = etcd.revision()
    assert f"conflict: {etcd.source(KEY)} is at revision {now}" in err
    assert f"expected revision {revision}" in err
    winner = "a" if codes[0] == 0 else "b"
    assert etcd.ctl("get", "--print-value-only", KEY) == f"value: {winner}\n\n"


def test_a_push_of_what_the_key_holds_already_is_no_conflict(etcd, tmp_path, capsys):
    """A retry whose first attempt landed (or another operator's identical
    push) finds its bytes there: exit 0, nothing written again."""
    path = tmp_path / "config.yaml"
    path.write_text("value: same\n")
    first = etcd.put(KEY, "value: same\n")
    assert cli.main(["push", str(path), etcd.source(KEY), "--expect-revision=1"]) == 0
    out = capsys.readouterr().out
    assert f"is at {etcd.source(KEY)} already: revision {first}" in out
    assert etcd.revision() == first  # nothing written

    path.write_text("value: other\n")
    assert cli.main(["push", str(path), etcd.source(KEY), "--expect-revision=1"]) == 1
    assert "conflict" in capsys.readouterr().err


def test_a_push_without_a_pin_conflicts_with_a_key_that_should_not_exist(
    etcd, tmp_path, capsys
):
    path = _file(tmp_path, "c.yaml", "value: new\n")
    etcd.put(KEY, "value: there\n")
    assert cli.main(["push", path, etcd.source(KEY), "--expect-revision=0"]) == 1
    assert "expected no such key" in capsys.readouterr().err


def test_an_invalid_file_is_refused_and_nothing_written(etcd, tmp_path, capsys):
    revision = etcd.put(KEY, "value: kept\n")
    bad = _file(tmp_path, "bad.yaml", "value: [unclosed\n")
    assert cli.main(["push", bad, etcd.source(KEY)]) == 1
    assert capsys.readouterr().err.startswith("invalid: ")
    schema = _file(tmp_path, "s.json", '{"properties": {"value": {"type": "integer"}}}')
    wrong = _file(tmp_path, "wrong.yaml", "value: text\n")
    assert cli.main(["push", wrong, etcd.source(KEY), "--schema", schema]) == 1
    assert "invalid" in capsys.readouterr().err
    assert etcd.revision() == revision


def test_a_file_of_another_format_than_the_key_is_a_usage_error(etcd, tmp_path):
    path = _file(tmp_path, "c.json", '{"value": 1}')
    assert cli.main(["push", path, etcd.source(KEY)]) == 2


def test_etcd_down_is_exit_2(etcd, tmp_path, capsys):
    path = _file(tmp_path, "c.yaml", "value: one\n")
    etcd.stop()
    assert cli.main(["push", path, etcd.source(KEY)]) == 2
    assert "etcd unreachable" in capsys.readouterr().err
