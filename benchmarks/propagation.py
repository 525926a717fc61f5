"""Propagation: from a file write to every worker answering the new generation.

    .venv/bin/python benchmarks/propagation.py [--rounds 15] [--workers 4 16]

Starts a real Gunicorn (sync workers, tests/apps/probe_app.py) per worker
count and debounce setting under a steady wrk load (one connection per
worker, benchmarks/harness.py), changes the config, and reads wrk's record
of answers until every worker pid has answered the new value. Prints median
and p95 milliseconds. Then measures the per-request
cost of the refresh with no change against a bare function call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import (
    WRITES,
    Load,
    Server,
    config_file,
    config_text,
    p95,
    prepare_write,
    size_label,
    workers_of,
)

from hotcfg._segment.layout import read_generation
from hotcfg._segment.shm import SegmentView, list_segments


@dataclass
class Round:
    published_ms: float  # write -> the new generation is in the segment
    answered_ms: float  # write -> every worker has answered the new value
    coverage_ms: float  # with no change: from any instant until every worker answered


def measure(
    workers: int,
    debounce_ms: int,
    rounds: int,
    size: int,
    write: str = "rename",
    pause_ms: int = 0,
    master_nice: int | None = None,
    worker_nice: int | None = None,
) -> tuple[list[Round], float]:
    """The rounds of one server, and the load's rate in requests per second."""
    with tempfile.TemporaryDirectory() as tmp:
        config = config_file(tmp, size)
        server = Server(
            "tests.apps.probe_app:app",
            workers,
            config,
            env={"HOTCFG_DEBOUNCE_MS": str(debounce_ms)},
            size=size,
            worker_nice=worker_nice,
        )
        try:
            pids = workers_of(server.proc.pid)
            if master_nice is not None:
                renice_threads(server.proc.pid, master_nice)
            view = SegmentView.open(list_segments(str(server.segment_dir))[0])
            load = Load(server.port, connections=workers, pause_ms=pause_ms)
            try:
                results = []
                began, answered = time.monotonic(), len(load.answers)
                for value in range(1, rounds + 1):
                    time.sleep(0.2)
                    change = prepare_write(config, config_text(value, size), write)
                    results.append(_one_round(load, view, change, value, pids))
                load.collect()
                rate = (len(load.answers) - answered) / (time.monotonic() - began)
                return results, rate
            finally:
                load.stop()
                view.close()
        finally:
            server.stop()


def renice_threads(pid: int, nice: int) -> None:
    """Give every thread of ``pid`` (not its children) this nice value.

    setpriority() on a pid changes one thread only; the watcher's threads
    already exist, so each is set. Lowering nice below 0 needs root.
    """
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(tid), nice)


def _one_round(
    load: Load, view: SegmentView, write: Callable[[], None], value: int, pids: set[int]
) -> Round:
    coverage = load.wait_all(len(pids), time.monotonic())
    before = read_generation(view.buffer)
    start = time.monotonic()
    write()
    published = float("inf")
    while time.monotonic() - start < 120:  # a 10 MB parse on a busy host
        if read_generation(view.buffer) != before:
            published = time.monotonic() - start
            break
        time.sleep(0.0001)
    answered = load.wait_all(len(pids), start, value)
    return Round(published * 1000, answered * 1000, coverage * 1000)


def refresh_cost_ns() -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "c.yaml").write_text("a: {b: {c: 1}}\n")
    os.environ["HOTCFG_SEGMENT_DIR"] = str(tmp / "seg")
    import hotcfg
    from hotcfg import _runtime

    hotcfg.configure(source=str(tmp / "c.yaml"))
    reader = _runtime.reader()
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
    _runtime.ensure_publisher().close()
    return with_hotcfg, bare, per_request


