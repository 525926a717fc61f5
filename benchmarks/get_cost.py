"""What one ``hotcfg.get("a.b.c")`` costs next to a nested dict lookup.

    .venv/bin/python benchmarks/get_cost.py [--runs 9] [--number 200000]

One process publishes a small config (standalone mode, no watcher thread)
and pins its snapshot as a request would. Each row is the median over
``--runs`` of the per-call time of ``--number`` calls, in ns, and its ratio
to ``d["a"]["b"]["c"]`` on plain dicts measured in the same run:

- ``hotcfg.get("a.b.c")``: the public call inside a request (memo hit);
- ``Snapshot.get("a.b.c")``: the same on a snapshot held by the caller;
- ``hotcfg.get("a.b.x")``: a miss, answered from the memo with the default;
- ``snap["a"]["b"]["c"]``: indexing the frozen values directly.

The target (BENCHMARKS.md): ``hotcfg.get("a.b.c")`` at most 3x the dict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path


def median_ns(fn: Callable[[], object], number: int, runs: int) -> float:
    times = timeit.repeat(fn, number=number, repeat=runs)
    return statistics.median(times) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hotcfg-get-"))
    path = tmp / "c.yaml"
    path.write_text("a: {b: {c: 1}}\nother: [1, 2, 3]\n")
    os.environ["HOTCFG_SEGMENT_DIR"] = str(tmp / "seg")

    import hotcfg
    from hotcfg import _api, _runtime

    hotcfg.configure(source=str(path))
    _runtime.ensure_publisher(start_watching=False)
    token = _api.pin()  # as inside a request
    snap = hotcfg.snapshot()
    nested = {"a": {"b": {"c": 1}}}
    get = hotcfg.get
    rows: list[tuple[str, Callable[[], object]]] = [
        ('d["a"]["b"]["c"] (plain dicts)', lambda: nested["a"]["b"]["c"]),
        ('hotcfg.get("a.b.c") (memo hit)', lambda: get("a.b.c")),
        ('Snapshot.get("a.b.c")', lambda: snap.get("a.b.c")),
        ('hotcfg.get("a.b.x") (miss)', lambda: get("a.b.x", 0)),
        ('snap["a"]["b"]["c"] (FrozenDict)', lambda: snap["a"]["b"]["c"]),
    ]
    assert get("a.b.c") == snap["a"]["b"]["c"] == 1
    assert get("a.b.x", 0) == 0
    costs = [(label, median_ns(fn, args.number, args.runs)) for label, fn in rows]
    _api.unpin(token)
    _runtime.ensure_publisher().close()
    base = costs[0][1]
    print(f"median of {args.runs} x {args.number} calls; ratio to the plain dicts")
    print(f"{'lookup':<34} {'ns':>7} {'ratio':>6}")
    for label, ns in costs:
        print(f"{label:<34} {ns:>7.1f} {ns / base:>6.2f}")


if __name__ == "__main__":
    main()
