"""What three layered 10 KB YAML files cost the master against one 10 KB
file, through the code paths the master runs.

    .venv/bin/python benchmarks/layer_merge.py [--iterations 1000] [--warmup 50]
    .venv/bin/python benchmarks/layer_merge.py --quick

Three overlapping YAML documents of about 10 KB each (nested maps, lists,
scalars): a base, a production layer and a region layer that change many of
the base's keys deep down (feature flags, services), replace a list whole,
and add sections of their own. Against them, one 10 KB file: the base layer
alone; and, for the cost of layering over a flattened file, one file
holding the merged result. Each step is timed once per iteration, the steps in a
new random order each time (so a busy neighbour weighs on all of them
alike), after ``--warmup`` untimed iterations; median and p95 per step,
cyclic GC on as in a master:

- parse: ``loaders.parse`` of bytes read already (one document, or three);
- merge: ``_layers.merge`` of the three parsed documents (layered only);
- load: ``Source.load()`` of the source ``source_for`` builds from
  ``HOTCFG_SOURCE``: a ``FileSource`` (read, parse, check the document) or a
  ``LayeredSource`` over the three files (that three times, then the merge,
  a check of the merged document, and the layers kept for ``--explain``);
- publish: ``_master.check.validate_source`` (``hotcfg validate``): the source
  built, loaded, validated (no user validator), encoded, and decoded back as
  a worker will, everything a publish does before writing the segment.

``layered x`` is the layered median over the single one.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hotcfg._content import layers as _layers
from hotcfg._content import loaders
from hotcfg._master.check import validate_source
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from hotcfg._sources.layered import LayeredSource
from hotcfg._sources.select import source_for

SIZE = 10_000


def base(n: int) -> dict[str, Any]:
    return {
        "service": {"name": "checkout", "env": "development", "debug": True},
        "server": {
            "host": "0.0.0.0",
            "port": 8080,
            "workers": 2,
            "timeouts": {"read_s": 30, "write_s": 30, "idle_s": 120},
        },
        "database": {
            "primary": {
                "host": "localhost",
                "port": 5432,
                "name": "checkout",
                "pool": {"min": 1, "max": 5, "timeout_ms": 2500},
            },
            "replicas": [],
        },
        "logging": {
            "level": "debug",
            "format": "text",
            "loggers": {"sqlalchemy": "info", "urllib3": "warning"},
        },
        "services": {
            f"svc_{i:02d}": {
                "url": f"http://localhost:{9000 + i}",
                "timeout_ms": 1000,
                "retries": 2,
                "circuit": {"failures": 5, "reset_s": 30},
            }
            for i in range(n // 4)
        },
        "features": {
            f"feature_{i:03d}": {
                "enabled": False,
                "rollout": 0.0,
                "segments": ["internal"],
                "owner": f"team-{i % 5}",
            }
            for i in range(n)
        },
    }


def production(flags: int, n: int) -> dict[str, Any]:
    return {
        "service": {"env": "production", "debug": False},
        "server": {"workers": 8, "timeouts": {"idle_s": 60}},
        "database": {
            "primary": {"host": "db-1.prod.internal", "pool": {"max": 40}},
            "replicas": [
                {"host": f"db-{i}.prod.internal", "weight": 10 * i} for i in range(2, 6)
            ],
        },
        "logging": {"level": "info", "format": "json"},
        "services": {
            f"svc_{i:02d}": {"url": f"https://svc-{i}.prod.internal", "retries": 3}
            for i in range(flags // 4)
        },
        "features": {
            f"feature_{i:03d}": {
                "enabled": i % 4 != 0,
                "rollout": (i * 37 % 100) / 100,
                "segments": ["beta", f"cohort-{i % 9}"],
            }
            for i in range(flags)
        },
        "alerts": [
            {
                "name": f"alert-{i}",
                "threshold": i * 5,
                "page": i % 2 == 0,
                "channels": ["pager", f"chat-{i % 3}"],
            }
            for i in range(n)
        ],
    }


def region(flags: int, n: int) -> dict[str, Any]:
    return {
        "service": {"region": "eu-west-1"},
        "database": {"primary": {"host": "db-1.eu-west-1.internal"}},
        "services": {
            f"svc_{i:02d}": {
                "url": f"https://svc-{i}.eu-west-1.internal",
                "timeout_ms": 1500,
            }
            for i in range(flags // 4)
        },
        "features": {
            f"feature_{i:03d}": {
                "rollout": 0.5,
                "regions": ["eu-west-1", "eu-central-1"],
            }
            for i in range(0, flags, 2)
        },
        "edges": {
            f"edge_{i:02d}": {
                "url": f"https://edge-{i}.eu-west-1.example",
                "weight": i % 5,
                "tls": True,
            }
            for i in range(n)
        },
        "cdn": {
            "origins": [f"https://cdn-{i}.example" for i in range(4)],
            "ttl_s": {"html": 60, "assets": 86400},
        },
    }


def layers(size: int = SIZE) -> dict[str, bytes]:
    """The three layers as YAML of about ``size`` bytes each: the base sized
    by its flag count, the others change some of its flags and services and
    are filled up with sections of their own."""

    def sized(build: Callable[[int], dict[str, Any]]) -> tuple[int, bytes]:
        n = 1
        while len(text := yaml.safe_dump(build(n), sort_keys=False)) < size:
            n += 1
        return n, text.encode()

    flags, text = sized(base)
    return {
        "base.yaml": text,
        "production.yaml": sized(lambda n: production(flags, n))[1],
        "region.yaml": sized(lambda n: region(flags, n))[1],
    }


def percentile95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 30 iterations after 5")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.warmup = 30, 5
    for name in [n for n in os.environ if n.startswith("HOTCFG_SET__")]:
        del os.environ[name]  # overrides would be a fourth layer
    with tempfile.TemporaryDirectory(prefix="hotcfg-layers-") as name:
        tmp = Path(name)
        texts = layers()
        for file, text in texts.items():
            (tmp / file).write_bytes(text)
        single = Settings.resolve({"HOTCFG_SOURCE": "base.yaml"}, base_dir=name)
        layered = Settings.resolve({"HOTCFG_SOURCE": " | ".join(texts)}, base_dir=name)
        file_source, layered_source = source_for(single), source_for(layered)
        assert isinstance(file_source, FileSource)
        assert isinstance(layered_source, LayeredSource)
        contents = list(texts.values())
        documents = [loaders.parse(t, fmt="yaml", source="-") for t in contents]
        merged = _layers.merge(documents)
        assert layered_source.load() == merged
        assert file_source.load() == documents[0]
        flat = tmp / "flat.yaml"
        flat.write_text(yaml.safe_dump(merged, sort_keys=False))
        flat_size = flat.stat().st_size
        flat_source = FileSource(str(flat), "yaml", single.max_bytes)
        assert flat_source.load() == merged

        steps: dict[tuple[str, str], Callable[[], object]] = {
            ("parse", "single"): lambda: loaders.parse(
                contents[0], fmt="yaml", source="-"
            ),
            ("parse", "layered"): lambda: [
                loaders.parse(t, fmt="yaml", source="-") for t in contents
            ],
            ("merge", "layered"): lambda: _layers.merge(documents),
            ("load", "single"): file_source.load,
            ("load", "layered"): layered_source.load,
            ("load", "flat"): flat_source.load,
            ("publish", "single"): lambda: validate_source(single),
            ("publish", "layered"): lambda: validate_source(layered),
        }
        times = run(steps, args.iterations, args.warmup)
    report(times, texts, flat_size, args)


def run(
    steps: dict[tuple[str, str], Callable[[], object]], iterations: int, warmup: int
) -> dict[tuple[str, str], list[float]]:
    """Each step once per iteration, in a new random order each time; ms."""
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    order = list(steps)
    for iteration in range(warmup + iterations):
        random.shuffle(order)
        for key in order:
            start = time.perf_counter_ns()
            steps[key]()
            elapsed = time.perf_counter_ns() - start
            if iteration >= warmup:
                times[key].append(elapsed / 1e6)
    return times


def report(
    times: dict[tuple[str, str], list[float]],
    texts: dict[str, bytes],
    flat_size: int,
    args: argparse.Namespace,
) -> None:
    sizes = " / ".join(f"{len(t) / 1000:.1f}" for t in texts.values())
    print(f"3 YAML layers of {sizes} KB (merged: {flat_size / 1000:.1f} KB as YAML) "
          f"against one {len(texts['base.yaml']) / 1000:.1f} KB file (the first "
          f"layer); median and p95 of {args.iterations} calls after "
          f"{args.warmup} warm-up, steps in random order, GC on")  # fmt: skip
    print(f"{'step':>8} {'single ms':>10} {'p95':>8} {'layered ms':>11} "
          f"{'p95':>8} {'layered x':>10}")  # fmt: skip
    medians: dict[tuple[str, str], float] = {}
    for step in ("parse", "merge", "load", "publish"):
        cells = []
        for variant in ("single", "layered"):
            got = times.get((step, variant))
            if got is None:
                cells.append(f"{'-':>10} {'-':>8}")
                continue
            median = medians[step, variant] = round(statistics.median(got), 3)
            cells.append(f"{median:>{10 if variant == 'single' else 11}.3f} "
                         f"{percentile95(got):>8.3f}")  # fmt: skip
        single = medians.get((step, "single"))
        ratio = (
            f"{medians[step, 'layered'] / single:>10.2f}" if single else f"{'-':>10}"
        )
        print(f"{step:>8} {' '.join(cells)} {ratio}")
    load = medians["load", "layered"]
    print(f"in the layered load (median {load:.3f} ms): the merge "
          f"{medians['merge', 'layered'] / load:.0%}, the three parses "
          f"{medians['parse', 'layered'] / load:.0%}")  # fmt: skip
    flat = times["load", "flat"]
    print(f"one file holding the merged result ({flat_size / 1000:.1f} KB): load "
          f"median {statistics.median(flat):.3f} ms, p95 "
          f"{percentile95(flat):.3f} ms")  # fmt: skip
    print("parse: loaders.parse of bytes read already; merge: _layers.merge of "
          "the parsed documents; load: Source.load() of source_for's source "
          "(read, parse, check; layered: x3, then merge, check, layers kept); "
          "publish: _master.check.validate_source (build the source, load, "
          "validate, encode, decode back)")  # fmt: skip


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
