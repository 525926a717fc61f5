"""etcd: a staged rollout, from the write to every worker concerned having
applied it: a canary to one host, its promote to every host, and a plain
push as the reference, in the same run.

    .venv/bin/python benchmarks/rollout.py [--rounds 30]
    .venv/bin/python benchmarks/rollout.py --quick

One etcd member (started here on free 127.0.0.1 ports, its data in a
temporary directory, stopped by its pid; benchmarks/etcd_server.py) and
``--hosts`` Gunicorn masters labelled h1, h2, ... (``HOTCFG_HOST``) with
``--workers`` sync workers each (benchmarks/etcd_peer_app.py with
``PEER=hotcfg``, ``--no-control-socket``), all following one key holding a
1 KB YAML document.

Each round, a random ``--gap`` apart:

- **push**: the key's new value, put as ``hotcfg push`` writes it (one
  transaction: the key, compared on its ``mod_revision``, and its audit
  record); until every worker of every host applied it;
- **canary**: a canary of a new value to h1, written as ``hotcfg push
  --canary h1`` writes it (``K#canary`` and the audit record in one
  transaction); until both of h1's workers applied it. A worker of another
  host that applied it before the promote counts as ``leaked``;
- **promote**: the canary's content to the key, the canary deleted and the
  audit record written in one transaction (as ``hotcfg promote`` writes
  it); until every worker of every host has the value (h1's since the
  canary: the time is the last of the others).

The writes go through etcd's v3 JSON gateway on a connection kept open
(the commands would add their start-up, their reads and their checks of
the fleet to every figure); the clock (CLOCK_MONOTONIC) starts just before
the request is sent. Every worker appends ``<pid> <value> <CLOCK_MONOTONIC
ns>`` to one ``O_APPEND`` file from a ``hotcfg.on_change`` callback, which
runs in the worker's applier once the worker has switched: no request
touches the workers while they switch. "write ms" is the transaction's own
round trip (etcd commits, with an fsync, before it answers).
"""

from __future__ import annotations

import argparse
import getpass
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etcd_convergence import Records
from etcd_server import Etcd, b64, exit_on_sigterm
from harness import Server, config_text, p95, workers_of

from hotcfg._sources.etcd.rollout import (
    Audit,
    Canary,
    Selector,
    audit_key,
    canary_key,
)

KEY = "/bench/config.yaml"
SIZE = 1_000
STEPS = ["push", "canary", "promote"]
TARGET_MEDIAN_MS = 20.0
AUTHOR = f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class Step:
    name: str
    workers: int = 0
    times_ms: list[float] = field(default_factory=list)  # write -> all applied
    write_ms: list[float] = field(default_factory=list)
    rounds: int = 0
    leaked: int = 0  # canary rounds a worker of another host applied it