def plot(table: list[tuple[int, int, int, list[Round]]], path: str) -> None:
    """Medians of "published" (solid) and "answered" (dashed) against workers,
    one colour per size and debounce."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for size in sorted({row[1] for row in table}):
        for debounce in sorted({row[2] for row in table}):
            rows = sorted(r for r in table if r[1] == size and r[2] == debounce)
            xs = [r[0] for r in rows]
            label = f"{size_label(size)}, debounce {debounce} ms"
            published = [statistics.median(x.published_ms for x in r[3]) for r in rows]
            answered = [statistics.median(x.answered_ms for x in r[3]) for r in rows]
            line = ax.plot(xs, published, marker="o", label=f"{label}: published")
            ax.plot(xs, answered, linestyle="--", marker=".",
                    color=line[0].get_color(), label=f"{label}: answered")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Gunicorn sync workers")
    ax.set_ylabel("from the file write, median (ms)")
    ax.set_title("hotcfg propagation (2 cores, saturating wrk load)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15, help="changes per run")
    parser.add_argument("--runs", type=int, default=1, help="servers per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--debounce", type=int, nargs="+", default=[0, 100])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000],
                        help="config sizes in bytes")  # fmt: skip
    parser.add_argument("--plot", metavar="PNG", help="draw answered ms (matplotlib)")
    parser.add_argument("--write", choices=WRITES, default="rename",
                        help="how each change is saved")  # fmt: skip
    parser.add_argument("--pause", type=int, nargs="+", default=[0],
                        help="ms between requests per load connection")  # fmt: skip
    parser.add_argument("--master-nice", type=int, metavar="N",
                        help="renice the master's threads (N < 0: root)")  # fmt: skip
    parser.add_argument("--worker-nice", type=int, metavar="N",
                        help="HOTCFG_WORKER_NICE for the workers")  # fmt: skip
    parser.add_argument("--cost-only", action="store_true", help="skip propagation")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"file write ({args.write}) -> published: the new generation is in the")
    print("segment, so every worker's next request serves it; -> answered: every")
    print("worker has answered it, under a steady wrk load with one connection per")
    print("worker, each pausing `pause` ms between requests (0: saturated);")
    print("coverage: with no change, from any instant until every worker answered")
    print("once (the floor the load itself sets on `answered`).")
    print(f"{args.runs} run(s) x {args.rounds} changes; medians and p95 in ms; "
          "run medians of answered, lowest to highest")  # fmt: skip
    print(f"{'workers':>7} {'size':>8} {'debounce':>8} {'pause':>5} {'req/s':>6} "
          f"{'published':>10} {'p95':>6} {'answered':>9} {'p95':>6} "
          f"{'coverage':>9}  run medians")  # fmt: skip
    table: list[tuple[int, int, int, list[Round]]] = []
    settings = [
        (w, z, d, p)
        for z in args.sizes
        for p in args.pause
        for w in args.workers
        for d in args.debounce
    ]
    for workers, size, debounce, pause in [] if args.cost_only else settings:
        options = (args.write, pause, args.master_nice, args.worker_nice)
        runs, rates = zip(
            *(
                measure(workers, debounce, args.rounds, size, *options)
                for _ in range(args.runs)
            ),
            strict=True,
        )
        rounds = [r for run in runs for r in run]
        table.append((workers, size, debounce, rounds))
        pub = [r.published_ms for r in rounds]
        ans = [r.answered_ms for r in rounds]
        cov = statistics.median(r.coverage_ms for r in rounds)
        spread = " ".join(
            f"{m:.1f}"
            for m in sorted(
                statistics.median(r.answered_ms for r in run) for run in runs
            )
        )
        print(f"{workers:>7} {size_label(size):>8} {debounce:>8} {pause:>5} "
              f"{statistics.median(rates):>6.0f} "
              f"{statistics.median(pub):>10.1f} {p95(pub):>6.1f} "
              f"{statistics.median(ans):>9.1f} {p95(ans):>6.1f} "
              f"{cov:>9.1f}  {spread}")  # fmt: skip
    if args.plot and table:
        plot(table, args.plot)
    refresh, bare, per_request = refresh_cost_ns()
    print()
    print("per-request refresh with no change (best of 7 x 200k calls)")
    print(f"  Reader.refresh(): {refresh:.0f} ns   bare function call: {bare:.0f} ns   "
          f"added: {refresh - bare:.0f} ns")  # fmt: skip
    print(f"  pre_request + post_request hooks (pin and unpin): {per_request:.0f} ns "
          "per request")  # fmt: skip


if __name__ == "__main__":
    main()
