"""Each benchmark script still runs end to end, at its smallest size.

Numbers are not checked (they belong in BENCHMARKS.md, not in assertions);
only that the script starts its servers, drives its load, prints its table
and exits 0, so the commands in BENCHMARKS.md keep working.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")


def run(script, *args, timeout=120):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@needs_wrk
def test_propagation():
    out = run("propagation.py", "--workers", "2", "--rounds", "2", "--debounce", "0",
              "--write", "away", "--worker-nice", "3")  # fmt: skip
    assert re.search(r"^\s+2\s+10 KB\s+0\s+0\s", out, flags=re.MULTILINE), out
    assert "Reader.refresh()" in out


@needs_wrk
def test_peers():
    out = run("peers.py", "--workers", "2", "--rounds", "1", "--runs", "1",
              "--peers", "hotcfg", "hup", "stat")  # fmt: skip
    assert "hup" in out
    assert 'hotcfg.get("a.b.c") in a request' in out


@needs_wrk
def test_throughput():
    out = run("throughput.py", "--runs", "1", "--seconds", "1")
    assert "plain 2" in out


def test_switch_cost():
    out = run("switch_cost.py", "--repeat", "1", "--sizes", "10 KB")
    assert "10 KB" in out


def test_memory():
    out = run("memory.py", "--workers", "1", "--sizes", "10000")
    assert "segment PSS" in out
