"""The text-only helpers behind the CLI's hints: which etcd key
``status --fleet`` defaults to, what ``validate`` says about overrides, and
the role a segment header records."""

from hotcfg._segment import layout
from hotcfg.cli.fleet_default import etcd_layer
from hotcfg.cli.overrides_note import overrides_note


def test_the_fleet_key_is_the_source_or_its_first_etcd_layer():
    assert etcd_layer("etcd://h:1/k") == "etcd://h:1/k"
    assert etcd_layer("a.yaml | etcd://h:1/k | etcd://h:2/j") == "etcd://h:1/k"
    assert etcd_layer("a.yaml | b.yaml") is None
    assert etcd_layer("a.yaml") is None
    assert etcd_layer(None) is None


def test_overrides_are_named_without_their_values():
    env = {"HOTCFG_SET__DB__PASSWORD": "hunter2"}
    note = overrides_note("a.yaml | b.yaml", env)
    assert note is not None
    assert "HOTCFG_SET__DB__PASSWORD (db.password)" in note
    assert "hunter2" not in note
    assert "none included" in (overrides_note("a.yaml | b.yaml", {}) or "")
    assert overrides_note("a.yaml", {}) is None
    assert "1 included" in (overrides_note("a.yaml", env) or "")


def test_the_role_survives_commits_and_defaults_to_unknown():
    buf = bytearray(layout.DATA_START + 4096)
    layout.format_segment(buf, capacity=len(buf), writer_pid=1)
    assert layout.read_header(buf).role == layout.ROLE_UNKNOWN
    layout.record_role(buf, layout.ROLE_GUNICORN_MASTER)
    layout.commit(
        buf, generation=1, offset=layout.DATA_START, length=1, crc=0,
        published_at=1.0, source="x", writer_pid=1,
    )  # fmt: skip
    layout.record_error(buf, "bad", at=2.0)
    assert layout.read_header(buf).role == layout.ROLE_GUNICORN_MASTER
