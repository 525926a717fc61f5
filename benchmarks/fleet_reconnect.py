"""A fleet's watches when the member they follow restarts: before and after
the random start and the jittered first retry (docs/decisions/0069).

    .venv/bin/python benchmarks/fleet_reconnect.py [--watchers 300] [--after-s 4]

Starts a real 3-member etcd (``tests/etcd.py``'s ``EtcdCluster``), then for
each policy, in the same run and on the same cluster:

* ``before``: every watcher starts at the first endpoint (the order
  written) and retries 50-100 ms after its stream breaks (the old policy);
* ``after``: each watcher starts at a random rotation of the list, goes on
  to the other members in a random order when its stream breaks
  (``hotcfg._sources.etcd.client.after_failure``) and waits
  ``hotcfg._sources.etcd.watch.retry_delay`` (uniform in [0, 1.5 s] after a
  healthy stream, then exponential with full jitter).

Watchers are threads in this process making raw gateway watch requests
(``POST /v3/watch``, one connection each) and following the retry policy
above, moving on through their list on a failure, as hotcfg's watch does:
hundreds of full hotcfg sources (three threads and a segment each) would
measure this process's CPU rather than etcd's. Once every
watcher's watch is created, the first member is stopped and started again;
a watcher's reconnect delay runs from the stop to its new watch's
``created`` answer. etcd's CPU is utime + stime from ``/proc/<pid>/stat``
of each member, from the stop until ``--after-s`` later (the restarted
member: its new process, from its start).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotcfg._sources.etcd.client import after_failure  # noqa: E402
from hotcfg._sources.etcd.watch import retry_delay  # noqa: E402
from tests.etcd import EtcdCluster  # noqa: E402

KEY = "/bench/fleet.yaml"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class Watcher(threading.Thread):
    def __init__(self, endpoints, policy, stopping, rng):
        super().__init__(daemon=True)
        self.endpoints, self.policy, self.stopping = endpoints, policy, stopping
        self.rng = rng
        self.conn: http.client.HTTPConnection | None = None
        self.created = threading.Event()
        self.reconnected_at: float | None = None
        self.member: str | None = None
        self.broke = False

    def delay(self, failures: int, healthy: bool) -> float:
        if self.policy == "before":
            return 0.05 * 2.0 ** min(failures, 16) * self.rng.uniform(0.5, 1.0)
        return retry_delay(failures, after_healthy=healthy)

    def run(self) -> None:
        index, failures, healthy, broke = 0, 0, False, False
        while not self.stopping.is_set():
            host, port = self.endpoints[index]
            try:
                conn = http.client.HTTPConnection(host, port, timeout=2.0)
                self.conn = conn
                body = {
                    "create_request": {"key": base64.b64encode(KEY.encode()).decode()}
                }
                conn.request("POST", "/v3/watch", json.dumps(body))
                response = conn.getresponse()
                first = json.loads(response.readline() or b"{}")
                if not first.get("result", {}).get("created"):
                    raise OSError("no watch created")
                if conn.sock is not None:
                    conn.sock.settimeout(None)
                if broke and self.reconnected_at is None:
                    self.reconnected_at = time.monotonic()
                self.member = f"{host}:{port}"
                self.created.set()
                failures, healthy = 0, True
                while response.readline():
                    pass
                raise OSError("stream ended")
            except (OSError, http.client.HTTPException, ValueError):
                if self.stopping.is_set():
                    return
                broke = self.broke = True
                if self.policy == "after" and failures == 0:
                    # A working stream broke: the others in a random order.
                    self.endpoints = after_failure(self.endpoints, index, rng=self.rng)
                    index = 0
                failures += 1
                index = (index + 1) % len(self.endpoints)
                self.stopping.wait(self.delay(failures, healthy))
                healthy = False

    def close(self) -> None:
        conn = self.conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


def phase(cluster, policy: str, count: int, after_s: float, seed: int):
    rng = random.Random(seed)
    endpoints = [("127.0.0.1", m.client_port) for m in cluster.members]
    names = {f"127.0.0.1:{m.client_port}": m.name for m in cluster.members}
    stopping = threading.Event()
    watchers = []
    for _ in range(count):
        order = list(endpoints)
        if policy == "after":
            at = rng.randrange(len(order))
            order = order[at:] + order[:at]
        watchers.append(Watcher(order, policy, stopping, random.Random(rng.random())))
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.created.wait(30)
    before_members = Counter(names[w.member] for w in watchers if w.member)
    victim = cluster.members[0]
    others = cluster.members[1:]
    start_ticks = {m.name: cpu_ticks(m.proc.pid) for m in others}
    stopped_at = time.monotonic()
    victim.stop()
    victim.launch()
    restarted_ticks = cpu_ticks(victim.proc.pid)
    time.sleep(max(0.0, stopped_at + after_s - time.monotonic()))
    cpu = {m.name: cpu_ticks(m.proc.pid) - start_ticks[m.name] for m in others}
    cpu[victim.name] = cpu_ticks(victim.proc.pid) - restarted_ticks
    window = time.monotonic() - stopped_at
    victim.wait_healthy()
    deadline = time.monotonic() + 15.0  # every watch that broke is back
    while time.monotonic() < deadline and any(
        w.broke and w.reconnected_at is None for w in watchers
    ):
        time.sleep(0.05)
    followed = [w for w in watchers if w.reconnected_at is not None]
    delays = sorted((w.reconnected_at - stopped_at) * 1000.0 for w in followed)  # type: ignore[operator]
    after_members = Counter(names[w.member] for w in followed if w.member)
    stopping.set()
    for watcher in watchers:
        watcher.close()
    for watcher in watchers:
        watcher.join(5)
    return {
        "policy": policy,
        "moved": len(followed),
        "on_victim": before_members.get(victim.name, 0),
        "delays": delays,
        "before": before_members,
        "after": after_members,
        "cpu": cpu,
        "window": window,
        "names": [m.name for m in cluster.members],
    }


def pct(values, q):
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def report(results, count: int, after_s: float) -> None:
    print(
        f"3-member etcd; {count} watcher threads (raw gateway watches) per policy; "
        f"member m0 stopped (SIGTERM) and started again; "
        f"{after_s:g} s measured from the stop"
    )
    print("reconnect delay: stop -> the new watch's `created` (watchers that moved)")
    print("policy  on m0  moved  p50 ms  p95 ms  max ms")
    for r in results:
        d = r["delays"]
        med = statistics.median(d) if d else 0.0
        print(
            f"{r['policy']:<6} {r['on_victim']:>6} {r['moved']:>6} {med:>7.0f} "
            f"{pct(d, 0.95):>7.0f} {max(d, default=0.0):>7.0f}"
        )
    print()
    print("reconnects per 100 ms after the stop (bucket start in ms)")
    buckets = sorted({int(x // 100) for r in results for x in r["delays"]})
    print("bucket ms " + " ".join(f"{r['policy']:>6}" for r in results))
    for b in buckets:
        counts = [sum(1 for x in r["delays"] if int(x // 100) == b) for r in results]
        print(f"{b * 100:>9} " + " ".join(f"{c:>6}" for c in counts))
    print()
    print("watches per member: before the stop -> after the reconnects")
    names = results[0]["names"]
    print("policy  " + " ".join(f"{n:>12}" for n in names))
    for r in results:
        cells = []
        for n in names:
            now = r["before"].get(n, 0) - (n == names[0]) * r["moved"]
            now += r["after"].get(n, 0)
            cells.append(f"{r['before'].get(n, 0):>5} -> {now:<4}")
        print(f"{r['policy']:<7} " + " ".join(f"{c:>12}" for c in cells))
    print()
    print("etcd CPU in the window, ms (utime+stime; m0: new process from its start)")
    print("policy  " + " ".join(f"{n:>7}" for n in names) + "    total")
    for r in results:
        ms = [r["cpu"][n] * 1000.0 / TICKS_PER_S for n in names]
        print(
            f"{r['policy']:<7} "
            + " ".join(f"{x:>7.0f}" for x in ms)
            + f" {sum(ms):>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=300)
    parser.add_argument("--after-s", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=69)
    args = parser.parse_args()
    import shutil

    binary = shutil.which("etcd")
    if binary is None:
        sys.exit("no etcd binary on PATH")
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="hotcfg-fleet-") as tmp:
        cluster = EtcdCluster(Path(tmp), binary)
        cluster.start()
        try:
            cluster.put(KEY, "value: 1\n")
            results = [
                phase(cluster, policy, args.watchers, args.after_s, args.seed)
                for policy in ("before", "after")
            ]
        finally:
            cluster.stop()
    report(results, args.watchers, args.after_s)


if __name__ == "__main__":
    main()
