"""What ``status --fleet`` and ``promote`` say about a canary, from the
fleet's records (pure: ``cli.fleet_view``)."""

from hotcfg._sources.etcd.rollout import Selector
from hotcfg.cli import fleet_view
from tests.unit.test_fleet import record


def tracked(track, **fields):
    built = record(**fields)
    built["track"] = track
    return built


def older(**fields):
    """A record as a hotcfg without canaries puts it: no track."""
    built = record(**fields)
    del built["track"], built["canary_error"]
    return built


def test_a_selected_master_is_ready_only_on_the_canary_revision_with_all_workers():
    records = [
        tracked("canary", host="h1", pid=1, revision=9),
        tracked("canary", host="h1", pid=2, revision=8),
        tracked("main", host="h1", pid=3, revision=5),
        tracked("canary", host="h1", pid=4, revision=9, error="bad: x"),
        tracked("canary", host="h1", pid=5, revision=9, workers=[(51, 7), (52, 6)]),
        older(host="h1", pid=6, revision=9),  # an older hotcfg: no track
        tracked("main", host="h2", pid=7, revision=5),  # not selected
    ]
    selected, reasons = fleet_view.canary_not_ready(
        records, Selector.parse("h1").selects, 9
    )
    assert [r["pid"] for r in selected] == [1, 2, 3, 4, 5, 6]
    assert reasons == [
        "h1:2 is on the canary of revision 8, not 9",
        "h1:3 is on main",
        "h1:4 rejected the canary: bad: x",
        "h1:5 has 1 worker behind",
        "h1:6 reports no track (a hotcfg without canaries)",
    ]


def test_the_track_column_shows_with_a_canary_or_a_record_that_reports_one():
    old = [older()]
    assert "TRACK" not in fleet_view.render("k", old, key_revision=42, now=1000)[0]
    lines = fleet_view.render(
        "k", old, key_revision=42, now=1000, canary=["canary  revision 9 ..."]
    )
    assert lines[0] == "canary  revision 9 ..."
    assert lines[1].split()[4] == "TRACK"
    assert lines[2].split()[4] == "-"
    lines = fleet_view.table([tracked("main")], now=1000.0, with_track=True)
    assert lines[1].split()[4] == "main"


def test_the_canary_line_names_hosts_selector_author_and_message():
    line = fleet_view.canary_line(
        {
            "revision": 9,
            "selector": "10%",
            "hosts": ["h1", "h4"],
            "author": "ann@ops",
            "message": "pool up",
        },
        when="T",
    )
    assert (
        line == 'canary  revision 9 for h1,h4 (10%), pushed by ann@ops at T: "pool up"'
    )


def test_the_summary_holds_canary_masters_to_the_canary_revision():
    records = [
        tracked("canary", host="h1", pid=1, revision=57),
        tracked("main", host="h2", pid=2, revision=51),
    ]
    assert fleet_view.summary(records, 51, 57).endswith(
        "all on revision 51, the canary's 57 on h1:1"
    )
    rejected = [
        tracked("canary", host="h1", pid=1, revision=57, error="bad: x"),
        tracked("main", host="h2", pid=2, revision=51),
    ]
    line = fleet_view.summary(rejected, 51, 57)
    assert "behind revision 51, the canary's 57 on h1:1: h1:1 (" in line
    assert "h2:2" not in line.split(": ", 1)[1]
    # Without a canary a master still on an old one's track is just behind.
    assert "behind revision 51: h1:1 (revision 50" in fleet_view.summary(
        [tracked("canary", host="h1", pid=1, revision=50)], 51
    )


def test_a_selected_master_serving_a_rollback_or_its_cache_is_not_ready():
    records = [
        tracked(
            "canary", host="h1", pid=1, revision=9, serving="rollback to generation 3"
        ),
        tracked("canary", host="h2", pid=2, revision=9, serving="cache"),
        tracked("canary", host="h3", pid=3, revision=9),
    ]
    _, reasons = fleet_view.canary_not_ready(
        records, Selector.parse("h1,h2,h3").selects, 9
    )
    assert reasons == [
        "h1:1 serves rollback to generation 3, not the canary",
        "h2:2 serves cache, not the canary",
    ]


def test_a_named_host_without_a_live_master_is_not_ready():
    records = [tracked("canary", host="h1", pid=1, revision=9)]
    selector = Selector.parse("h1,h4")
    _, reasons = fleet_view.canary_not_ready(
        records, selector.selects, 9, named=selector.hosts
    )
    assert reasons == ["h4 has no live master (no fleet record)"]
