"""etcd: from a put to every Gunicorn worker of every host having applied it,
hotcfg against per-worker polling and per-worker watches, in the same run.

    .venv/bin/python benchmarks/etcd_convergence.py [--puts 30] [--idle 60]
    .venv/bin/python benchmarks/etcd_convergence.py --quick

One etcd member (started here on free 127.0.0.1 ports, its data in a
temporary directory, stopped by its pid; benchmarks/etcd_server.py) and, per
peer, ``--hosts`` Gunicorn masters with ``--workers`` sync workers each
(benchmarks/etcd_peer_app.py, ``--no-control-socket``), all following one
key holding a 1 KB YAML document:

- hotcfg: ``HOTCFG_SOURCE=etcd://.../key``, the master the only client;
- poll: every worker reads the key once a second and applies a change
  (the Apollo / consul-template pattern);
- watch: every worker holds its own ``/v3/watch`` stream, opened after the
  fork.

**put -> all applied.** The benchmark process writes each new value with a
put through etcd's v3 JSON gateway (``POST /v3/kv/put`` on a connection
kept open; ``hotcfg push`` would add its own start-up, a read for the
compare-and-swap, and a validation to every figure). The clock
(CLOCK_MONOTONIC) starts just before the request is sent. Every worker
appends ``<pid> <value> <CLOCK_MONOTONIC ns>`` to one ``O_APPEND`` file the
moment it applied a value: from a ``hotcfg.on_change`` callback (it runs in
the worker's applier thread once the worker has switched), and in the peers
right after their parse. One ``write()`` per worker and change, no request
and no load: nothing else touches the workers while they switch. The time
of a put is the latest record of its value among all the workers, minus the
start. "put ms" is the put's own round trip (etcd commits, with an fsync,
before it answers; watchers hear of the put at that commit). Between puts a
random pause (uniform ``--gap`` seconds) keeps a poll's phase from lining
up with the puts. A warm-up put, untimed, first checks that every worker
follows the key.

**Connections** per host: the established TCP connections to etcd's client
port held by the master and its workers, each socket counted once (socket
inodes of ``/proc/<pid>/fd`` matched against ``/proc/<pid>/net/tcp``, as
tests/e2e/test_etcd.py checks).

**Idle cost**: etcd's own counters (``/metrics``; the gateway turns each
HTTP call into a gRPC call, so they count it) read before and after
``--idle`` seconds with no put: ``grpc_server_msg_received_total`` summed
over every method (requests: a poll's range is one, a watch's create
request one, once) and ``grpc_server_msg_sent_total`` (what etcd sends:
range answers, and the watches' progress notifications, one per watcher
every ``--progress-ms``), per minute and per host; etcd's CPU over the
same window (utime+stime from ``/proc/<pid>/stat``, % of one core); and
``etcd_debugging_mvcc_watcher_total`` (the watchers etcd holds) per host.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from etcd_server import Etcd, by_method, connections_to, exit_on_sigterm, summed
from harness import Server, config_text, p95, workers_of

PEERS = ["hotcfg", "poll", "watch"]
KEY = "/bench/config.yaml"
SIZE = 1_000
TARGET_MEDIAN_MS, TARGET_P95_MS = 20.0, 50.0


class Records:
    """The applied-value records the workers append to one file."""

    def __init__(self, path: Path) -> None:
        path.touch()
        self.path = path
        self._file = path.open()
        self._partial = ""
        self.first: dict[str, dict[int, int]] = {}  # value -> pid -> ns

    def collect(self) -> None:
        text = self._partial + self._file.read()
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            pid, value, ns = line.split(" ")
            self.first.setdefault(value, {}).setdefault(int(pid), int(ns))

    def wait_all(self, pids: set[int], value: str, timeout_s: float) -> int | None:
        """The latest ns at which one of ``pids`` applied ``value``; None
        when they have not all applied it within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.collect()
            applied = self.first.get(value, {})
            if pids <= applied.keys():
                return max(applied[pid] for pid in pids)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)

    def close(self) -> None:
        self._file.close()


