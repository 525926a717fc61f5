"""The shipped alerting rules and dashboard (``ops/``): promtool accepts
the rules and passes their unit tests, and every metric they name is one
the master exports (read from a real publisher's registry), so a renamed
metric cannot leave an alert that never fires."""

import json
import subprocess

import pytest
import yaml

from hotcfg._master import metrics
from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from tests.prometheus import (
    DASHBOARD,
    RULES,
    RULES_TESTS,
    metric_names,
    promtool_binary,
    sample_names,
    shipped_rules,
)

prometheus_client = pytest.importorskip("prometheus_client")

ALERTS = {
    "HotcfgWorkersBehind",
    "HotcfgSourceDown",
    "HotcfgServingCache",
    "HotcfgRejecting",
    "HotcfgValidatorStuck",
    "HotcfgNoRecentPublish",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The sample names a master's endpoint serves, from a real registry."""
    tmp = tmp_path_factory.mktemp("exported")
    source = tmp / "config.yaml"
    source.write_text("value: one\n")
    segment = Segment.create(str(tmp / "seg"), name="t")
    publisher = Publisher(
        FileSource(str(source), "yaml", 1 << 20),
        segment,
        Settings(),
        keep_history=False,
    )
    try:
        publisher.publish_from_source(raise_errors=True)
        text = prometheus_client.generate_latest(metrics.registry(publisher))
    finally:
        publisher.close()
    return sample_names(text.decode())


def test_promtool_checks_the_rules():
    done = subprocess.run(
        [promtool_binary(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_pass_and_cover_every_alert_both_ways():
    done = subprocess.run(
        [promtool_binary(), "test", "rules", str(RULES_TESTS)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=RULES_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == ALERTS
    assert quiet == ALERTS


def test_every_alert_is_shipped_with_a_summary_a_description_and_a_severity():
    rules = shipped_rules()
    assert set(rules) == ALERTS
    for name, rule in rules.items():
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        assert rule["labels"]["severity"] in ("warning", "critical"), name


def test_every_metric_the_rules_read_is_exported(exported):
    for name, rule in shipped_rules().items():
        used = metric_names(rule["expr"])
        assert used, name
        assert used <= exported, (name, used - exported)


def test_the_metric_names_of_an_expression_leave_labels_out():
    expr = (
        'time() - hotcfg_x{hotcfg_publish_expected="true"} > 1 and '
        "sum by (hotcfg_label) (rate(hotcfg_y_bucket[5m]))"
    )
    assert metric_names(expr) == {"hotcfg_x", "hotcfg_y_bucket"}


def test_the_dashboard_takes_its_datasource_as_a_variable_and_reads_exported_metrics(
    exported,
):
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    read = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used, (panel["title"], target["expr"])
            assert used <= exported, (panel["title"], used - exported)
            read |= used
    # generation, workers behind, publishes, rejections, source up, the
    # cache, the publish's age
    assert {
        "hotcfg_generation",
        "hotcfg_workers_behind",
        "hotcfg_publishes_total",
        "hotcfg_rejections_total",
        "hotcfg_rejecting",
        "hotcfg_source_up",
        "hotcfg_serving_cache",
        "hotcfg_last_publish_timestamp_seconds",
        "hotcfg_validating_since_timestamp_seconds",
    } <= read
