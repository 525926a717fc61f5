"""Lazy top-level sections: would decoding each section on first access beat
the full decode a worker does at a switch?

    .venv/bin/python benchmarks/lazy_sections.py [--repeat 9]

The experiment, in one process: the master would pack each top-level value
separately (a map of key -> msgpack bytes); a worker's switch would unpack
only that outer map, and a section on its first access. For 1 MB and 10 MB
configs split into 1, 10, 100 and 1000 top-level sections it times, with
the cyclic GC on as in a worker:

- ``unpackb``: ``msgpack.unpackb`` of the whole payload, the floor of a full
  decode; ``full``: hotcfg's decode today (``_payload.decode_payload``);
- ``lazy switch``: unpacking the outer map of per-section bytes;
- ``+1 section``: decoding one section on its first access;
- ``all``: the switch plus every section decoded;
- ``pack x``: the master's per-section packing against one ``packb``;
- ``mem x``: memory held with every section decoded (values plus the
  section bytes, which a lazy snapshot keeps until decoded) against the
  full decode.

docs/design.md ("Lazy sections") has the decision drawn from it.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgpack
from switch_cost import make_config, median_ms

from hotcfg._segment import payload as _payload

SIZES = {"1 MB": 1_000_000, "10 MB": 10_000_000}
SECTIONS = (1, 10, 100, 1000)


def split(config: dict[str, Any], sections: int) -> dict[str, Any]:
    """The same flags spread over ``sections`` top-level keys."""
    flags = list(config["features"].items())
    per = -(-len(flags) // sections)
    return {
        f"section{i:04d}": dict(flags[i * per : (i + 1) * per])
        for i in range(sections)
    }


def held_bytes(build: Callable[[], object]) -> int:
    tracemalloc.start()
    kept = build()
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    args = parser.parse_args()
    gc.enable()
    print(f"median of {args.repeat} in ms; ratios to unpackb of the whole payload")
    print(f"{'config':>6} {'sections':>8} {'unpackb':>8} {'full':>7} "
          f"{'lazy switch':>11} {'+1 section':>10} {'all':>7} {'all x':>6} "
          f"{'pack x':>6} {'mem x':>6}")  # fmt: skip
    for label in args.sizes:
        base = make_config(SIZES[label], 1)
        for sections in SECTIONS:
            config = split(base, sections)
            whole = msgpack.packb(config, use_bin_type=True)
            parts = {k: msgpack.packb(v, use_bin_type=True) for k, v in config.items()}
            lazy = msgpack.packb(parts, use_bin_type=True)
            first = next(iter(parts.values()))
            floor = median_ms(lambda w=whole: msgpack.unpackb(w), args.repeat)
            full = median_ms(lambda w=whole: _payload.decode_payload(w), args.repeat)
            switch = median_ms(lambda p=lazy: _payload._unpack(p), args.repeat)
            one = median_ms(lambda f=first: _payload._unpack(f), args.repeat)

            def everything(p: bytes = lazy) -> list[Any]:
                return [_payload._unpack(b) for b in _payload._unpack(p).values()]

            total = median_ms(everything, args.repeat)
            pack_whole = median_ms(
                lambda c=config: msgpack.packb(c, use_bin_type=True), args.repeat
            )
            pack_parts = median_ms(
                lambda c=config: msgpack.packb(
                    {k: msgpack.packb(v, use_bin_type=True) for k, v in c.items()},
                    use_bin_type=True,
                ),
                args.repeat,
            )
            mem_full = held_bytes(lambda w=whole: _payload.decode_payload(w))
            mem_lazy = held_bytes(lambda p=lazy: (_payload._unpack(p), everything(p)))
            print(f"{label:>6} {sections:>8} {floor:>8.2f} {full:>7.2f} "
                  f"{switch:>11.3f} {one:>10.2f} {total:>7.2f} "
                  f"{total / floor:>6.2f} {pack_parts / pack_whole:>6.2f} "
                  f"{mem_lazy / mem_full:>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
