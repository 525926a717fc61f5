"""Tests that run hotcfg in a child Python process of their own, so the
process-global state of ``hotcfg._runtime`` starts fresh each time."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def script_command(script, config, *args, **env_extra):
    """argv and environment to run ``script`` with ``HOTCFG_SOURCE=config``."""
    env = dict(os.environ, HOTCFG_SOURCE=str(config), PYTHONPATH=str(ROOT))
    env.update(env_extra)
    return [sys.executable, "-c", script, *map(str, args)], env


def run_script_output(script, config, *args, **env_extra):
    """Run ``script`` to its successful end; returns (stdout, stderr), stripped."""
    argv, env = script_command(script, config, *args, **env_extra)
    out = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=50, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr.strip()


def run_script(script, config, *args, **env_extra):
    """Run ``script`` with ``HOTCFG_SOURCE=config``; returns its stripped stdout."""
    return run_script_output(script, config, *args, **env_extra)[0]
