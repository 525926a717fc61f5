"""A real Prometheus server for tests, on a free 127.0.0.1 port, and what
the ops tests share: the shipped rules and dashboard, the metric names an
expression uses, and the names a real master exports.

The server is Debian's ``prometheus`` package (``/usr/bin/prometheus``);
tests that need it skip when it is missing (:func:`prometheus_binary`).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "ops" / "prometheus" / "hotcfg-rules.yml"
RULES_TESTS = ROOT / "ops" / "prometheus" / "hotcfg-rules.test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "hotcfg.json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_binary():
    """The ``prometheus`` server, or skip saying how to get it."""
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("prometheus not installed (apt-get install -y prometheus)")
    return found


def promtool_binary():
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    return found


# A matcher's or a grouping's label names are not metric names.
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_NAME = re.compile(r"\bhotcfg_[a-zA-Z0-9_]*")


def metric_names(expr):
    """The ``hotcfg_*`` metric names a PromQL expression reads."""
    bare = _GROUPING.sub(" ", _MATCHERS.sub(" ", expr))
    return set(_NAME.findall(bare))


def sample_names(exposition):
    """The sample names of a Prometheus text exposition (``_total``,
    ``_bucket``, ... as a query sees them)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def shipped_rules():
    """The shipped alerting rules, by alert name."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def rules_with_for(path, durations):
    """Write the shipped rules to ``path`` with the ``for:`` of the alerts
    named in ``durations`` replaced (``{"HotcfgWorkersBehind": "2s"}``):
    the same expressions, at a test's pace."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in durations:
                rule["for"] = durations[rule["alert"]]
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Prometheus:
    """One Prometheus server scraping ``targets`` (``host:port`` of
    metrics endpoints) every ``interval`` and evaluating ``rules`` as
    often, its data in ``directory``. Stopped by pid in :meth:`stop`."""

    def __init__(self, directory, binary, *, targets, rules=(), interval="500ms"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": interval,
                        "scrape_timeout": interval,
                        "evaluation_interval": interval,
                    },
                    "rule_files": [str(r) for r in rules],
                    "scrape_configs": [
                        {
                            "job_name": "hotcfg",
                            "static_configs": [{"targets": list(targets)}],
                        }
                    ],
                }
            )
        )
        self.log = self.dir / "prometheus.log"
        self.proc = None

    def start(self, timeout_s=30.0):
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.console.templates=",
                    "--web.console.libraries=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready:\n{self.log.read_text()}")

    def api(self, path, **params):
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr):
        """The instant vector ``expr`` gives now: ``[(labels, value)]``."""
        data = self.api("query", query=expr)
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]

    def alerts(self, name=None):
        """The alerts pending or firing now (of ``name`` only, if given)."""
        found = self.api("alerts")["alerts"]
        return [a for a in found if name is None or a["labels"]["alertname"] == name]

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
