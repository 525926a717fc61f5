"""The fleet record's key and content, and what ``status --fleet`` prints
from records (pure)."""

import base64
import json
import subprocess
import sys

import pytest

from hotcfg._errors import ConfigError
from hotcfg._master import fleet as _fleet
from hotcfg._settings import Settings
from hotcfg.cli import fleet_view


def record(
    host="web-1",
    pid=100,
    revision=42,
    generation=7,
    workers=None,
    error=None,
    serving=None,
    updated_at=1000.0,
):
    """A record as a master puts it (``serving`` by default as its
    ``error`` makes it)."""
    workers = [(101, generation), (102, generation)] if workers is None else workers
    if serving is None:
        serving = f"rejected revision {revision}" if error else "revision"
    built = _fleet.build_record(
        host=host,
        pid=pid,
        service="app",
        source="etcd://127.0.0.1:2379/app/config.yaml",
        revision=revision,
        generation=generation,
        published_at=1000.0,
        workers=workers,
        error=error,
        serving=serving,
        fmt="yaml",
        max_bytes=1048576,
    )
    return {**built, "updated_at": updated_at}


def test_record_keys_are_per_config_key_and_master_and_never_nest():
    key = _fleet.record_key("/app/config.yaml", "web-1", 4123)
    assert key == "/hotcfg/fleet/%2Fapp%2Fconfig.yaml/web-1:4123"
    # One config key's prefix is never the start of another's.
    a, ab = _fleet.prefix_for("/app/a"), _fleet.prefix_for("/app/a/b")
    assert not ab.startswith(a)
    assert not a.startswith(ab)
    assert _fleet.record_key("/k", "odd/host name", 1).endswith("/odd%2Fhost%20name:1")


def test_the_range_end_covers_the_prefix_and_nothing_else():
    prefix = _fleet.prefix_for("/app/a")
    end = base64.b64decode(_fleet._range_end(prefix))
    inside = _fleet.record_key("/app/a", "\xff" * 4, 99999).encode()
    assert prefix.encode() <= inside < end
    for other in ("/app/a0", "/app/a/b", "/app/", "/app/b"):
        key = _fleet.record_key(other, "web-1", 1).encode()
        assert not prefix.encode() <= key < end, other


def test_record_content_sorts_workers_and_leaves_out_the_put_time():
    built = _fleet.build_record(
        host="h",
        pid=1,
        service="app",
        source="etcd://e:2379/k.yaml",
        revision=5,
        generation=3,
        published_at=10.5,
        workers=[(30, 3), (20, 2)],
        error=None,
        serving="revision",
        fmt="yaml",
        max_bytes=65536,
    )
    assert built["workers"] == [
        {"pid": 20, "generation": 2},
        {"pid": 30, "generation": 3},
    ]
    assert "updated_at" not in built  # a put's time is no change of content
    value = _fleet.encode_record(built, updated_at=99.0)
    assert _fleet.decode_record(value) == {**built, "updated_at": 99.0}


def test_values_that_are_not_records_are_refused():
    assert _fleet.decode_record(b"not json") is None
    assert _fleet.decode_record(b"[1, 2]") is None
    assert _fleet.decode_record(json.dumps({"host": "h"}).encode()) is None
    broken = {**record(), "workers": "3"}
    assert _fleet.decode_record(json.dumps(broken).encode()) is None


def test_ages():
    assert [fleet_view.age(s) for s in (-3, 0, 59, 60, 3599, 3600, 86400 * 2)] == [
        "0s",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "2d",
    ]


def test_the_workers_cell_counts_and_names_the_laggards():
    assert fleet_view.workers_cell(record()) == "2/2 on gen 7"
    late = record(workers=[(101, 7), (102, 6), (103, 5)])
    assert fleet_view.workers_cell(late) == "1/3 on gen 7; behind 102:6 103:5"
    assert fleet_view.workers_cell(record(workers=[])) == "0/0 on gen 7"


def test_the_summary_says_all_on_the_revision_when_everyone_is():
    records = [record(), record(host="web-2", pid=200, revision=45)]
    # web-2 followed the store past the key's last change: same content.
    assert fleet_view.summary(records, key_revision=42) == (
        "2 hosts, 4 workers; all on revision 42"
    )


def test_the_summary_names_who_is_behind_and_why():
    records = [
        record(),
        record(host="web-2", pid=200, revision=41, generation=6),
        record(host="web-3", pid=300, workers=[(301, 7), (302, 6)]),
        record(host="web-4", pid=400, error="etcd://e/app/config.yaml:3:1: bad"),
    ]
    assert fleet_view.summary(records, key_revision=42) == (
        "4 hosts, 8 workers; behind revision 42: web-2:200 (revision 41); "
        "web-3:300 (worker 302 on gen 6); "
        "web-4:400 (rejected revision 42, serving generation 7)"
    )