@dataclass
class Result:
    peer: str
    times_ms: list[float] = field(default_factory=list)  # put -> all applied
    put_ms: list[float] = field(default_factory=list)  # the put's round trip
    puts: int = 0
    connections: list[int] = field(default_factory=list)  # per host
    idle_received: float = 0.0  # per minute per host
    idle_sent: float = 0.0  # per minute per host
    idle_cpu_pct: float = 0.0
    watchers: float = 0.0  # per host
    # per minute per host, by gRPC method: (received, sent), nonzero only
    idle_methods: dict[str, tuple[float, float]] = field(default_factory=dict)


def measure(peer: str, etcd: Etcd, tmp: Path, args: argparse.Namespace) -> Result:
    result = Result(peer)
    directory = tmp / peer
    directory.mkdir()
    records = Records(directory / "applied.log")
    env = {
        "PEER": peer,
        "PEER_ETCD": etcd.endpoint,
        "PEER_KEY": KEY,
        "PEER_RECORD": str(records.path),
        "HOTCFG_SOURCE": etcd.source(KEY),
        "HOTCFG_ETCD_PROGRESS_MS": str(args.progress_ms),
    }
    servers: list[Server] = []
    try:
        for host in range(args.hosts):
            config = directory / f"host{host}" / "config.yaml"
            config.parent.mkdir()
            servers.append(
                Server(
                    "etcd_peer_app:app",
                    args.workers,
                    config,
                    env=env,
                    hotcfg=peer == "hotcfg",
                )
            )
        masters = [s.proc.pid for s in servers]

        def workers() -> set[int]:
            return {pid for master in masters for pid in workers_of(master)}

        # Untimed: every worker follows the key (the watches are open). A
        # worker still importing the app when a put lands registers its
        # callback after the change, and records nothing for it: put warm-up
        # values until one reaches every worker.
        for warm_up in range(-1, -13, -1):
            etcd.put(KEY, config_text(warm_up, SIZE))
            if records.wait_all(workers(), str(warm_up), 5) is not None:
                break
        else:
            raise RuntimeError(f"{peer}: not every worker applied the warm-up puts")
        for value in range(1, args.puts + 1):
            time.sleep(random.uniform(*args.gap))
            pids = workers()
            text = config_text(value, SIZE)
            start = time.monotonic_ns()
            etcd.put(KEY, text)
            result.put_ms.append((time.monotonic_ns() - start) / 1e6)
            done = records.wait_all(pids, str(value), args.timeout)
            result.puts += 1
            if done is not None:
                result.times_ms.append((done - start) / 1e6)
        result.connections = [
            connections_to([m, *workers_of(m)], etcd.client_port) for m in masters
        ]
        idle(etcd, result, args)
    finally:
        for server in servers:
            server.stop()
        records.close()
    return result


def idle(etcd: Etcd, result: Result, args: argparse.Namespace) -> None:
    """etcd's counters over ``args.idle`` seconds with no put."""
    time.sleep(1.0)  # the last put's answers are all in
    before, cpu_before, began = etcd.metrics(), etcd.cpu_seconds(), time.monotonic()
    time.sleep(args.idle)
    after, cpu_after = etcd.metrics(), etcd.cpu_seconds()
    seconds = time.monotonic() - began
    per_minute_host = scale = 60.0 / seconds / args.hosts
    for name, attr in (
        ("grpc_server_msg_received_total", "idle_received"),
        ("grpc_server_msg_sent_total", "idle_sent"),
    ):
        delta = summed(after, name) - summed(before, name)
        setattr(result, attr, delta * per_minute_host)
    received, sent = (
        {
            method: (count - by_method(before, name).get(method, 0.0)) * scale
            for method, count in by_method(after, name).items()
        }
        for name in ("grpc_server_msg_received_total", "grpc_server_msg_sent_total")
    )
    result.idle_methods = {
        method: (received.get(method, 0.0), sent.get(method, 0.0))
        for method in sorted(received.keys() | sent.keys())
        if received.get(method) or sent.get(method)
    }
    result.idle_cpu_pct = (cpu_after - cpu_before) / seconds * 100
    result.watchers = summed(after, "etcd_debugging_mvcc_watcher_total") / args.hosts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 5 puts, a 5 s idle window")  # fmt: skip
    parser.add_argument("--puts", type=int, default=30, help="timed puts per peer")
    parser.add_argument("--idle", type=float, default=60.0,
                        help="seconds with no put for the idle counters")  # fmt: skip
    parser.add_argument("--hosts", type=int, default=3, help="Gunicorn masters")
    parser.add_argument("--workers", type=int, default=4, help="workers per master")
    parser.add_argument("--peers", nargs="+", default=PEERS, choices=PEERS)
    parser.add_argument("--progress-ms", type=int, default=10_000,
                        help="etcd's progress-notification interval")  # fmt: skip
    parser.add_argument("--gap", type=float, nargs=2, default=[0.2, 1.2],
                        metavar=("MIN", "MAX"),
                        help="seconds between puts")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds for a put to reach every worker")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.puts, args.idle = 5, 5.0
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="hotcfg-etcd-") as name:
        tmp = Path(name)
        with Etcd(tmp / "etcd", progress_ms=args.progress_ms) as etcd:
            etcd.put(KEY, config_text(0, SIZE))
            results = [measure(peer, etcd, tmp, args) for peer in args.peers]
    report(results, args)


