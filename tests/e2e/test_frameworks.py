"""The shipped examples served by real Gunicorn masters (4 workers each): a
live config change reaches every worker pid, through each framework's
integration."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import ROOT, WORKERS, free_port

pytestmark = pytest.mark.e2e
EXAMPLES = ROOT / "examples"


def fetch(port):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def every_worker_renders(svc, text, path):
    """Every worker pid has rendered ``text`` in the page's <h1 data-pid>."""
    seen = {}

    def done():
        for _ in range(WORKERS * 4):
            html = svc.get_text(path)
            pid, title = re.search(r'data-pid="(\d+)"[^>]*>([^<]*)<', html).groups()
            seen[int(pid)] = title
        pids = svc.worker_pids()
        return pids and all(seen.get(pid) == text for pid in pids)

    svc.wait_until(done, f"every worker renders {text!r} (seen {seen})")


def test_flask_example(start_service, tmp_path):
    pytest.importorskip("flask")
    svc = start_service(
        tmp_path,
        app="flask_app:app",
        extra_args=("--pythonpath", str(EXAMPLES)),
    )
    svc.all_workers_answer("hello", key="greeting")
    svc.write_atomic("greeting: Bonjour\nfeatures: {new_checkout: true}\n")
    svc.all_workers_answer("Bonjour", key="greeting")
    every_worker_renders(svc, "Bonjour", "/page")
    assert "Try the new checkout!" in svc.get_text("/page")


def test_django_example(start_service, tmp_path):
    pytest.importorskip("django")
    svc = start_service(
        tmp_path,
        app="exampleproject.wsgi",
        extra_args=("--pythonpath", str(EXAMPLES / "django_project")),
    )
    svc.all_workers_answer("hello", key="greeting")
    svc.write_atomic("greeting: Hallo\nfeatures: {new_checkout: true}\n")
    seen = svc.all_workers_answer("Hallo", key="greeting")
    assert len(seen) >= WORKERS
    assert svc.get()["new_checkout"] is True


@pytest.mark.parametrize(
    ("app", "pythonpath"),
    [
        ("asgi_app:app", EXAMPLES),
        ("exampleproject.asgi", EXAMPLES / "django_project"),
    ],
)
def test_asgi_examples_on_gunicorns_asgi_worker(
    start_service, tmp_path, app, pythonpath
):
    if app.startswith("exampleproject"):
        pytest.importorskip("django")
    svc = start_service(
        tmp_path,
        app=app,
        extra_args=("--worker-class", "asgi", "--pythonpath", str(pythonpath)),
    )
    svc.all_workers_answer("hello", key="greeting")
    svc.write_atomic("greeting: Salut\nfeatures: {new_checkout: true}\n")
    svc.all_workers_answer("Salut", key="greeting")
    assert svc.get()["new_checkout"] is True


def test_asgi_example_under_uvicorn_workers(tmp_path):
    """uvicorn's supervisor has no hooks and spawns (not forks) its workers,
    so they elect one of them to publish (tests/e2e/test_peers.py checks
    how). A change reaches every worker."""
    pytest.importorskip("uvicorn")
    config = tmp_path / "config.yaml"
    config.write_text("greeting: one\n")
    port = free_port()
    env = dict(os.environ, HOTCFG_SOURCE=str(config), HOTCFG_DEBOUNCE_MS="20")
    with (tmp_path / "uvicorn.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--workers", "2", "--port", str(port),
             "--app-dir", str(EXAMPLES), "--no-access-log", "asgi_app:app"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        every_pid_answers(port, "one", workers=2, log=tmp_path / "uvicorn.log")
        tmp = tmp_path / "config.yaml.tmp"
        tmp.write_text("greeting: two\n")
        os.replace(tmp, config)
        every_pid_answers(port, "two", workers=2, log=tmp_path / "uvicorn.log")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def every_pid_answers(port, greeting, *, workers, log, timeout=30):
    """``workers`` distinct pids answered ``greeting``, each its latest answer."""
    latest = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = fetch(port)
        except OSError:
            time.sleep(0.05)
            continue
        latest[answer["pid"]] = answer["greeting"]
        if len(latest) >= workers and all(g == greeting for g in latest.values()):
            return
    raise AssertionError(f"not every worker on {greeting!r}: {latest}\n"
                         f"{log.read_text()}")  # fmt: skip


def test_worker_refuses_app_settings_that_contradict_the_master(tmp_path):
    """The app's HOTCFG_SOURCE cannot change what the master publishes: the
    worker fails to boot, naming the setting, instead of serving another file."""
    pytest.importorskip("flask")
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    env = dict(os.environ, HOTCFG_SOURCE=str(config), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"),
         "-w", "2", "-b", f"127.0.0.1:{free_port()}", "--no-control-socket",
         "tests.apps.flask_elsewhere:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=40)  # Gunicorn exits by itself
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode != 0
    assert "HOTCFG_SOURCE: differs from the value hotcfg already runs" in stderr
    assert "from the app's config only with --preload" in stderr
    assert f"given '/nonexistent/elsewhere.yaml', running with '{config}'" in stderr


def test_master_without_a_source_says_where_it_reads_one(tmp_path):
    """HOTCFG_SOURCE in app.config only: the master, which starts hotcfg
    before any worker imports the app, stops and says where it looks."""
    pytest.importorskip("flask")
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    env = dict(os.environ, APP_CONFIG_FILE=str(config), PYTHONPATH=str(ROOT))
    env.pop("HOTCFG_SOURCE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"),
         "-w", "1", "-b", f"127.0.0.1:{free_port()}", "--no-control-socket",
         "tests.apps.flask_app_config:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=40)  # Gunicorn exits by itself
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode != 0
    assert "hotcfg: no configuration source in the Gunicorn master" in stderr
    assert "HOTCFG_SOURCE in its environment" in stderr
    assert "gunicorn.conf.py" in stderr
    assert "only when it loads the app itself, with --preload" in stderr


def test_master_reads_the_app_config_with_preload(start_service, tmp_path):
    """With --preload the master imports the app first: app.config is then
    the master's setting, and every worker serves that file."""
    pytest.importorskip("flask")
    source = tmp_path / "app-config.yaml"
    source.write_text("value: from app.config\n")
    svc = start_service(
        tmp_path,
        app="tests.apps.flask_app_config:app",
        extra_args=("--preload",),
        env_extra={"HOTCFG_SOURCE": "", "APP_CONFIG_FILE": str(source)},
    )
    svc.all_workers_answer("from app.config")
