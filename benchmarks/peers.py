"""hotcfg against what users do today, same app, same config, same run.

    .venv/bin/python benchmarks/peers.py [--workers 4] [--rounds 7] [--runs 3]

For each way of getting config into Gunicorn workers (benchmarks/peer_app.py:
hotcfg, HUP reload, a watchdog observer per worker, os.stat() per request,
os.stat() once a second) this starts a real Gunicorn, replaces a 10 KB YAML
file atomically, and measures:

- propagation: from the write to every worker answering the new value (for
  HUP: the write, then ``kill -HUP``; the new workers must all answer);
- under a steady wrk load started before the change (one connection per
  worker, ``--pause`` ms between requests; benchmarks/harness.py):
  the longest request while the change spreads, next to the longest request
  of an equal stretch right after it (the stall a change causes);
- parses per change summed over the workers.

Then the per-request cost of each way's config access, in one process.
Prints medians, p95 and ratios to hotcfg.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import Load, Server, config_text, fetch, p95, prepare_write, workers_of

PEERS = ["hotcfg", "hup", "watch", "stat", "stat1s"]
APPS = {"flask": "peer_app:flask_app", "wsgi": "peer_app:app"}


@dataclass
class Round:
    propagation_ms: float
    longest_ms: float  # the longest request while the change spread
    quiet_ms: float  # the longest request in an equal stretch with no change
    parses: int
    coverage_ms: float  # with no change: until every worker answered once


def start_server(
    peer: str,
    workers: int,
    tmp: Path,
    app: str = "flask",
    size: int = 10_000,
    worker_nice: int | None = None,
) -> Server:
    config = tmp / "config.yaml"
    config.write_text(config_text(0, size))
    return Server(
        APPS[app],
        workers,
        config,
        env={
            "PEER": peer,
            "PEER_CONFIG": str(config),
            "HOTCFG_DEBOUNCE_MS": "0",
        },
        hotcfg=peer == "hotcfg",
        worker_nice=worker_nice,
        size=size,
    )


def one_round(server: Server, load: Load, peer: str, value: int) -> Round:
    before = {pid: a["parses"] for pid, a in _snapshot_answers(server).items()}
    coverage = load.wait_all(server.workers, time.monotonic())
    start = time.monotonic()
    prepare_write(server.config, config_text(value, 10_000), "rename")()
    if peer == "hup":
        os.kill(server.proc.pid, signal.SIGHUP)
    elapsed = load.wait_all(server.workers, start, value)
    end = time.monotonic()
    longest = load.longest_ms(start, end)
    # An equal stretch right after, with no change, for the stall baseline.
    span = min(max(end - start, 0.05), 2.0)
    time.sleep(span)
    quiet = load.longest_ms(end, end + span)
    after = _snapshot_answers(server)
    parses = sum(a["parses"] - before.get(pid, 0) for pid, a in after.items())
    return Round(elapsed * 1000, longest, quiet, parses, coverage * 1000)


def _snapshot_answers(server: Server) -> dict[int, dict]:
    """One answer from every current worker (their parse counters)."""
    pids = workers_of(server.proc.pid)
    answers: dict[int, dict] = {}
    deadline = time.monotonic() + 10
    while not pids <= answers.keys() and time.monotonic() < deadline:
        answer = fetch(server.port)
        answers[answer["pid"]] = answer
    return answers


def measure(
    peer: str, workers: int, rounds: int, app: str, pause_ms: int, nice: int | None
) -> list[Round]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(peer, workers, Path(tmp), app, worker_nice=nice)
        load = Load(server.port, connections=workers, pause_ms=pause_ms)
        try:
            for value in range(1, rounds + 1):
                time.sleep(0.2)
                if peer == "hup":
                    server.wait_ready()  # the old workers are gone
                results.append(one_round(server, load, peer, value))
        finally:
            load.stop()
            server.stop()
    return results


def access_cost_ns() -> dict[str, float]:
    """Per-request cost of each way's config access with no change, one process."""
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "c.yaml"
    path.write_text(config_text(1, 10_000) + "a: {b: {c: 1}}\n")
    os.environ["HOTCFG_SEGMENT_DIR"] = str(tmp / "seg")
    import hotcfg
    from hotcfg import _api, _runtime

    hotcfg.configure(source=str(path))
    reader = _runtime.reader()
    nested = {"a": {"b": {"c": 1}}}
    stamp = os.stat(path).st_mtime_ns

    def stat_check() -> None:
        if os.stat(path).st_mtime_ns != stamp:
            raise AssertionError

    n = 20_000

    def best(fn: Callable[[], object]) -> float:
        return min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e9

    costs = {
        "hotcfg refresh (per request)": best(reader.refresh),
        "os.stat() check (per request)": best(stat_check),
    }
    token = _api.pin()  # as inside a request
    costs['hotcfg.get("a.b.c") in a request'] = best(lambda: hotcfg.get("a.b.c"))
    _api.unpin(token)
    costs['dict["a"]["b"]["c"]'] = best(lambda: nested["a"]["b"]["c"])
    costs.update(shared_dict_costs(dict(hotcfg.snapshot().to_dict()), best))
    _runtime.ensure_publisher().close()
    return costs


