"""Memory: the segment is counted once per host; what each worker adds.

    .venv/bin/python benchmarks/memory.py [--workers 4] [--sizes 1000000 10000000]

Starts real Gunicorn masters serving benchmarks/peer_app.py three ways: with
no config (the baseline), with hotcfg, and with the config parsed at import
in every worker (what HUP-reload apps do). After every worker has answered,
it reads /proc/<pid>/smaps_rollup (RSS, PSS) of each worker and sums the
PSS of every mapping of the segment across the master and its workers.
PSS divides a shared page among the processes that map it, so that sum is
what the host pays for the segment, whatever the worker count.

The decoded size of the config is measured in this process with tracemalloc.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import tracemalloc
from pathlib import Path

import yaml
from harness import config_text, size_label, workers_of
from peers import _snapshot_answers, start_server

from hotcfg._segment import payload as _payload


def smaps_rollup_kb(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def segment_pss_kb(pid: int, directory: str) -> int:
    """PSS of this process's mappings of the segments in ``directory``."""
    total, in_segment = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header
                # By directory, not suffix: the segment is mapped under the
                # temporary name it was created with, since unlinked.
                in_segment = directory in line
            elif in_segment and first == "Pss:":
                total += int(line.split()[1])
    return total


def decoded_size_kb(text: str) -> float:
    """Bytes Python allocates for the decoded snapshot of ``text``."""
    payload = _payload.encode(yaml.load(text, Loader=yaml.CSafeLoader))
    tracemalloc.start()
    snapshot = _payload.decode_payload(payload)
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del snapshot
    return used / 1024


def measure(mode: str, workers: int, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(mode, workers, Path(tmp), "wsgi", size)
        try:
            _snapshot_answers(server)  # every worker has applied the config
            pids = sorted(workers_of(server.proc.pid))
            rollups = [smaps_rollup_kb(pid) for pid in pids]
            segdir = str(Path(tmp) / "seg")
            segment = sum(segment_pss_kb(p, segdir) for p in [server.proc.pid, *pids])
        finally:
            server.stop()
    return {
        "rss": statistics.median(r["Rss"] for r in rollups) / 1024,
        "pss": statistics.median(r["Pss"] for r in rollups) / 1024,
        "segment": segment / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    print(f"{args.workers} sync workers; medians per worker; MB. Extra RSS is")
    print("against the same server with a 1 KB config (hotcfg's own code and")
    print("imports excluded) or, for hup, against the app with no config.")
    print(f"{'config':>7} {'decoded':>8} {'mode':>7} {'RSS':>7} {'PSS':>7} "
          f"{'extra RSS':>10} {'x decoded':>10} {'segment PSS, all':>17}")  # fmt: skip
    none = measure("none", args.workers, 1000)
    library = measure("hotcfg", args.workers, 1000)
    for size in args.sizes:
        decoded = decoded_size_kb(config_text(0, size)) / 1024
        for mode, base in (("hotcfg", library), ("hup", none)):
            m = measure(mode, args.workers, size)
            extra = m["rss"] - base["rss"]
            seg = f"{m['segment']:.2f}" if mode == "hotcfg" else "-"
            print(f"{size_label(size):>7} {decoded:>8.1f} {mode:>7} {m['rss']:>7.1f} "
                  f"{m['pss']:>7.1f} {extra:>10.1f} {extra / decoded:>10.2f} "
                  f"{seg:>17}")  # fmt: skip
    print(
        f"baselines: no config RSS {none['rss']:.1f} PSS {none['pss']:.1f}; "
        f"hotcfg with 1 KB RSS {library['rss']:.1f} PSS {library['pss']:.1f}"
    )


if __name__ == "__main__":
    main()