class Writer:
    """The transactions ``hotcfg push``, ``push --canary`` and ``promote``
    make, through the gateway."""

    def __init__(self, etcd: Etcd) -> None:
        self.etcd = etcd

    def mod_revision(self, key: str) -> int:
        answer = self.etcd.call("/v3/kv/range", {"key": b64(key.encode())})
        kvs = answer.get("kvs") or [{}]
        return int(kvs[0].get("mod_revision", 0))

    def txn(self, compare: list[dict[str, Any]], ops: list[dict[str, Any]]) -> None:
        answer = self.etcd.call("/v3/kv/txn", {"compare": compare, "success": ops})
        if not answer.get("succeeded"):
            raise RuntimeError(f"transaction refused: {json.dumps(answer)[:300]}")

    @staticmethod
    def _put(key: str, value: bytes) -> dict[str, Any]:
        return {"request_put": {"key": b64(key.encode()), "value": b64(value)}}

    @staticmethod
    def _unchanged(key: str, revision: int) -> dict[str, Any]:
        return {
            "key": b64(key.encode()),
            "target": "MOD",
            "result": "EQUAL",
            "mod_revision": str(revision),
        }

    def _audit(self, action: str, selector: str = "") -> dict[str, Any]:
        record = Audit(action, AUTHOR, f"benchmark {action}", time.time(), (), selector)
        return self._put(audit_key(KEY), record.encode())

    def prepare_push(self, text: str) -> tuple[list[dict[str, Any]], list[Any]]:
        base = self.mod_revision(KEY)
        ops = [self._put(KEY, text.encode()), self._audit("push")]
        return [self._unchanged(KEY, base)], ops

    def prepare_canary(
        self, text: str, hosts: str
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        base = self.mod_revision(KEY)
        selector = Selector.parse(hosts)
        canary = Canary(
            selector, text.encode(), base, AUTHOR, "benchmark canary", time.time()
        )
        ops = [
            self._put(canary_key(KEY), canary.encode()),
            self._audit("canary", selector.describe()),
        ]
        return [self._unchanged(KEY, base)], ops

    def prepare_promote(self, text: str) -> tuple[list[dict[str, Any]], list[Any]]:
        base = self.mod_revision(KEY)
        canary = self.mod_revision(canary_key(KEY))
        ops = [
            self._put(KEY, text.encode()),
            {"request_delete_range": {"key": b64(canary_key(KEY).encode())}},
            self._audit("promote"),
        ]
        return [
            self._unchanged(KEY, base),
            self._unchanged(canary_key(KEY), canary),
        ], ops


def measure(etcd: Etcd, tmp: Path, args: argparse.Namespace) -> list[Step]:
    records = Records(tmp / "applied.log")
    writer = Writer(etcd)
    steps = {name: Step(name) for name in STEPS}
    servers: dict[str, Server] = {}
    try:
        for n in range(1, args.hosts + 1):
            host = f"h{n}"
            config = tmp / host / "config.yaml"
            config.parent.mkdir()
            servers[host] = Server(
                "etcd_peer_app:app",
                args.workers,
                config,
                env={
                    "PEER": "hotcfg",
                    "PEER_ETCD": etcd.endpoint,
                    "PEER_KEY": KEY,
                    "PEER_RECORD": str(records.path),
                    "HOTCFG_SOURCE": etcd.source(KEY),
                    "HOTCFG_HOST": host,
                    "HOTCFG_ETCD_PROGRESS_MS": str(args.progress_ms),
                },
            )

        def workers(*hosts: str) -> set[int]:
            return {
                pid
                for host in hosts or servers
                for pid in workers_of(servers[host].proc.pid)
            }

        others = [host for host in servers if host != "h1"]
        # Untimed: every worker follows the key. A worker still importing
        # the app when a put lands registers its callback after the change
        # and records nothing for it: put warm-up values until one reaches
        # every worker.
        for warm_up in range(-1, -13, -1):
            etcd.put(KEY, config_text(warm_up, SIZE))
            if records.wait_all(workers(), str(warm_up), 5) is not None:
                break
        else:
            raise RuntimeError("not every worker applied the warm-up puts")

        def timed(step: Step, prepared: Any, pids: set[int], value: str) -> None:
            compare, ops = prepared
            step.workers = len(pids)
            start = time.monotonic_ns()
            writer.txn(compare, ops)
            step.write_ms.append((time.monotonic_ns() - start) / 1e6)
            step.rounds += 1
            done = records.wait_all(pids, value, args.timeout)
            if done is not None:
                step.times_ms.append((done - start) / 1e6)

        for n in range(1, args.rounds + 1):
            time.sleep(random.uniform(*args.gap))
            pushed = f"push-{n}"
            text = config_text(0, SIZE).replace("value: 0", f"value: {pushed}", 1)
            timed(steps["push"], writer.prepare_push(text), workers(), pushed)

            time.sleep(random.uniform(*args.gap))
            canary = f"canary-{n}"
            text = config_text(0, SIZE).replace("value: 0", f"value: {canary}", 1)
            prepared = writer.prepare_canary(text, "h1")
            timed(steps["canary"], prepared, workers("h1"), canary)

            time.sleep(random.uniform(*args.gap))
            records.collect()
            if records.first.get(canary, {}).keys() & workers(*others):
                steps["canary"].leaked += 1
            timed(steps["promote"], writer.prepare_promote(text), workers(), canary)
    finally:
        for server in servers.values():
            server.stop()
        records.close()
    return list(steps.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 5 rounds")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=30,
                        help="rounds of push, canary, promote")  # fmt: skip
    parser.add_argument("--hosts", type=int, default=3, help="Gunicorn masters")
    parser.add_argument("--workers", type=int, default=2, help="workers per master")
    parser.add_argument("--progress-ms", type=int, default=10_000,
                        help="etcd's progress-notification interval")  # fmt: skip
    parser.add_argument("--gap", type=float, nargs=2, default=[0.2, 0.6],
                        metavar=("MIN", "MAX"),
                        help="seconds between two writes")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds for a write to reach its workers")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5
    if args.hosts < 2:
        parser.error("--hosts: at least 2 (h1 takes the canary)")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="hotcfg-rollout-") as name:
        tmp = Path(name)
        with Etcd(tmp / "etcd", progress_ms=args.progress_ms) as etcd:
            etcd.put(KEY, config_text(0, SIZE))
            steps = measure(etcd, tmp, args)
    report(steps, args)