def shared_dict_costs(
    config: dict[str, object], best: Callable[[Callable[[], object]], float]
) -> dict[str, float]:
    """``["a"]["b"]["c"]`` through the shared-memory dict libraries, if installed.

    shared-memory-dict unpickles the whole dict on every read; UltraDict keeps
    a local copy and checks a shared counter. Both use pickle, which hotcfg
    never does: these rows are for speed only (``pip install -e . --group bench``).
    """
    costs: dict[str, float] = {}
    name = f"hotcfg-bench-{os.getpid()}"
    try:
        from shared_memory_dict import SharedMemoryDict

        smd = SharedMemoryDict(name=f"{name}-smd", size=1 << 20)
        try:
            smd.update(config)
            costs['shared-memory-dict ["a"]["b"]["c"]'] = best(
                lambda: smd["a"]["b"]["c"]
            )
        finally:
            smd.shm.close()
            smd.shm.unlink()
    except ImportError:
        pass
    try:
        from UltraDict import UltraDict

        ultra = UltraDict(config, name=f"{name}-ud", buffer_size=1 << 20)
        try:
            costs['UltraDict ["a"]["b"]["c"]'] = best(lambda: ultra["a"]["b"]["c"])
        finally:
            ultra.unlink()
    except ImportError:
        pass
    return costs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[4])
    parser.add_argument("--rounds", type=int, default=7, help="changes per run")
    parser.add_argument("--runs", type=int, default=3, help="servers per peer")
    parser.add_argument("--peers", nargs="+", default=PEERS, choices=PEERS)
    parser.add_argument("--app", choices=sorted(APPS), default="flask")
    parser.add_argument("--worker-nice", type=int, metavar="N",
                        help="HOTCFG_WORKER_NICE for hotcfg's workers")  # fmt: skip
    parser.add_argument("--pause", type=int, default=10,
                        help="ms between requests per load connection")  # fmt: skip
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"{args.app} app, 10 KB YAML, atomic rename, {args.runs} run(s) x "
          f"{args.rounds} changes; wrk load: one connection per worker, "
          f"{args.pause} ms pause between requests")  # fmt: skip
    if args.worker_nice is not None:
        print(f"hotcfg runs with HOTCFG_WORKER_NICE={args.worker_nice}")
    print("propagation: write -> every worker answers; stall: longest request "
          "during the change vs an equal quiet stretch")  # fmt: skip
    head = (f"{'workers':>7} {'peer':>7} {'median ms':>10} {'p95 ms':>9} "
            f"{'x hotcfg':>9} {'longest ms':>11} {'quiet ms':>9} "
            f"{'parses':>7} {'coverage':>9}")  # fmt: skip

    def median_of(field: str, rounds: list[Round]) -> float:
        return statistics.median(getattr(r, field) for r in rounds)

    for workers in args.workers:
        print(head)
        base = None
        for peer in args.peers:
            runs = [
                measure(
                    peer,
                    workers,
                    args.rounds,
                    args.app,
                    args.pause,
                    args.worker_nice if peer == "hotcfg" else None,
                )
                for _ in range(args.runs)
            ]
            rounds = [r for run in runs for r in run]
            quiet = [r.quiet_ms for r in rounds]
            times = [r.propagation_ms for r in rounds]
            median = statistics.median(times)
            base = median if peer == "hotcfg" else base
            ratio = f"{median / base:>9.1f}" if base else f"{'':>9}"
            # hotcfg parses in the master, once per change: the app never does.
            parses = "1*" if peer == "hotcfg" else statistics.median(
                r.parses for r in rounds)  # fmt: skip
            print(f"{workers:>7} {peer:>7} {median:>10.1f} {p95(times):>9.1f} "
                  f"{ratio} {statistics.median(r.longest_ms for r in rounds):>11.1f} "
                  f"{statistics.median(quiet):>9.1f} {parses:>7} "
                  f"{median_of('coverage_ms', rounds):>9.1f}")  # fmt: skip
    print("* hotcfg parses once per change in the master, whatever the worker count")
    print("coverage: with no change, from any instant until every worker answered")
    print("once: the floor the load itself sets on every peer's propagation")
    print()
    print("per-request config access with no change, 10 KB config (best of 7)")
    for name, ns in access_cost_ns().items():
        print(f"  {name:<32} {ns:>7.0f} ns")


if __name__ == "__main__":
    main()