def report(results: list[Result], args: argparse.Namespace) -> None:
    shape = f"{args.hosts} Gunicorn masters x {args.workers} sync workers"
    print(f"one etcd member; per peer {shape}, one 1 KB YAML key; "
          f"{args.puts} puts through the v3 JSON gateway, "
          f"{args.gap[0]:g}-{args.gap[1]:g} s apart (random)")  # fmt: skip
    print("put -> all applied: from just before the put is sent until the last "
          "worker recorded the new value (CLOCK_MONOTONIC); put: the put's round "
          "trip")  # fmt: skip
    print(f"idle: etcd's counters over {args.idle:g} s with no put, per minute "
          f"and per host; progress notifications every {args.progress_ms} "
          "ms")  # fmt: skip
    print(f"{'peer':>7} {'median ms':>10} {'p95 ms':>8} {'x hotcfg':>9} "
          f"{'put ms':>7} {'applied':>8} {'conns/host':>11} {'watchers/host':>14} "
          f"{'req/min/host':>13} {'sent/min/host':>14} {'etcd cpu %':>11}")  # fmt: skip
    base = None
    for r in results:
        if not r.times_ms:
            print(f"{r.peer:>7} no put reached every worker within {args.timeout} s")
            continue
        median = statistics.median(r.times_ms)
        base = median if r.peer == "hotcfg" else base
        ratio = f"{median / base:>9.1f}" if base else f"{'-':>9}"
        conns = statistics.median(r.connections)
        print(f"{r.peer:>7} {median:>10.1f} {p95(r.times_ms):>8.1f} {ratio} "
              f"{statistics.median(r.put_ms):>7.1f} "
              f"{len(r.times_ms):>8} {conns:>11g} "
              f"{r.watchers:>14g} {r.idle_received:>13.1f} {r.idle_sent:>14.1f} "
              f"{r.idle_cpu_pct:>11.2f}")  # fmt: skip
    for r in results:
        methods = ", ".join(
            f"{method} {got:.1f}/{gave:.1f}"
            for method, (got, gave) in r.idle_methods.items()
        )
        print(f"  idle {r.peer}, by method (received/sent per minute per host): "
              f"{methods or 'none'}")  # fmt: skip
    hotcfg = next((r for r in results if r.peer == "hotcfg" and r.times_ms), None)
    if hotcfg is not None:
        median, high = statistics.median(hotcfg.times_ms), p95(hotcfg.times_ms)
        met = median <= TARGET_MEDIAN_MS and high <= TARGET_P95_MS
        print(f"target (loopback): median <= {TARGET_MEDIAN_MS:g} ms, p95 <= "
              f"{TARGET_P95_MS:g} ms: {'met' if met else 'not met'} "
              f"({median:.1f} / {high:.1f} ms)")  # fmt: skip
    print(f"applied: puts (of {args.puts}) that reached every worker within "
          f"{args.timeout:g} s; conns/host: established "
          "TCP connections to etcd held by a master and its workers (median over "
          "hosts); req/min: gRPC messages etcd received (a poll's range, a watch's "
          "create); sent/min: messages etcd sent (range answers, progress "
          "notifications)")  # fmt: skip


if __name__ == "__main__":
    main()
