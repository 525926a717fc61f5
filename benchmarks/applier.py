"""Applied: from a publish until every worker has switched, with and without
the applier.

    .venv/bin/python benchmarks/applier.py [--workers 16] [--rounds 30]
        [--loads idle light busy] [--timeout 3]

Starts a real Gunicorn (sync workers, tests/apps/probe_app.py, debounce 0,
a 10 KB YAML config) once with the applier (the default) and once with
``HOTCFG_APPLIER=off`` (before the applier: a worker switches at its next
request), per load: ``idle`` (no request at all), ``light`` (wrk, one
connection per worker, each pausing 100 ms between requests) and ``busy``
(the same without pauses: every worker saturated). For each change it
renames a new config over the old and reads the segment itself: the time
is from the header's ``published_at`` until the last worker's
``applied_at`` in the worker table (decoded, swapped, callbacks run), so
the watcher's own delay is left out. Prints median, p95 and max in ms, and
how many changes converged within ``--timeout`` seconds; a row whose first
change did not converge stops there ("not converged within T s"). The
Gunicorn start and the wrk load are outside the timed span.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import harness
from harness import Load, Server, p95, workers_of

from hotcfg._segment import layout
from hotcfg._segment.shm import SegmentView, list_segments

PAUSE_MS = {"idle": None, "light": 100, "busy": 0}


def converged_ms(
    view: SegmentView, pids: set[int], before: int, timeout: float
) -> float | None:
    """ms from the publish after ``before`` until every pid applied it."""
    deadline = time.monotonic() + timeout
    generation = before
    while time.monotonic() < deadline:
        generation = layout.read_generation(view.buffer)
        if generation != before:
            break
        time.sleep(0.0002)
    while time.monotonic() < deadline:
        applied = {
            w.pid: w.applied_at
            for w in layout.read_workers(view.buffer)
            if w.pid in pids and w.generation == generation
        }
        if len(applied) == len(pids):
            header = layout.read_header(view.buffer)
            return (max(applied.values()) - header.published_at) * 1000
        time.sleep(0.0002)
    return None


def measure(
    workers: int, applier: bool, load: str, rounds: int, size: int, timeout: float
) -> tuple[list[float], int, float | None]:
    """Times of the changes that converged, changes tried, load's req/s."""
    with tempfile.TemporaryDirectory() as tmp:
        config = harness.config_file(tmp, size)
        server = Server(
            "tests.apps.probe_app:app",
            workers,
            config,
            env={
                "HOTCFG_DEBOUNCE_MS": "0",
                "HOTCFG_APPLIER": "on" if applier else "off",
            },
            size=size,
        )
        try:
            pids = workers_of(server.proc.pid)
            view = SegmentView.open(list_segments(str(server.segment_dir))[0])
            pause = PAUSE_MS[load]
            wrk = None if pause is None else Load(server.port, workers, pause)
            try:
                times: list[float] = []
                tried = 0
                began = time.monotonic()
                answered = 0 if wrk is None else len(wrk.answers)
                for value in range(1, rounds + 1):
                    time.sleep(0.2)
                    text = harness.config_text(value, size)
                    write = harness.prepare_write(config, text, "rename")
                    before = layout.read_generation(view.buffer)
                    write()
                    tried += 1
                    took = converged_ms(view, pids, before, timeout)
                    if took is None:
                        if not times:
                            break  # idle without the applier: it never will
                        continue
                    times.append(took)
                rate = None
                if wrk is not None:
                    wrk.collect()
                    rate = (len(wrk.answers) - answered) / (time.monotonic() - began)
                return times, tried, rate
            finally:
                if wrk is not None:
                    wrk.stop()
                view.close()
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=30, help="changes per row")
    parser.add_argument("--loads", nargs="+", choices=list(PAUSE_MS),
                        default=list(PAUSE_MS))  # fmt: skip
    parser.add_argument("--size", type=int, default=10_000, help="config bytes")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds a change may take to converge")  # fmt: skip
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"{args.workers} sync workers, {args.size} B YAML, debounce 0; "
          f"{args.rounds} changes per row")  # fmt: skip
    print("ms from the segment header's published_at until every worker's")
    print("applied_at (worker table) shows the new generation; load: idle (no")
    print("requests), light (wrk, a connection per worker, 100 ms pauses), busy")
    print("(no pauses); applier off = HOTCFG_APPLIER=off (switch at the next request)")
    print(f"{'workers':>7} {'load':>5} {'applier':>7} {'req/s':>6} {'median':>7} "
          f"{'p95':>7} {'max':>7} {'converged':>9} {'changes':>7}")  # fmt: skip
    for load in args.loads:
        for applier in (True, False):
            times, tried, rate = measure(
                args.workers, applier, load, args.rounds, args.size, args.timeout
            )
            label = "on" if applier else "off"
            rps = "-" if rate is None else f"{rate:.0f}"
            counted = f"{len(times):>9} {tried:>7}"
            if not times:
                print(f"{args.workers:>7} {load:>5} {label:>7} {rps:>6} {'-':>7} "
                      f"{'-':>7} {'-':>7} {counted}  not converged within "
                      f"{args.timeout:g} s")  # fmt: skip
                continue
            print(f"{args.workers:>7} {load:>5} {label:>7} {rps:>6} "
                  f"{statistics.median(times):>7.1f} {p95(times):>7.1f} "
                  f"{max(times):>7.1f} {counted}")  # fmt: skip


if __name__ == "__main__":
    main()
