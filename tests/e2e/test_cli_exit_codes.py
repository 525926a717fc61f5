"""The hotcfg command's exit codes and --json as an operator's script sees
them, run as new processes: no service here (69), etcd not answering (75,
a closed port), `wait --json` on a real Gunicorn master, `validate --json`
on a bad file (1), and a reader that closed its pipe (141, nothing on
stderr)."""

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import ROOT, WORKERS, free_port

pytestmark = pytest.mark.e2e


def hotcfg(*args, env_extra=None, stdout=subprocess.PIPE, unbuffered=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    if unbuffered is not None:  # as a user's shell has it (unset), or not
        env.pop("PYTHONUNBUFFERED", None)
        if unbuffered:
            env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "hotcfg", *args],
        stdout=stdout, stderr=subprocess.PIPE, text=True, check=False, timeout=60,
        env=env,
    )  # fmt: skip


@pytest.fixture
def no_service(tmp_path):
    empty = tmp_path / "no-service"
    empty.mkdir(mode=0o700)
    return str(empty)


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["wait", "--timeout", "1"],
        ["get", "value"],
        ["dump"],
        ["history"],
        ["diff"],
        ["rollback"],
    ],
    ids=lambda c: c[0],
)
def test_no_service_is_69(no_service, command):
    done = hotcfg(*command, "--dir", no_service)
    assert done.returncode == 69, done.stderr
    assert "no running hotcfg service found" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_json_with_no_service_prints_an_empty_list(no_service):
    done = hotcfg("status", "--json", "--dir", no_service)
    assert (done.returncode, json.loads(done.stdout)) == (69, [])


def test_an_etcd_that_does_not_answer_is_75(tmp_path):
    url = f"etcd://127.0.0.1:{free_port()}/app/config.yaml"  # nothing listens
    fast = {"HOTCFG_ETCD_TIMEOUT_MS": "2000"}
    fleet = hotcfg("status", "--fleet", url, env_extra=fast)
    assert fleet.returncode == 75, fleet.stderr
    assert fleet.stdout == ""
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    push = hotcfg("push", str(config), url, "--json", env_extra=fast)
    assert push.returncode == 75, push.stderr
    assert push.stdout == ""  # refused before the write: no JSON
    assert "Traceback" not in push.stderr + fleet.stderr


def test_a_url_that_is_not_an_etcd_key_is_a_usage_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    done = hotcfg("push", str(config), "http://127.0.0.1:1/app/config.yaml")
    assert done.returncode == 2
    assert "not an etcd key" in done.stderr


def test_validate_json_on_a_bad_file_is_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("value: [one\n")
    done = hotcfg("validate", str(bad), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["valid"], report["file"]) == (False, str(bad))
    assert "invalid YAML" in report["error"]


def _utc(text):
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    return moment


def test_wait_json_on_a_real_master(service, tmp_path):
    service.all_workers_answer("one")
    service.write_atomic("value: two\n")
    done = service.hotcfg("wait", "--json", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["converged"] is True
    assert outcome["error"] is None
    assert outcome["workers"] == WORKERS
    assert outcome["behind"] == []
    assert outcome["generation"] == outcome["live_generation"] >= 2
    assert outcome["timeout_s"] == 20.0

    status = json.loads(service.hotcfg("status", "--json").stdout)[0]
    assert _utc(status["published_at"]) <= datetime.now(timezone.utc)
    for worker in status["workers"]:
        _utc(worker["applied_at"])

    # Content the master refuses: exit 1, and the reason in the JSON.
    service.write_atomic("value: [three\n")
    refused = service.hotcfg("wait", "--json", "--timeout", "10")
    assert refused.returncode == 1, refused.stderr
    outcome = json.loads(refused.stdout)
    assert outcome["converged"] is False
    assert outcome["generation"] is None
    assert "not published" in outcome["error"]


def _into_a_closed_pipe(*args, unbuffered=False):
    """Run ``hotcfg ARGS`` with stdout a pipe whose reader has gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before the first write
    try:
        return hotcfg(*args, stdout=write_end, unbuffered=unbuffered)
    finally:
        os.close(write_end)


def test_a_closed_pipe_is_141_and_quiet(service):
    for args in (
        ["status", "--dir", str(service.segments)],
        ["dump", "--dir", str(service.segments)],
        ["--help"],
        ["--version"],
    ):
        done = _into_a_closed_pipe(*args)
        assert (done.returncode, done.stderr) == (141, ""), args
    # Unbuffered, print() itself fails: the same.
    segments = str(service.segments)
    done = _into_a_closed_pipe("status", "--dir", segments, unbuffered=True)
    assert (done.returncode, done.stderr) == (141, "")
