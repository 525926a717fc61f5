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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotcfg._codec import read_generation
from hotcfg._segment import SegmentView, list_segments

ROOT = Path(__file__).resolve().parents[1]
WRITES = ("rename", "inplace", "away")


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


@dataclass
class Round:
    published_ms: float  # write -> the new generation is in the segment
    answered_ms: float  # write -> every worker has answered the new value
    coverage_ms: float  # with no change: from any instant until every worker answered


class Load:
    """Steady HTTP load from client threads, recording every answer.

    Running before the write (not started by it) keeps client start-up out
    of the figure, and the record lets a round ask when each worker first
    answered after a given instant, and how long requests took meanwhile.
    """

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        # (start, end, pid, value) per answered request, in end order
        self.answers: list[tuple[float, float, int, object]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _client(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                answer = fetch(self.port)
            except OSError:
                continue
            end = time.perf_counter()
            self.answers.append((start, end, answer["pid"], answer["value"]))

    def wait_all(
        self, count: int, since: float, value: object = None, timeout: float = 30
    ) -> float:
        """Seconds from ``since`` until ``count`` workers answered (``value``).

        Counting distinct pids, not given ones, lets HUP's new workers count.
        """
        first: dict[int, float] = {}
        index = 0
        deadline = time.perf_counter() + timeout
        while len(first) < count:
            if time.perf_counter() > deadline:
                return float("inf")
            answers = self.answers[index:]
            index += len(answers)
            for _, end, pid, got in answers:
                if end >= since and (value is None or got == value):
                    first.setdefault(pid, end)
            time.sleep(0.0005)
        return max(first.values()) - since

    def longest_ms(self, since: float, until: float) -> float:
        """The longest request that ended between ``since`` and ``until``."""
        spans = [e - s for s, e, _, _ in self.answers if since <= e <= until]
        return max(spans, default=0.0) * 1000

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def config_text(value: int, size: int) -> str:
    """A YAML config of about ``size`` bytes whose ``value`` is ``value``."""
    lines = [f"value: {value}", "filler:"]
    line = "  key{:07d}: " + "x" * 40
    lines += [line.format(i) for i in range(max(0, size // (len(line) - 1)))]
    return "\n".join(lines) + "\n"


def measure(
    workers: int, debounce_ms: int, rounds: int, size: int, write: str = "rename"
) -> list[Round]:
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "config.yaml"
    config.write_text(config_text(0, size))
    segdir = tmp / "seg"
    port = free_port()
    env = dict(
        os.environ,
        HOTCFG_SOURCE=str(config),
        HOTCFG_DEBOUNCE_MS=str(debounce_ms),
        HOTCFG_SEGMENT_DIR=str(segdir),
        HOTCFG_MAX_BYTES=str(max(8 << 20, 2 * size)),
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
        view = SegmentView.open(list_segments(str(segdir))[0])
        load = Load(port, threads=min(workers, 4))
        try:
            results = []
            for value in range(1, rounds + 1):
                time.sleep(0.2)
                change = prepare_write(config, config_text(value, size), write)
                results.append(_one_round(load, view, change, value, pids))
            return results
        finally:
            load.stop()
            view.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def _up(port: int) -> bool:
    try:
        fetch(port)
        return True
    except OSError:
        return False


def prepare_write(config: Path, text: str, how: str) -> Callable[[], None]:
    """The change to time, with whatever it needs done beforehand.

    rename: a temp file renamed over the config (most tools); inplace:
    truncate and write (``echo >``, ``cp``); away: the config renamed out of
    its directory, then written anew (the rename's first half has no pair).
    """
    if how == "rename":
        tmp = config.with_name(".config.tmp")
        tmp.write_text(text)
        return lambda: os.replace(tmp, config)
    if how == "inplace":

        def in_place() -> None:
            with open(config, "r+") as f:
                f.truncate(0)
                f.write(text)

        return in_place

    def away() -> None:
        os.replace(config, config.parent.parent / "config.away")
        config.write_text(text)

    return away


def _one_round(
    load: Load, view: SegmentView, write: Callable[[], None], value: int, pids: set[int]
) -> Round:
    coverage = load.wait_all(len(pids), time.perf_counter())
    before = read_generation(view.buffer)
    start = time.perf_counter()
    write()
    published = float("inf")
    while time.perf_counter() - start < 30:
        if read_generation(view.buffer) != before:
            published = time.perf_counter() - start
            break
        time.sleep(0.0001)
    answered = load.wait_all(len(pids), start, value)
    return Round(published * 1000, answered * 1000, coverage * 1000)


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


def size_label(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def plot(table: list[tuple[int, int, int, list[Round]]], path: str) -> None:
    """Median and p95 of "answered" against workers, one line per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for size in sorted({row[1] for row in table}):
        for debounce in sorted({row[2] for row in table}):
            rows = sorted(r for r in table if r[1] == size and r[2] == debounce)
            xs = [r[0] for r in rows]
            answered = [[x.answered_ms for x in r[3]] for r in rows]
            label = f"{size_label(size)}, debounce {debounce} ms"
            line = ax.plot(xs, [statistics.median(a) for a in answered], marker="o",
                           label=f"{label}: median")  # fmt: skip
            ax.plot(xs, [p95(a) for a in answered], linestyle="--",
                    color=line[0].get_color(), label=f"{label}: p95")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Gunicorn sync workers")
    ax.set_ylabel("file write -> every worker answered (ms)")
    ax.set_title("hotcfg propagation (2 cores, steady HTTP load)")
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
    parser.add_argument("--cost-only", action="store_true", help="skip propagation")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"file write ({args.write}) -> published: the new generation is in the")
    print("segment; -> answered: every worker has answered it under a steady load")
    print("from 4 client threads; coverage: with no change, from any instant until")
    print("every worker has answered once (the floor the load itself sets).")
    print(f"{args.runs} run(s) x {args.rounds} changes; medians and p95 in ms; "
          "run medians of answered, lowest to highest")  # fmt: skip
    print(f"{'workers':>7} {'size':>8} {'debounce':>8} {'published':>10} {'p95':>6} "
          f"{'answered':>9} {'p95':>6} {'coverage':>9}  run medians")  # fmt: skip
    table: list[tuple[int, int, int, list[Round]]] = []
    settings = [
        (w, z, d) for z in args.sizes for w in args.workers for d in args.debounce
    ]
    for workers, size, debounce in [] if args.cost_only else settings:
        runs = [
            measure(workers, debounce, args.rounds, size, args.write)
            for _ in range(args.runs)
        ]
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
        print(f"{workers:>7} {size_label(size):>8} {debounce:>8} "
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
