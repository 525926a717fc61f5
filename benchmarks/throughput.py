"""HTTP throughput of a hello-world WSGI app under Gunicorn, with and without hotcfg.

    .venv/bin/python benchmarks/throughput.py [--runs 7] [--seconds 5]

Starts three Gunicorn masters side by side on 127.0.0.1 serving the same
app (benchmarks/hello_app.py): two plain, one with the shipped
gunicorn_conf.py (hotcfg's hooks: a generation check and a pin per request).
wrk (Debian package ``wrk``) loads them in turn, in a rotating order, so
machine noise hits all alike; prints requests per second and worker CPU per
request per run, the medians and their ratios to the first plain server.
The second plain server is the control: its ratio shows what two identical
servers differ by on this machine, the resolution of the hotcfg ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import free_port

ROOT = Path(__file__).resolve().parents[1]
APP = "hello_app:app"


def start(with_hotcfg: bool, workers: int, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'benchmarks'}:{ROOT}")
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers),
           "-b", f"127.0.0.1:{port}", "--no-control-socket"]  # fmt: skip
    if with_hotcfg:
        config = tmp / "config.yaml"
        config.write_text("greeting: hello\n")
        env.update(HOTCFG_SOURCE=str(config), HOTCFG_SEGMENT_DIR=str(tmp / "seg"))
        cmd += ["-c", str(ROOT / "gunicorn_conf.py")]
    proc = subprocess.Popen(
        [*cmd, APP],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except ProcessLookupError:
        pass


def worker_cpu_ns(master: int) -> int:
    """CPU time the master's workers have used so far, from the scheduler.

    Time on CPU per request barely moves when other processes compete for
    the cores, unlike requests per second, so it shows a small per-request
    cost through the noise of a shared machine.
    """
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    total = 0
    for pid in out.stdout.split():
        with open(f"/proc/{pid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def wrk(port: int, seconds: int, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        print(out, file=sys.stderr)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(rate.group(1)), int(count.group(1))


def load(
    proc: subprocess.Popen, port: int, seconds: int, conns: int
) -> tuple[float, float]:
    """Requests per second and worker CPU microseconds per request."""
    before = worker_cpu_ns(proc.pid)
    rate, count = wrk(port, seconds, conns)
    return rate, (worker_cpu_ns(proc.pid) - before) / count / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp())
    servers: list[Server] = []
    try:
        for with_hotcfg in (False, True, False):
            servers.append(start(with_hotcfg, args.workers, tmp))
        rows = measure(servers, args)
    finally:
        for proc, _ in servers:
            stop(proc)
    report(rows, args)


Server = tuple[subprocess.Popen, int]


NAMES = ("plain", "hotcfg", "plain 2")


def measure(servers: list[Server], args: argparse.Namespace) -> list[list[float]]:
    """Per run: req/s of each server, then worker CPU us/req of each."""
    for proc, port in servers:
        load(proc, port, 1, args.connections)  # warm up
    rows = []
    for run in range(args.runs):
        # Rotate which goes first so drift does not favour one.
        row = [0.0] * 6
        for k in range(3):
            slot = (run + k) % 3
            proc, port = servers[slot]
            row[slot], row[slot + 3] = load(proc, port, args.seconds, args.connections)
        rows.append(row)
        rates = " ".join(f"{n} {r:>6.0f}" for n, r in zip(NAMES, row, strict=False))
        cpus = " ".join(f"{c:>6.1f}" for c in row[3:])
        print(f"run {run + 1}: req/s {rates}   worker CPU us/req {cpus}", flush=True)
    return rows


def report(rows: list[list[float]], args: argparse.Namespace) -> None:
    def med(i: int) -> float:
        return statistics.median(r[i] for r in rows)

    def ratio(i: int) -> float:
        return statistics.median(r[i] / r[0 if i < 3 else 3] for r in rows)

    print()
    load_desc = f"wrk -t1 -c{args.connections} -d{args.seconds}s"
    print(f"hello-world WSGI, Gunicorn sync, {args.workers} workers, {load_desc}, "
          f"{args.runs} runs, medians; ratio: median of per-run x / plain")  # fmt: skip
    print(f"{'':>8} {'req/s':>8} {'ratio':>6} {'worker CPU us/req':>18} {'ratio':>6}")
    for i, name in enumerate(NAMES):
        print(f"{name:>8} {med(i):>8.0f} {ratio(i):>6.3f} {med(i + 3):>18.1f} "
              f"{ratio(i + 3):>6.3f}")  # fmt: skip
    print("plain 2 is a second, identical plain server: its ratios are the noise")


if __name__ == "__main__":
    main()
