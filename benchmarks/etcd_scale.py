"""etcd: one key followed by 10, 50 and 200 watcher processes, and what
etcd spends on them.

    .venv/bin/python benchmarks/etcd_scale.py [--sizes 10 50 200] [--puts 30]
        [--calls 5]
    .venv/bin/python benchmarks/etcd_scale.py --quick

One etcd member (benchmarks/etcd_server.py: free 127.0.0.1 ports, data in a
temporary directory, stopped by its pid). Per size, that many watcher
processes (benchmarks/etcd_watcher.py): hotcfg's ``EtcdSource`` and
``Publisher`` without Gunicorn, each following the key with its own watch
stream and publishing into its own segment, as one host's master would.
They are forked from one parent that imported hotcfg, so they share its
pages; each appends ``<pid> <value> <CLOCK_MONOTONIC ns>`` to one
``O_APPEND`` file once a new value is in its segment (the publisher's
``notify``).

- **put -> all published**: from just before a put is sent (``POST
  /v3/kv/put`` through the gateway, from this process, on a kept-open
  connection) until the last watcher's record of the new value. Puts are
  ``--gap`` seconds apart (random), after an untimed warm-up put.
- **etcd CPU**: utime + stime of the etcd process (``/proc/<pid>/stat``)
  from just before the first timed put until the last one was published
  everywhere, as % of one core over that window, and per put; per put and
  watcher it is the per-put figure divided by the watchers. A
  least-squares line over the sizes splits the per-put figure into a fixed
  part (the put itself: raft, the WAL's fsync, the gateway) and a part per
  watcher (the fan-out, through the JSON gateway, whose encoding of each
  event for each stream is included).
- **etcd RSS** (``VmRSS`` of ``/proc/<pid>/status``) after the puts (and
  its growth per watcher added, from the smallest size to the largest), and
  the watchers' PSS (``/proc/<pid>/smaps_rollup``: shared pages split
  between the processes that map them), median per watcher.
- **Single calls**, once the watchers are gone: a range, a put and a lease
  keepalive (``/v3/lease/keepalive``, what a fleet record's lease costs),
  each made one after another on one kept-open connection for ``--calls``
  seconds; etcd's CPU per call over that time. The gateway's own work (HTTP,
  JSON, a loopback gRPC call) is in every figure.

On this machine's two cores the watchers themselves share the CPU with etcd
(each parses, validates, encodes and publishes): the put -> all published
time grows with the count for that reason too, which one host per watcher
would not show. etcd's own figures are the ones to extrapolate from.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from etcd_convergence import Records
from etcd_server import TICKS_PER_S, Etcd, b64, exit_on_sigterm, pss_kb, summed
from harness import ROOT, config_text, p95

KEY = "/bench/config.yaml"
SIZE = 1_000


@dataclass
class Result:
    watchers: int
    times_ms: list[float] = field(default_factory=list)
    puts: int = 0
    cpu_s: float = 0.0  # etcd's, over the window
    window_s: float = 0.0
    etcd_rss_mb: float = 0.0
    watcher_pss_mb: float = 0.0  # median

    @property
    def cpu_pct(self) -> float:
        return self.cpu_s / self.window_s * 100

    @property
    def cpu_ms_per_put(self) -> float:
        return self.cpu_s / self.puts * 1000

    @property
    def us_per_put_watcher(self) -> float:
        return self.cpu_ms_per_put * 1000 / self.watchers


class Watchers:
    """``count`` watcher processes, stopped by pid when leaving the block."""

    def __init__(
        self, etcd: Etcd, directory: Path, records: Records, count: int, progress: int
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "etcd_watcher.py"),
             etcd.endpoint, KEY, str(directory), str(records.path), str(count),
             str(progress)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=f"{ROOT / 'benchmarks'}:{ROOT}"),
        )  # fmt: skip
        self.pids: list[int] = []
        try:
            assert self.proc.stdout is not None
            self.pids = [int(p) for p in self.proc.stdout.readline().split()]
            if len(self.pids) != count:
                raise RuntimeError("the watchers did not start")
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Watchers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the parent reaps the children and exits
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)  # its children follow it
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def wait_watching(etcd: Etcd, count: int, timeout_s: float) -> None:
    """Until etcd holds ``count`` watchers."""
    deadline = time.monotonic() + timeout_s
    while summed(etcd.metrics(), "etcd_debugging_mvcc_watcher_total") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"etcd holds fewer than {count} watchers")
        time.sleep(0.2)


def measure(count: int, etcd: Etcd, tmp: Path, args: argparse.Namespace) -> Result:
    result = Result(count)
    directory = tmp / f"watchers-{count}"
    directory.mkdir()
    records = Records(directory / "published.log")
    try:
        with Watchers(etcd, directory, records, count, args.progress_ms) as watchers:
            pids = set(watchers.pids)
            wait_watching(etcd, count, args.timeout)
            etcd.put(KEY, config_text(-1, SIZE))  # untimed: all follow the key
            if records.wait_all(pids, "-1", args.timeout) is None:
                raise RuntimeError(f"{count}: not every watcher published the warm-up")
            cpu_before, began = etcd.cpu_seconds(), time.monotonic()
            for value in range(1, args.puts + 1):
                time.sleep(random.uniform(*args.gap))
                start = time.monotonic_ns()
                etcd.put(KEY, config_text(value, SIZE))
                done = records.wait_all(pids, str(value), args.timeout)
                result.puts += 1
                if done is not None:
                    result.times_ms.append((done - start) / 1e6)
            result.cpu_s = etcd.cpu_seconds() - cpu_before
            result.window_s = time.monotonic() - began
            result.etcd_rss_mb = etcd.rss_mb()
            result.watcher_pss_mb = statistics.median(pss_kb(p) for p in pids) / 1024
    finally:
        records.close()
    return result


def fit(results: list[Result]) -> tuple[float, float] | None:
    """Least squares of etcd's CPU ms per put against watchers:
    (fixed ms, us per watcher)."""
    if len(results) < 2:
        return None
    xs = [float(r.watchers) for r in results]
    ys = [r.cpu_ms_per_put for r in results]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - slope * mx, slope * 1000


def unary_costs(etcd: Etcd, seconds: float) -> list[tuple[str, float, float]]:
    """(call, calls per second, etcd CPU us per call) for gateway calls made
    one after another on one kept-open connection for ``seconds`` each."""
    lease = etcd.call("/v3/lease/grant", {"TTL": 60})["ID"]
    calls = {
        "range": ("/v3/kv/range", {"key": b64(KEY.encode())}),
        "put": ("/v3/kv/put", {"key": b64(b"/bench/unary"), "value": b64(b"x")}),
        "keepalive": ("/v3/lease/keepalive", {"ID": lease}),
    }
    costs = []
    for name, (path, request) in calls.items():
        count, cpu_before, began = 0, etcd.cpu_seconds(), time.monotonic()
        while time.monotonic() - began < seconds:
            etcd.call(path, request)
            count += 1
        elapsed, cpu = time.monotonic() - began, etcd.cpu_seconds() - cpu_before
        costs.append((name, count / elapsed, cpu / count * 1e6))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10 and 20 watchers, 5 puts")  # fmt: skip
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--puts", type=int, default=30, help="timed puts per size")
    parser.add_argument("--gap", type=float, nargs=2, default=[0.2, 0.6],
                        metavar=("MIN", "MAX"),
                        help="seconds between puts")  # fmt: skip
    parser.add_argument("--progress-ms", type=int, default=10_000,
                        help="etcd's progress-notification interval")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to start; for a put to reach all")  # fmt: skip
    parser.add_argument("--calls", type=float, default=5.0,
                        help="seconds of each kind of single gateway call")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.puts, args.calls = [10, 20], 5, 1.0
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    exit_on_sigterm()
    print(f"one etcd member, one 1 KB YAML key; per size that many hotcfg watcher "
          f"processes (EtcdSource + Publisher, a segment each); {args.puts} puts "
          f"through the v3 JSON gateway, {args.gap[0]:g}-{args.gap[1]:g} s apart "
          f"(random)")  # fmt: skip
    print("put -> all published: from just before the put is sent until the last "
          "watcher's new value is in its segment; etcd cpu: utime+stime over the "
          "timed puts, % of one core, per put, and per put and watcher")  # fmt: skip
    print(f"{'watchers':>8} {'median ms':>10} {'p95 ms':>8} {'applied':>8} "
          f"{'etcd cpu %':>11} {'cpu ms/put':>11} {'us/put/watcher':>15} "
          f"{'etcd rss MB':>12} {'watcher pss MB':>15}")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory(prefix="hotcfg-etcd-") as name:
        tmp = Path(name)
        with Etcd(tmp / "etcd", progress_ms=args.progress_ms) as etcd:
            etcd.put(KEY, config_text(0, SIZE))
            for count in args.sizes:
                r = measure(count, etcd, tmp, args)
                results.append(r)
                if not r.times_ms:
                    print(f"{count:>8} no put reached every watcher within "
                          f"{args.timeout:g} s")  # fmt: skip
                    continue
                print(f"{count:>8} {statistics.median(r.times_ms):>10.1f} "
                      f"{p95(r.times_ms):>8.1f} {len(r.times_ms):>8} "
                      f"{r.cpu_pct:>11.1f} {r.cpu_ms_per_put:>11.2f} "
                      f"{r.us_per_put_watcher:>15.1f} {r.etcd_rss_mb:>12.1f} "
                      f"{r.watcher_pss_mb:>15.2f}")  # fmt: skip
            # The watchers are gone: one client, one call at a time.
            costs = unary_costs(etcd, args.calls)
    line = fit(results)
    if line is not None:
        fixed, per_watcher = line
        print(f"least squares over the sizes: etcd CPU per put = {fixed:.2f} ms "
              f"+ {per_watcher:.1f} us x watchers")  # fmt: skip
        low, high = results[0], results[-1]
        grown = (high.etcd_rss_mb - low.etcd_rss_mb) * 1024
        print(f"etcd RSS from {low.watchers} to {high.watchers} watchers: "
              f"{grown / (high.watchers - low.watchers):.0f} KB per watcher "
              "added")  # fmt: skip
    print(f"applied: puts (of {args.puts}) that reached every watcher within "
          f"{args.timeout:g} s; CPU figures have the kernel's {TICKS_PER_S} Hz tick "
          "as resolution")  # fmt: skip
    print()
    print(f"single gateway calls, one after another on one kept-open connection "
          f"for {args.calls:g} s each, no watcher: etcd CPU per call")  # fmt: skip
    print(f"{'call':<10} {'calls/s':>8} {'etcd us/call':>13}")
    for name, rate, us in costs:
        print(f"{name:<10} {rate:>8.0f} {us:>13.0f}")


if __name__ == "__main__":
    main()
