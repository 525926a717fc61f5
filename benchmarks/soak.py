"""Soak: steady HTTP load on a real Gunicorn while the config changes.

    .venv/bin/python benchmarks/soak.py [--workers 8] [--seconds 60] [--rate 20]
                                        [--connections 8] [--load-procs 2]

Starts Gunicorn (``--no-control-socket``, a free port on 127.0.0.1) serving
``tests/apps/soak_app.py`` with a JSON Schema and a validator. A load
generator in other processes requests ``/`` over keep-alive ``http.client``
connections; first for ``--seconds`` with no config change (the baseline),
then for ``--seconds`` while the config file is replaced (atomic rename)
``--rate`` times a second, alternating valid versions with invalid YAML,
schema violations and validator rejections. Every answer is checked: no
error, no request that saw two generations, no configuration served that
was not written as valid, and every worker ends on the last valid version.
Prints a table; exits 1 if any of that failed. The logic is shared with
``tests/e2e/test_soak.py`` in ``tests/e2e/soak.py``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import soak  # noqa: E402
from tests.e2e.conftest import Service  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="changes a second")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--load-procs", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="cut each phase into this many slices, taken in turn",
    )
    parser.add_argument(
        "--gunicorn-args",
        default="",
        help="more Gunicorn options, e.g. '--max-requests 500' or "
        "'--worker-class gthread --threads 4'",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hotcfg-soak-"))
    segments = tmp / "segments"
    segments.mkdir(mode=0o700)
    os.environ["HOTCFG_SEGMENT_DIR"] = str(segments)
    svc = Service(
        tmp,
        env_extra=soak.service_env(tmp),
        workers=args.workers,
        extra_args=shlex.split(args.gunicorn_args),
        app=soak.APP,
    )
    try:
        report = soak.run(
            svc,
            seconds=args.seconds,
            rate=args.rate,
            connections=args.connections,
            procs=args.load_procs,
            rounds=args.rounds,
        )
    finally:
        svc.stop()
    print(
        f"soak: {args.workers} workers, {args.seconds:g} s per phase, "
        f"{args.connections} connections in {args.load_procs} processes, "
        f"{args.rounds} round(s), "
        f"{args.rate:g} changes/s {args.gunicorn_args}".rstrip()
    )
    print(report.table())
    failures = report.failures()
    for failure in failures:
        print(f"FAILED: {failure}")
    print("FAILED" if failures else "OK: every invariant held")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
