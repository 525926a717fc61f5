"""Propagation: from a file write to every worker answering the new generation.

    .venv/bin/python benchmarks/propagation.py [--rounds 15] [--workers 4 16]

Starts a real Gunicorn (sync workers, tests/apps/probe_app.py) per worker
count and debounce setting, replaces the config atomically, and hammers the
server from N client threads until every worker pid has answered the new
value. Prints median and p95 milliseconds. Then measures the per-request
cost of the refresh with no change against a bare function call.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(port: int) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def workers_of(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def measure(workers: int, debounce_ms: int, rounds: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "config.yaml"
    config.write_text("value: 0\n")
    segdir = tmp / "seg"
    port = free_port()
    env = dict(
        os.environ,
        HOTCFG_SOURCE=str(config),
        HOTCFG_DEBOUNCE_MS=str(debounce_ms),
        HOTCFG_SEGMENT_DIR=str(segdir),
        PYTHONPATH=str(ROOT),
    )
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"),
           "-w", str(workers), "-b", f"127.0.0.1:{port}", "--no-control-socket",
           "tests.apps.probe_app:app"]  # fmt: skip
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(
        cmd, env=env, stdout=quiet, stderr=quiet, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while len(workers_of(proc.pid)) < workers or not _up(port):
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        pids = workers_of(proc.pid)
        results = []
        for value in range(1, rounds + 1):
            time.sleep(0.2)
            results.append(_one_round(port, config, value, pids, workers))
        return results
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def _up(port: int) -> bool:
    try:
        fetch(port)
        return True
    except OSError:
        return False


def _one_round(port: int, config: Path, value: int, pids: set[int], n: int) -> float:
    seen: dict[int, float] = {}
    stop = threading.Event()
    tmp = config.with_name(".config.tmp")
    tmp.write_text(f"value: {value}\n")

    def client() -> None:
        while not stop.is_set():
            try:
                answer = fetch(port)
            except OSError:
                continue
            if answer["value"] == value:
                seen.setdefault(answer["pid"], time.perf_counter())
                if pids <= seen.keys():
                    stop.set()

    threads = [threading.Thread(target=client) for _ in range(n)]
    start = time.perf_counter()
    os.replace(tmp, config)
    for t in threads:
        t.start()
    stop.wait(30)
    stop.set()
    for t in threads:
        t.join()
    return (max(seen.values()) - start) * 1000 if pids <= seen.keys() else float("inf")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def refresh_cost_ns() -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "c.yaml").write_text("a: {b: {c: 1}}\n")
    os.environ["HOTCFG_SEGMENT_DIR"] = str(tmp / "seg")
    import hotcfg
    from hotcfg import _api

    hotcfg.configure(source=str(tmp / "c.yaml"))
    reader = _api.reader()
    n = 200_000
    with_hotcfg = min(timeit.repeat(reader.refresh, number=n, repeat=7)) / n * 1e9

    def nothing() -> None:
        pass

    bare = min(timeit.repeat(nothing, number=n, repeat=7)) / n * 1e9
    from hotcfg.integrations import gunicorn as hooks

    def request_hooks() -> None:
        # What Gunicorn calls around each request with hotcfg installed.
        hooks.pre_request(None, None)
        hooks.post_request(None, None, None, None)

    per_request = min(timeit.repeat(request_hooks, number=n, repeat=7)) / n * 1e9
    _api.ensure_publisher().close()
    return with_hotcfg, bare, per_request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15, help="changes per run")
    parser.add_argument("--runs", type=int, default=1, help="servers per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--debounce", type=int, nargs="+", default=[0, 100])
    parser.add_argument("--cost-only", action="store_true", help="skip propagation")
    args = parser.parse_args()
    print("propagation: file write (atomic rename) -> every worker answers it")
    sys.stdout.reconfigure(line_buffering=True)
    print(f"{args.runs} run(s) of {args.rounds} changes per setting; median and "
          "p95 over all changes, run medians from lowest to highest")  # fmt: skip
    print(f"{'workers':>8} {'debounce ms':>12} {'median ms':>10} {'p95 ms':>8} "
          f"{'n':>4}  run medians")  # fmt: skip
    for workers in [] if args.cost_only else args.workers:
        for debounce in args.debounce:
            runs = [measure(workers, debounce, args.rounds) for _ in range(args.runs)]
            times = [t for run in runs for t in run]
            spread = " ".join(f"{m:.1f}" for m in sorted(map(statistics.median, runs)))
            print(f"{workers:>8} {debounce:>12} {statistics.median(times):>10.1f} "
                  f"{p95(times):>8.1f} {len(times):>4}  {spread}")  # fmt: skip
    refresh, bare, per_request = refresh_cost_ns()
    print()
    print("per-request refresh with no change (best of 7 x 200k calls)")
    print(f"  Reader.refresh(): {refresh:.0f} ns   bare function call: {bare:.0f} ns   "
          f"added: {refresh - bare:.0f} ns")  # fmt: skip
    print(f"  pre_request + post_request hooks (pin and unpin): {per_request:.0f} ns "
          "per request")  # fmt: skip


if __name__ == "__main__":
    main()
