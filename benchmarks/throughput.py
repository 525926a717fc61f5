"""HTTP throughput of a hello-world WSGI app under Gunicorn, with and without hotcfg.

    .venv/bin/python benchmarks/throughput.py [--runs 7] [--seconds 5]

Starts two Gunicorn masters side by side on 127.0.0.1 serving the same app
(benchmarks/hello_app.py): one plain, one with the shipped gunicorn_conf.py
(hotcfg's hooks: a generation check and a pin per request). wrk (Debian
package ``wrk``) loads them in alternation, so machine noise hits both
alike; prints requests per second per run, the medians and their ratio.
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

ROOT = Path(__file__).resolve().parents[1]
APP = "hello_app:app"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    plain = start(False, args.workers, tmp)
    try:
        hot = start(True, args.workers, tmp)
        try:
            rows = measure(plain, hot, args)
        finally:
            stop(hot[0])
    finally:
        stop(plain[0])
    report(rows, args)


Server = tuple[subprocess.Popen, int]


def measure(plain: Server, hot: Server, args: argparse.Namespace) -> list[list[float]]:
    """Per run: plain req/s, hotcfg req/s, plain CPU us/req, hotcfg CPU us/req."""
    for proc, port in (plain, hot):
        load(proc, port, 1, args.connections)  # warm up
    rows = []
    for run in range(args.runs):
        # Alternate which goes first so drift does not favour one.
        row = [0.0] * 4
        for slot in (0, 1) if run % 2 else (1, 0):
            proc, port = (plain, hot)[slot]
            row[slot], row[slot + 2] = load(proc, port, args.seconds, args.connections)
        rows.append(row)
        print(f"run {run + 1}: req/s plain {row[0]:>7.0f} hotcfg {row[1]:>7.0f}   "
              f"worker CPU us/req plain {row[2]:>6.1f} hotcfg {row[3]:>6.1f}",
              flush=True)  # fmt: skip
    return rows


def report(rows: list[list[float]], args: argparse.Namespace) -> None:
    def med(i: int) -> float:
        return statistics.median(r[i] for r in rows)

    rate_ratio = statistics.median(r[1] / r[0] for r in rows)
    cpu_ratio = statistics.median(r[3] / r[2] for r in rows)
    print()
    load_desc = f"wrk -t1 -c{args.connections} -d{args.seconds}s"
    print(f"hello-world WSGI, Gunicorn sync, {args.workers} workers, {load_desc}, "
          f"{args.runs} runs, medians")  # fmt: skip
    print(f"{'':>8} {'req/s':>8} {'worker CPU us/req':>18}")
    print(f"{'plain':>8} {med(0):>8.0f} {med(2):>18.1f}")
    print(f"{'hotcfg':>8} {med(1):>8.0f} {med(3):>18.1f}")
    print(
        f"{'ratio':>8} {rate_ratio:>8.3f} {cpu_ratio:>18.3f}   "
        "(median of per-run hotcfg/plain)"
    )


if __name__ == "__main__":
    main()
