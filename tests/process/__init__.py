"""Tests that run hotcfg in a child Python process of their own, so the
process-global state of ``hotcfg._api`` starts fresh each time."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(script, config, *args, **env_extra):
    """Run ``script`` with ``HOTCFG_SOURCE=config``; returns its stripped stdout."""
    env = dict(os.environ, HOTCFG_SOURCE=str(config), PYTHONPATH=str(ROOT))
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env, capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
