"""The getting-started page's quick start, run as a pip user would: its
config file and app written from the page, its Gunicorn command run as
written (on a free port), then its edit and ``hotcfg wait``; every worker
then answers the new value. The ``curl`` lines are requests made here,
repeated until each worker pid has answered."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e

PAGE = ROOT / "docs" / "getting-started.md"
WORKERS = 4


def quick_start():
    """The ``## Quick start`` section's blocks: {"yaml": [...], "python": [...],
    "sh": [...]}, each a list in page order."""
    section = PAGE.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for lang, code in re.findall(r"^```(\w+)\n(.*?)^```$", section, re.M | re.S):
        found.setdefault(lang, []).append(code)
    return found


def children(pid):
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    )
    return {int(p) for p in out.stdout.split()}


def answer(port):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def wait_until(predicate, what, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()}")


@pytest.fixture
def run_page_commands(tmp_path):
    """Runs shell lines from the page in the quick start's directory, with
    this interpreter's gunicorn and hotcfg first on the PATH; whatever was
    started is stopped at teardown, also on failure."""
    if subprocess.run(["which", "pgrep"], capture_output=True).returncode:
        pytest.skip("pgrep (procps) is not installed")
    started = []
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.pop("HOTCFG_SOURCE", None)
    env.pop("PYTHONPATH", None)  # a pip user's hotcfg: the installed one

    def run(code, background=False, log=None):
        argv = ["bash", "-euo", "pipefail", "-c", code]
        if background:
            proc = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            started.append(proc)
            return proc
        return subprocess.run(
            argv,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=40,
            check=False,
        )

    yield run
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_the_quick_start_runs_and_one_edit_reaches_every_worker(
    tmp_path, run_page_commands
):
    blocks = quick_start()
    (config,) = blocks["yaml"]
    (app,) = blocks["python"]
    start, edit = blocks["sh"]
    assert "gunicorn -c python:hotcfg.integrations.gunicorn" in start
    assert f"--workers {WORKERS}" in start
    (tmp_path / "config.yaml").write_text(config)
    (tmp_path / "app.py").write_text(app)

    port = free_port()
    command = start.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert command != start, "the page's command binds 127.0.0.1:8000"
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as logf:
        shell = run_page_commands(command, background=True, log=logf)

    def master():
        """Gunicorn's master: the shell itself once it exec'd, or its child."""
        if "gunicorn" in Path(f"/proc/{shell.pid}/cmdline").read_text():
            return shell.pid
        found = children(shell.pid)
        return found.pop() if len(found) == 1 else None

    def workers():
        pid = master()
        return children(pid) if pid else set()

    wait_until(lambda: len(workers()) == WORKERS, f"{WORKERS} workers", log)

    def every_worker_says(greeting):
        seen = {}

        def done():
            for _ in range(WORKERS * 4):
                text = answer(port)
                pid = int(text.rsplit(" ", 1)[1])
                seen[pid] = text.split(" from worker ")[0]
            pids = workers()
            return pids and all(seen.get(pid) == greeting for pid in pids)

        wait_until(done, f"every worker saying {greeting!r} (seen {seen})", log)

    every_worker_says("hello")

    edit_lines = [line for line in edit.splitlines() if not line.startswith("curl")]
    assert any(line.startswith("hotcfg wait") for line in edit_lines)
    done = run_page_commands("\n".join(edit_lines))
    assert done.returncode == 0, done.stdout + done.stderr
    new = re.search(r"greeting: ([^'\n]+)", edit).group(1)
    every_worker_says(new)
