"""``hotcfg push``: validate a file, then compare-and-swap it into etcd."""

import json
import os
import socket
import threading

import pytest

from hotcfg import cli
from hotcfg._master import fleet as _fleet
from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from tests.etcd import PROGRESS_MS
from tests.following import Followed
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


def test_a_file_of_another_format_than_the_key_is_a_config_error(etcd, tmp_path):
    path = _file(tmp_path, "c.json", '{"value": 1}')
    assert cli.main(["push", path, etcd.source(KEY)]) == 78


def test_etcd_down_is_exit_75(etcd, tmp_path, capsys):
    path = _file(tmp_path, "c.yaml", "value: one\n")
    etcd.stop()
    assert cli.main(["push", path, etcd.source(KEY)]) == 75
    assert "etcd unreachable" in capsys.readouterr().err


def _mod_revision(etcd, key=KEY):
    """The key's last write (the store's revision moves with the records)."""
    return int(
        json.loads(etcd.ctl("get", key, "--write-out=json"))["kvs"][0]["mod_revision"]
    )


@pytest.fixture
def master(etcd):
    """``master(key, **settings)``: a publisher following ``key`` that keeps
    its fleet record, as a Gunicorn master does (one per test: the record
    is named by this process's pid); closed at teardown."""
    started = []

    def start(key, **more):
        settings = Settings.resolve(
            {},
            source=etcd.source(key),
            etcd_progress_ms=PROGRESS_MS,
            etcd_timeout_ms=1000,
            fleet_ttl_ms=2000,
            name="svc",
            **more,
        )
        started.append(Followed(settings, name="svc"))
        assert _fleet.start(started[-1].publisher) is not None
        wait_for(
            lambda: _fleet.read_fleet(etcd.source(key), settings).records,
            "the master's record",
        )
        return started[-1]

    yield start
    for followed in started:
        followed.close()


def test_a_file_the_live_masters_read_as_the_same_document_is_pushed(
    etcd, master, tmp_path, capsys
):
    """Parsing is what counts: JSON that the YAML masters read into the
    same document goes, whatever the key's name says; JSON they read
    otherwise (``1e3`` is a string in YAML 1.1) is refused."""
    etcd.put(KEY, "value: one\n")
    followed = master(KEY)
    same = _file(tmp_path, "same.json", '{"value": "from json"}')
    assert cli.main(["push", same, etcd.source(KEY)]) == 0, capsys.readouterr().err
    followed.wait_value("from json")

    revision = _mod_revision(etcd)
    other = _file(tmp_path, "other.json", '{"value": 1e3}')
    assert cli.main(["push", other, etcd.source(KEY)]) == 1
    me = f"{socket.gethostname()}:{os.getpid()} (svc)"
    assert capsys.readouterr().err == (
        f"refused: {KEY} is read as yaml by 1 live master ({me}), and {other} "
        "read as yaml is another document than as json: it differs at value; "
        "nothing written\n"
    )
    assert _mod_revision(etcd) == revision


def test_a_file_over_a_live_masters_limit_is_refused(etcd, master, tmp_path, capsys):
    etcd.put(KEY, "value: one\n")
    master(KEY, max_bytes=64)
    big = _file(tmp_path, "big.yaml", "value: " + "x" * 100 + "\n")
    revision = _mod_revision(etcd)
    assert cli.main(["push", big, etcd.source(KEY)]) == 1
    err = capsys.readouterr().err
    assert f"the limit at {KEY} is 64 bytes for 1 live master (" in err
    assert f"{big} is 108 bytes; nothing written" in err
    assert _mod_revision(etcd) == revision


def test_a_key_without_a_suffix_takes_the_files_format(etcd, tmp_path, capsys):
    """No master follows it: FILE's suffix (or ``--format``) tells."""
    plain = "/app/config"
    path = _file(tmp_path, "config.yaml", "value: one\n")
    assert cli.main(["push", path, etcd.source(plain)]) == 0, capsys.readouterr().err
    assert etcd.ctl("get", "--print-value-only", plain) == "value: one\n\n"

    nameless = _file(tmp_path, "config", "value: two\n")
    assert cli.main(["push", nameless, etcd.source(plain)]) == 78
    assert "give --format" in capsys.readouterr().err
    assert cli.main(["push", nameless, etcd.source(plain), "--format=yaml"]) == 0