def serving(**given):
    facts = {
        "generation": 5,
        "label": "etcd://127.0.0.1:2379/app/config.yaml",
        "from_cache": False,
        "serves_source": True,
        "revision": 12,
        "error": None,
    }
    return _fleet.serving(**{**facts, **given})


def test_what_a_master_serves_in_words():
    assert serving() == "revision"
    rollback = "rollback:3 etcd://127.0.0.1:2379/app/config.yaml"
    assert serving(label=rollback, serves_source=False) == "rollback to generation 3"
    # The key was put back to the rolled-back content: the key's content.
    assert serving(label=rollback, serves_source=True) == "revision"
    assert serving(from_cache=True, serves_source=False) == "cache"
    assert serving(generation=0, serves_source=False) == "nothing"
    assert serving(error="k.yaml:3:1: bad") == "rejected revision 12"
    assert serving(label=rollback, serves_source=False, error="bad") == (
        "rollback to generation 3; rejected revision 12"
    )
    # The error says why the cache is still served.
    assert serving(from_cache=True, serves_source=False, error="bad") == "cache"


def test_the_summary_and_the_table_name_what_is_not_the_keys_content():
    records = [
        record(),
        record(host="web-2", pid=200, serving="rollback to generation 3"),
        record(host="web-3", pid=300, serving="cache"),
        record(
            host="web-4",
            pid=400,
            error="bad",
            serving="rollback to generation 3; rejected revision 42",
        ),
    ]
    assert fleet_view.summary(records, key_revision=42) == (
        "4 hosts, 8 workers; behind revision 42: web-2:200 (rollback to "
        "generation 3); web-3:300 (cache); web-4:400 (rollback to generation "
        "3; rejected revision 42, serving generation 7)"
    )
    lines = fleet_view.table(records, now=1000.0)
    serving_at = lines[0].index("SERVING")
    cells = [line[serving_at:].split("  ")[0] for line in lines[1:]]
    assert cells == [
        "revision",
        "rollback to generation 3",
        "cache",
        "rollback to generation 3; rejected revision 42",
    ]


def test_a_record_of_an_earlier_version_serves_the_revision_unless_rejected():
    old = record()
    del old["serving"]
    rejected = {**record(host="web-2", pid=200, error="bad"), "serving": None}
    assert fleet_view.serving(old) == "revision"
    assert fleet_view.summary([old, rejected], key_revision=42) == (
        "2 hosts, 4 workers; behind revision 42: web-2:200 (rejected, serving "
        "generation 7)"
    )


def test_several_masters_on_one_host_are_counted_as_masters():
    records = [record(pid=100), record(pid=200, workers=[(201, 7)])]
    assert fleet_view.summary(records, key_revision=0) == (
        "2 masters on 1 host, 3 workers; all on revision 42"
    )


def test_the_table_has_its_columns_aligned_and_ages_from_now():
    records = [
        record(updated_at=1000.0),
        record(host="a-much-longer-host", pid=12345, updated_at=880.0),
    ]
    lines = fleet_view.table(records, now=1004.0)
    assert lines[0].split() == list(fleet_view.COLUMNS)
    assert " ".join(lines[1].split()) == (
        "web-1 100 app 42 revision 7 2/2 on gen 7 4s ago"
    )
    assert lines[2].endswith("2m ago")
    starts = [line.index("app") for line in lines[1:]]
    assert starts[0] == starts[1] == lines[0].index("SERVICE")


def test_render_adds_the_summary_and_each_rejection_without_values():
    records = [record(), record(host="web-2", pid=200, error="k.yaml:3:1: bad")]
    lines = fleet_view.render("etcd://e/k.yaml", records, key_revision=42, now=1000)
    assert lines[3].startswith("2 hosts, 4 workers; behind revision 42: web-2:200")
    assert lines[4] == "web-2:200 rejected: k.yaml:3:1: bad"
    assert fleet_view.render("etcd://e/k.yaml", [], key_revision=3, now=0) == [
        "no hotcfg master reports on etcd://e/k.yaml (none running, or "
        "HOTCFG_FLEET=false)"
    ]


def test_the_view_module_is_pure():
    code = (
        "import json, sys, hotcfg.cli.fleet_view; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('hotcfg.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["hotcfg.cli", "hotcfg.cli.fleet_view"]


@pytest.mark.parametrize(
    "key", ["/hotcfg/", "/hotcfg/fleet/x.yaml", "/hotcfg/app.yaml"]
)
def test_a_source_under_hotcfgs_own_keys_is_refused(key):
    with pytest.raises(ConfigError, match="hotcfg's own"):
        Settings.resolve({"HOTCFG_SOURCE": f"etcd://127.0.0.1:2379{key}"})
