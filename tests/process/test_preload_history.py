"""A publisher started as a standalone one (a preloaded app reading at
import, before Gunicorn's ``on_starting``) becomes the master's: it keeps
the history from then on, and its numbers continue the previous run's."""

from hotcfg import _runtime, cli
from hotcfg._segment import layout

SERVICE = ("proc_name=app", "bind=127.0.0.1:1")


def test_the_import_time_publisher_keeps_history_once_the_master_asks(
    fresh_hotcfg, monkeypatch, tmp_path
):
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    # A previous run of the master: generations 1 and 2 in the history.
    with _runtime.isolated(None):
        first = _runtime.ensure_publisher(
            start_watching=False, keep_history=True, service=SERVICE
        )
        config.write_text("value: two\n")
        first.publish_from_source()
        assert [e.generation for e in first.history.entries] == [1, 2]

    # This run: the app reads at import (standalone), then on_starting.
    assert _runtime.reader().refresh().get("value") == "two"
    publisher = _runtime.ensure_publisher(
        start_watching=False, keep_history=True, service=SERVICE
    )
    assert publisher.files is not None
    assert [e.generation for e in publisher.history.entries] == [1, 2, 3]
    assert publisher.generation == 3
    header = layout.read_header(publisher.segment.buffer)
    assert header.role == layout.ROLE_GUNICORN_MASTER
    config.write_text("value: three\n")
    publisher.publish_from_source()
    assert [e.generation for e in publisher.history.entries] == [1, 2, 3, 4]


def test_history_of_a_standalone_process_says_why_there_is_none(
    fresh_hotcfg, monkeypatch, tmp_path, capsys
):
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    _runtime.reader()
    segments = _runtime.settings().resolved_segment_dir
    assert cli.main(["history", "--dir", segments]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no history (this service runs hotcfg standalone")
    assert "HOTCFG_HISTORY" not in out
    assert "generation  published" not in out