def report(steps: list[Step], args: argparse.Namespace) -> None:
    print(f"one etcd member on loopback; {args.hosts} Gunicorn masters "
          f"(h1..h{args.hosts}) x {args.workers} sync workers, one 1 KB YAML key; "
          f"{args.rounds} rounds of a push, a canary to h1 and its promote, "
          f"{args.gap[0]:g}-{args.gap[1]:g} s apart (random)")  # fmt: skip
    print("write -> applied: from just before the transaction is sent until "
          "the last of the step's workers recorded the new value "
          "(CLOCK_MONOTONIC); write: the transaction's round trip")  # fmt: skip
    print(f"{'step':>8} {'workers':>8} {'median ms':>10} {'p95 ms':>8} "
          f"{'max ms':>8} {'write ms':>9} {'applied':>8} {'leaked':>7}")  # fmt: skip
    for s in steps:
        leaked = str(s.leaked) if s.name == "canary" else "-"
        applied = len(s.times_ms)
        if not s.times_ms:
            print(f"{s.name:>8} {s.workers:>8} {'-':>10} {'-':>8} {'-':>8} "
                  f"{statistics.median(s.write_ms):>9.1f} {applied:>8} "
                  f"{leaked:>7}")  # fmt: skip
            continue
        print(f"{s.name:>8} {s.workers:>8} {statistics.median(s.times_ms):>10.1f} "
              f"{p95(s.times_ms):>8.1f} {max(s.times_ms):>8.1f} "
              f"{statistics.median(s.write_ms):>9.1f} {applied:>8} "
              f"{leaked:>7}")  # fmt: skip
    staged = [s for s in steps if s.name in ("canary", "promote")]
    if all(s.times_ms and len(s.times_ms) == s.rounds for s in staged):
        medians = [statistics.median(s.times_ms) for s in staged]
        met = max(medians) <= TARGET_MEDIAN_MS
        print(f"target (loopback): canary and promote median <= "
              f"{TARGET_MEDIAN_MS:g} ms: {'met' if met else 'not met'} "
              f"({medians[0]:.1f} / {medians[1]:.1f} ms)")  # fmt: skip
    else:
        print(f"target (loopback): not met: a canary or a promote did not reach "
              f"its workers within {args.timeout:g} s")  # fmt: skip
    print(f"applied: rounds (of {args.rounds}) whose write reached every worker "
          f"of the step within {args.timeout:g} s; leaked: canaries a worker of "
          "another host than h1 applied before the promote (must be 0)")  # fmt: skip


if __name__ == "__main__":
    main()
