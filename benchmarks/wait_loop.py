"""Save, ``hotcfg wait``, request every worker: is an answer ever stale?

    .venv/bin/python benchmarks/wait_loop.py [--iterations 100] [--workers 4]
        [--debounce 100]

Starts a real Gunicorn (sync workers, tests/apps/probe_app.py) with the
given debounce (the library's default: 100 ms), then repeats: save a new
value (in turn ``cp`` over the file, ``sed -i``, a temporary file renamed
over it, a write in place), run ``hotcfg wait --timeout 10`` as a deploy
script does (a new process), and request until every worker pid has
answered. Prints, per kind of save, the saves, the stale ones (a worker
answered an older value after ``wait`` exited 0), the waits that did not
exit 0, and the wait's median and p95 (from the save to the command's exit,
in ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import ROOT, Server, fetch, p95, workers_of

Save = Callable[[Path, str, Path], None]


def save_cp(config: Path, value: str, scratch: Path) -> None:
    scratch.write_text(f"value: {value}\n")
    subprocess.run(["cp", str(scratch), str(config)], check=True)


def save_sed(config: Path, value: str, scratch: Path) -> None:
    subprocess.run(
        ["sed", "-i", f"s/^value: .*/value: {value}/", str(config)], check=True
    )


def save_rename(config: Path, value: str, scratch: Path) -> None:
    tmp = config.with_name(f".{config.name}.tmp")
    tmp.write_text(f"value: {value}\n")
    os.replace(tmp, config)


def save_in_place(config: Path, value: str, scratch: Path) -> None:
    with open(config, "r+") as f:
        f.truncate(0)
        f.write(f"value: {value}\n")


SAVES: dict[str, Save] = {
    "cp": save_cp,
    "sed -i": save_sed,
    "rename": save_rename,
    "in place": save_in_place,
}


def answered_stale(server: Server, value: str) -> bool:
    """Requests until every worker pid answered (at most 100): whether one
    answer was not ``value``."""
    pids = workers_of(server.proc.pid)
    seen: set[int] = set()
    stale = False
    for _ in range(100):
        answer = fetch(server.port)
        seen.add(answer["pid"])
        stale = stale or answer["value"] != value
        if pids <= seen:
            break
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--debounce", type=int, default=100, help="ms")
    args = parser.parse_args()
    rows = {kind: {"saves": 0, "stale": 0, "failed": 0, "ms": []} for kind in SAVES}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "conf" / "config.yaml"
        config.parent.mkdir()
        config.write_text("value: start\n")
        scratch = Path(tmp) / "new-config.yaml"
        server = Server(
            "tests.apps.probe_app:app",
            args.workers,
            config,
            env={"HOTCFG_DEBOUNCE_MS": str(args.debounce)},
        )
        try:
            kinds = list(SAVES)
            for i in range(args.iterations):
                kind = kinds[i % len(kinds)]
                value = f"v{i}"
                started = time.monotonic()
                SAVES[kind](config, value, scratch)
                done = subprocess.run(
                    [sys.executable, "-m", "hotcfg", "wait", "--timeout", "10",
                     "--dir", str(server.segment_dir)],
                    capture_output=True, text=True, check=False,
                    env=dict(os.environ, PYTHONPATH=str(ROOT)),
                )  # fmt: skip
                row = rows[kind]
                row["ms"].append((time.monotonic() - started) * 1000.0)
                row["saves"] += 1
                row["failed"] += done.returncode != 0
                row["stale"] += answered_stale(server, value)
        finally:
            server.stop()
    print(
        f"{args.workers} workers, debounce {args.debounce} ms, "
        f"{args.iterations} iterations"
    )
    header = ("save", "saves", "stale", "failed", "median", "p95")
    print("{:<10} {:>6} {:>6} {:>7} {:>8} {:>8}".format(*header))
    for kind, row in [*rows.items(), ("all", _total(rows))]:
        if not row["saves"]:
            continue
        times = row["ms"]
        print(
            f"{kind:<10} {row['saves']:>6} {row['stale']:>6} {row['failed']:>7} "
            f"{statistics.median(times):>8.1f} {p95(times):>8.1f}"
        )


def _total(rows: dict[str, dict]) -> dict:
    return {
        "saves": sum(r["saves"] for r in rows.values()),
        "stale": sum(r["stale"] for r in rows.values()),
        "failed": sum(r["failed"] for r in rows.values()),
        "ms": [ms for r in rows.values() for ms in r["ms"]],
    }


if __name__ == "__main__":
    main()
