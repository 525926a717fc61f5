"""The shipped alerting rules in a real Prometheus, scraping a real
Gunicorn master: a stopped worker raises HotcfgWorkersBehind (pending,
then firing) and clears it once it runs again.

The rules are the shipped file with a short ``for:`` (generated from it,
so the expression under test is the shipped one); Prometheus scrapes and
evaluates every 0.5 s."""

import json
import os
import signal
import time
import urllib.request

import pytest

from tests.prometheus import (
    DASHBOARD,
    Prometheus,
    metric_names,
    prometheus_binary,
    rules_with_for,
    sample_names,
    shipped_rules,
)

from .conftest import free_port

pytestmark = pytest.mark.e2e

ALERT = "HotcfgWorkersBehind"


def scrape_names(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return sample_names(r.read().decode())


def state(prometheus):
    """The alert's state now: "pending", "firing" or None."""
    alerts = prometheus.alerts(ALERT)
    return alerts[0]["state"] if alerts else None


def wait_state(prometheus, wanted, what, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if state(prometheus) == wanted:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {prometheus.alerts()}")


@pytest.mark.timeout(120)
def test_a_stopped_worker_raises_workers_behind_in_prometheus_until_it_runs(
    start_service, tmp_path
):
    binary = prometheus_binary()
    port = free_port()
    svc = start_service(
        tmp_path, workers=3, env_extra={"HOTCFG_METRICS": f"127.0.0.1:{port}"}
    )
    svc.wait_until(lambda: "hotcfg_generation" in scrape_names(port), "metrics up")
    exported = scrape_names(port)
    for name, rule in shipped_rules().items():
        assert metric_names(rule["expr"]) <= exported, name

    rules = rules_with_for(tmp_path / "rules.yml", {ALERT: "3s"})
    prometheus = Prometheus(
        tmp_path / "prometheus", binary, targets=[f"127.0.0.1:{port}"], rules=[rules]
    )
    stopped = None
    try:
        prometheus.start()
        svc.wait_until(
            lambda: prometheus.query("hotcfg_workers_behind") != [],
            "the first scrape",
        )
        assert state(prometheus) is None
        assert {a["labels"]["alertname"] for a in prometheus.alerts()} == set()

        stopped = min(svc.worker_pids())
        os.kill(stopped, signal.SIGSTOP)
        svc.write_atomic("value: two\n")
        published = time.monotonic()
        svc.wait_until(lambda: svc.status()[0]["generation"] == 2, "the publish")
        pending = wait_state(prometheus, "pending", "the alert pending")
        (held,) = prometheus.alerts(ALERT)
        firing = wait_state(prometheus, "firing", "the alert firing")
        (alert,) = prometheus.alerts(ALERT)
        assert alert["activeAt"] == held["activeAt"]  # one alert, pending then firing
        assert float(alert["value"]) == 1
        assert alert["labels"]["severity"] == "warning"
        assert "1 worker(s)" in alert["annotations"]["summary"]

        os.kill(stopped, signal.SIGCONT)
        resumed = time.monotonic()
        stopped = None
        cleared = wait_state(prometheus, None, "the alert cleared")
        print(
            f"\n{ALERT} (for: 3s, scrape and evaluation every 0.5 s): "
            f"pending {pending - published:.2f} s and firing "
            f"{firing - published:.2f} s after the publish; "
            f"cleared {cleared - resumed:.2f} s after SIGCONT"
        )
        assert prometheus.query("hotcfg_workers_behind")[0][1] == 0

        # Every dashboard query is PromQL this Prometheus accepts (with
        # Grafana's variables filled in).
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$instance", ".*")
                expr = expr.replace("$__rate_interval", "5s")
                prometheus.query(expr)  # an error answers 400
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        prometheus.stop()
