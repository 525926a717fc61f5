"""What the import-time check (``_worker.import_time``) adds to ``hotcfg.get()``.

    .venv/bin/python benchmarks/import_check_cost.py [--runs 15] [--number 200000]

One process publishes a small config (standalone mode, no watcher thread)
and times ``get("a.b.c")`` (a memo hit) as shipped, with the check, and a
copy of ``get()`` without it, compiled against ``hotcfg._api``'s globals
(the function as it was before the check), in four situations:

- ``in-request``: a snapshot is pinned, as Gunicorn's ``pre_request`` does
  (the check is never reached);
- ``outside``: nothing pinned and no import anywhere (the check is one
  truth test of importlib's module-lock dict, empty);
- ``other-thread-importing``: nothing pinned while another thread is
  blocked in a module's import (the dict is not empty: its locks are
  looked at, none is this thread's);
- ``importing-warned``: nothing pinned, timed from the top level of a
  module being imported, at a call site warned about already (the check's
  whole slow path, but the log record).

The two variants alternate within each run; each cell is the median over
``--runs`` of the per-call time of ``--number`` calls, in ns, and the ratio
is with / without.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

# ``get()`` before the import-time check, line for line.
UNCHECKED_GET = textwrap.dedent(
    """
    def get(path, default=None, *, volatile=False):
        snap = None if volatile else _pinned.get()
        if snap is None:
            snap = reader().refresh()
        try:
            value = snap._memo[path]
        except (KeyError, TypeError):
            return snap.get(path, default)
        return default if value is MISSING else value
    """
)

IMPORTING_MODULE = textwrap.dedent(
    """
    import __main__

    __main__.RESULTS["importing-warned"] = __main__.measure()
    """
)

BLOCKED_MODULE = textwrap.dedent(
    """
    import __main__

    __main__.IMPORT_STARTED.set()
    __main__.IMPORT_MAY_END.wait(600)
    """
)

RESULTS: dict[str, tuple[float, float]] = {}
IMPORT_STARTED = threading.Event()
IMPORT_MAY_END = threading.Event()
_measure: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0)  # noqa: E731


def measure() -> tuple[float, float]:
    return _measure()


def medians(
    checked: Callable[..., Any], unchecked: Callable[..., Any], number: int, runs: int
) -> tuple[float, float]:
    """Median ns per call of each, the two alternating within every run."""
    timers = [
        timeit.Timer('get("a.b.c")', globals={"get": fn}) for fn in (checked, unchecked)
    ]
    times: list[list[float]] = [[], []]
    for _ in range(runs):
        for i, timer in enumerate(timers):
            times[i].append(timer.timeit(number) / number * 1e9)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    global _measure
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hotcfg-import-check-"))
    path = tmp / "c.yaml"
    path.write_text("a: {b: {c: 1}}\n")
    os.environ["HOTCFG_SEGMENT_DIR"] = str(tmp / "seg")
    # The one warning of the "importing" row goes nowhere: it is not timed.
    logging.getLogger("hotcfg").addHandler(logging.NullHandler())
    logging.getLogger("hotcfg").propagate = False

    import hotcfg
    from hotcfg import _api, _runtime

    hotcfg.configure(source=str(path))
    _runtime.ensure_publisher(start_watching=False)
    namespace = dict(vars(_api))
    exec(UNCHECKED_GET, namespace)
    checked, unchecked = _api.get, namespace["get"]
    assert checked("a.b.c") == unchecked("a.b.c") == 1

    def run() -> tuple[float, float]:
        return medians(checked, unchecked, args.number, args.runs)

    token = _api.pin()  # as inside a request
    RESULTS["in-request"] = run()
    _api.unpin(token)
    RESULTS["outside"] = run()

    sys.path.insert(0, str(tmp))
    (tmp / "bench_blocked_import.py").write_text(BLOCKED_MODULE)
    blocked = threading.Thread(
        target=importlib.import_module, args=("bench_blocked_import",), daemon=True
    )
    blocked.start()
    IMPORT_STARTED.wait(60)
    RESULTS["other-thread-importing"] = run()
    IMPORT_MAY_END.set()
    blocked.join(60)

    _measure = run
    (tmp / "bench_importing.py").write_text(IMPORTING_MODULE)
    importlib.import_module("bench_importing")
    _runtime.ensure_publisher().close()

    print(f'get("a.b.c"), memo hit: median of {args.runs} x {args.number} calls, ns')
    print(f"{'situation':<24} {'with':>7} {'without':>7} {'diff':>6} {'ratio':>6}")
    for label, (with_ns, without_ns) in RESULTS.items():
        print(
            f"{label:<24} {with_ns:>7.1f} {without_ns:>7.1f} "
            f"{with_ns - without_ns:>6.1f} {with_ns / without_ns:>6.3f}"
        )


if __name__ == "__main__":
    main()
