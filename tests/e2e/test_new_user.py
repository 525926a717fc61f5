"""What a new user trips over, with real Gunicorn masters: the hooks left
out, the service a command should pick, history with ``--preload``."""

import json
import os
import subprocess
import sys

from tests.e2e.conftest import ROOT


def _no_hooks(tmp_path):
    """A Gunicorn config file without hotcfg's hooks (given after the
    shipped one, it replaces it: Gunicorn takes the last ``-c``)."""
    conf = tmp_path / "plain_gunicorn_conf.py"
    conf.write_text("# no hotcfg hooks\n")
    return ("-c", str(conf))


def _warnings(svc):
    return [
        line
        for line in svc.log.read_text().splitlines()
        if "[WARNING] hotcfg: this Gunicorn worker" in line
    ]


def test_workers_without_the_hooks_share_and_warn_once(start_service, tmp_path):
    """Without the hooks the workers elect one of them to publish (peers,
    the default): one service, both workers in its table, the warning and
    its fix still shown."""
    svc = start_service(tmp_path, workers=2, extra_args=_no_hooks(tmp_path))
    pids = svc.worker_pids()
    svc.all_workers_answer("one")
    svc.wait_until(lambda: len(_warnings(svc)) == 2, "a warning from each worker")
    lines = _warnings(svc)
    assert {int(line.split("[")[2].split("]")[0]) for line in lines} == pids
    assert all("the workers elect one of them" in line for line in lines)
    assert all("install(globals())" in line for line in lines)

    (report,) = svc.status()
    assert report["role"] == "gunicorn-worker"
    assert report["master_pid"] in pids
    assert {w["pid"] for w in report["workers"]} == pids
    out = svc.hotcfg("status")
    assert out.returncode == 0, out.stderr
    assert "elected by its peers" in out.stdout
    assert "fix: start Gunicorn with -c python:hotcfg.integrations.gunicorn" in (
        out.stdout
    )
    out = svc.hotcfg("wait", "--timeout", "10")
    assert out.returncode == 0, out.stderr


def test_workers_without_the_hooks_warn_once_and_status_says_standalone(
    start_service, tmp_path
):
    svc = start_service(
        tmp_path,
        env_extra={"HOTCFG_PEERS": "off"},
        workers=2,
        extra_args=_no_hooks(tmp_path),
    )
    pids = svc.worker_pids()
    svc.all_workers_answer("one")
    svc.get()  # more reads: still one warning per worker
    svc.wait_until(lambda: len(_warnings(svc)) == 2, "a warning from each worker")
    lines = _warnings(svc)
    assert {int(line.split("[")[2].split("]")[0]) for line in lines} == pids
    assert all("-c python:hotcfg.integrations.gunicorn" in line for line in lines)
    assert all("install(globals())" in line for line in lines)
    assert all(f"master (pid {svc.proc.pid})" in line for line in lines)

    out = svc.hotcfg("status")
    assert out.returncode == 0, out.stderr
    assert "2 standalone processes, no Gunicorn master" in out.stdout
    assert "fix: start Gunicorn with -c python:hotcfg.integrations.gunicorn" in (
        out.stdout
    )
    assert "master pid" not in out.stdout
    assert "services" not in out.stdout
    for pid in pids:
        assert f"process pid {pid}" in out.stdout
    roles = {r["role"] for r in svc.status()}
    assert roles == {"gunicorn-worker"}

    out = svc.hotcfg("wait", "--timeout", "5")
    assert out.returncode == 2
    assert "2 standalone processes, no Gunicorn master" in out.stderr
    assert "master pid" not in out.stderr


def test_a_hooked_master_says_it_is_one(service):
    [report] = service.status()
    assert report["role"] == "gunicorn-master"
    out = service.hotcfg("status")
    assert f"master      pid {service.proc.pid}" in out.stdout
    assert not _warnings(service)


def test_several_services_are_listed_with_pid_name_and_source(start_service, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = start_service(tmp_path / "a", workers=1)
    two = start_service(tmp_path / "b", workers=1)
    out = one.hotcfg("wait", "--timeout", "5")
    assert out.returncode == 2
    text = out.stderr
    assert f"2 running services in {one.segments}" in text
    # Both are named "hotcfg": --name cannot tell them apart.
    assert "pick one with --pid or --segment" in text
    assert "--name" not in text
    for svc in (one, two):
        assert f"master pid {svc.proc.pid}" in text
        assert f"source file:{svc.config}" in text
    assert text.count("name hotcfg") == 2


def test_different_names_suggest_name(start_service, tmp_path):
    for sub, name in (("a", "shop"), ("b", "blog")):
        (tmp_path / sub).mkdir()
        start_service(tmp_path / sub, env_extra={"HOTCFG_NAME": name}, workers=1)
    out = _hotcfg("wait", "--timeout", "5", segments=os.environ["HOTCFG_SEGMENT_DIR"])
    assert out.returncode == 2
    assert "pick one with --name, --pid or --segment" in out.stderr
    assert "name shop" in out.stderr
    assert "name blog" in out.stderr


def test_a_wrong_pid_names_it_and_what_runs(service):
    wrong = service.proc.pid + 100000
    out = service.hotcfg("wait", "--pid", str(wrong), "--timeout", "5")
    assert out.returncode == 69  # no such service
    assert f"no service with master pid {wrong} in {service.segments}" in out.stderr
    assert f"master pid {service.proc.pid}" in out.stderr
    out = service.hotcfg("status", "--pid", str(wrong))
    assert out.returncode == 69
    assert f"no service with master pid {wrong} in {service.segments}" in out.stderr
    assert f"master pid {service.proc.pid}" in out.stderr


def test_nothing_running_names_the_directory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    out = _hotcfg("wait", "--timeout", "1", segments=str(empty))
    assert out.returncode == 69
    assert f"no running hotcfg service found in {empty}" in out.stderr


def test_history_with_preload_and_a_read_at_import(start_service, tmp_path):
    svc = start_service(
        tmp_path,
        workers=2,
        extra_args=("--preload",),
        app="tests.apps.import_read_app:app",
    )
    svc.all_workers_answer("one")
    out = svc.hotcfg("history")
    assert out.returncode == 0, out.stderr
    assert "no history" not in out.stdout, out.stdout
    assert "HOTCFG_HISTORY=0" not in out.stdout
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")
    entries = json.loads(svc.hotcfg("history", "--json").stdout)
    assert [e["live"] for e in entries][-1] is True
    assert len(entries) == 2
    assert svc.status()[0]["role"] == "gunicorn-master"


def _hotcfg(*args, segments):
    return subprocess.run(
        [sys.executable, "-m", "hotcfg", *args, "--dir", segments],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
