"""What a worker pays to switch to a new generation, by config size.

    .venv/bin/python benchmarks/switch_cost.py [--repeat 9]

For configs of about 10 KB, 100 KB, 1 MB and 10 MB (msgpack size) this
times, with Python's cyclic collector on as it is in a worker:

- ``msgpack.unpackb`` of the payload: the floor of any full decode;
- ``_payload.decode_payload``: hotcfg's decode into immutable mappings;
- a whole switch: ``Reader.refresh()`` right after a publish (header read,
  payload copy out of shared memory, CRC check, decode, swap); from 256 KB
  on, big top-level sections are decoded on first access instead;
- the switch plus a read of every top-level key, which decodes every lazy
  section: the cost when the worker uses all of it.

Prints medians in milliseconds and each as a ratio to the floor.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from hotcfg._master.publisher import Publisher
from hotcfg._segment import payload as _payload
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from hotcfg._worker.reader import Reader

SIZES = {"10 KB": 10_000, "100 KB": 100_000, "1 MB": 1_000_000, "10 MB": 10_000_000}


def make_config(size: int, version: int) -> dict[str, Any]:
    """Feature-flag-like nested data whose msgpack form is about ``size`` bytes."""
    per_entry = 100  # bytes of msgpack per flag, measured for this shape
    flags = {
        f"flag{i:06d}": {
            "enabled": i % 2 == 0,
            "rollout": i / 7.0,
            "owner": f"team-{i % 13}",
            "segments": [f"seg{j}" for j in range(3)],
            "limits": {"rps": i, "burst": i * 2},
        }
        for i in range(max(1, size // per_entry))
    }
    return {"version": version, "features": flags}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def switch_ms(
    configs: list[dict[str, Any]], repeat: int, tmp: Path
) -> tuple[float, float]:
    """Medians of Reader.refresh() right after each of ``repeat`` publishes,
    and of the same switch followed by a read of every top-level key (which
    decodes every lazy section)."""
    path = tmp / "unused.yaml"
    path.write_text("{}\n")
    segment = Segment.create(str(tmp / "seg"), name="bench")
    publisher = Publisher(FileSource(str(path), "yaml", 64 << 20), segment, Settings())
    reader = Reader(segment.view())
    switch, read_all = [], []
    try:
        for i in range(repeat):
            publisher.publish(configs[i % 2])
            start = time.perf_counter()
            snapshot = reader.refresh()
            switched = time.perf_counter()
            for key in snapshot:
                snapshot[key]
            end = time.perf_counter()
            switch.append((switched - start) * 1000)
            read_all.append((end - start) * 1000)
            assert reader.snapshot.get("version") == configs[i % 2]["version"]
    finally:
        reader.close()
        publisher.close()
    return statistics.median(switch), statistics.median(read_all)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    args = parser.parse_args()
    gc.enable()
    print(f"median of {args.repeat}, cyclic GC on (as in a worker); ratio to unpackb")
    print(f"{'config':>7} {'payload':>9} {'unpackb ms':>11} {'decode ms':>10} "
          f"{'ratio':>6} {'switch ms':>10} {'ratio':>6} {'+ read all':>10} "
          f"{'ratio':>6}")  # fmt: skip
    for label in args.sizes:
        configs = [make_config(SIZES[label], v) for v in (1, 2)]
        payload = msgpack.packb(configs[0], use_bin_type=True)
        floor = median_ms(lambda p=payload: msgpack.unpackb(p), args.repeat)
        decode = median_ms(lambda p=payload: _payload.decode_payload(p), args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["HOTCFG_SEGMENT_DIR"] = str(Path(tmp) / "seg")
            switch, read_all = switch_ms(configs, args.repeat, Path(tmp))
        print(f"{label:>7} {len(payload):>9} {floor:>11.2f} {decode:>10.2f} "
              f"{decode / floor:>6.2f} {switch:>10.2f} "
              f"{switch / floor:>6.2f} {read_all:>10.2f} "
              f"{read_all / floor:>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
