"""How long the hotcfg command takes to start, against a bare interpreter.

Runs, side by side and alternating (so a noisy neighbour weighs on every
row alike), ``python -c pass``, ``hotcfg --help``, ``hotcfg --version`` and
``hotcfg status`` with no service (``HOTCFG_SEGMENT_DIR`` an empty tmp dir),
each as a fresh process, and prints the median wall time of each and its
ratio to the bare interpreter's. The ``hotcfg`` rows run the installed
console script next to this interpreter (``.venv/bin/hotcfg``), as a user
would. The modules' compiled ``.pyc`` files are written by the first
(untimed) runs, as pip writes them at install: ``PYTHONDONTWRITEBYTECODE``
is dropped for these runs, since compiling every module at each start is
not what a user's command does.

    .venv/bin/python benchmarks/cli_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _hotcfg() -> list[str]:
    """The console script beside this interpreter, else ``python -m hotcfg``."""
    script = os.path.join(os.path.dirname(sys.executable), "hotcfg")
    if os.path.exists(script):
        return [script]
    found = shutil.which("hotcfg")
    return [found] if found else [sys.executable, "-m", "hotcfg"]


def _once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - start


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--runs", type=int, default=40, help="runs per command")
    args = cli.parse_args()
    hotcfg = _hotcfg()
    with tempfile.TemporaryDirectory() as segments:
        env = {**os.environ, "HOTCFG_SEGMENT_DIR": segments}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        rows = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "hotcfg --help": [*hotcfg, "--help"],
            "hotcfg --version": [*hotcfg, "--version"],
            "hotcfg status (no service)": [*hotcfg, "status"],
        }
        times: dict[str, list[float]] = {name: [] for name in rows}
        for argv in rows.values():  # warm the page cache and .pyc files
            _once(argv, env)
        for _ in range(args.runs):
            for name, argv in rows.items():
                times[name].append(_once(argv, env))
    bare = statistics.median(times["python -c pass"])
    print(f"Python {sys.version.split()[0]}, {args.runs} runs each, alternating")
    print()
    print(f"| {'command':<28} | {'median ms':>9} | {'p90 ms':>7} | {'ratio':>5} |")
    print(f"|{'-' * 30}|{'-' * 10}:|{'-' * 8}:|{'-' * 6}:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[math.ceil(0.9 * len(samples)) - 1]  # nearest rank
        print(
            f"| {name:<28} | {median * 1000:>9.1f} | {p90 * 1000:>7.1f} | "
            f"{median / bare:>5.2f} |"
        )


if __name__ == "__main__":
    main()
