"""Coverage-guided fuzzing of what hotcfg decodes: segments, payloads, config files.

    .venv/bin/pip install -e . --group fuzz   # atheris (libFuzzer for Python)
    .venv/bin/python benchmarks/fuzz_segment.py [--seconds 300] [--runs N]

The first input byte picks a target; the rest is its input:

* ``segment``: a segment built from the input (valid magic, header fields
  and payload chosen by the fuzzer) through ``_payload.decode``; only a
  Snapshot or a CorruptSegmentError may come out.
* ``reader``: such a segment in a real shared mapping (``memfd``) read by
  a worker's ``Reader``: ``refresh()`` must never raise.
* ``raw``: the input as a whole segment buffer, same rule.
* ``payload``: the input as a msgpack payload through ``decode_payload``.
* ``yaml`` / ``json`` / ``toml``: the input as a config file through the
  master's load path (parse, check, encode, decode back); only a
  HotcfgError may come out, and whatever loads must also encode and decode.

Any other exception is a crash: it is counted, its input saved under
``--crashes``, and fuzzing goes on. At the end the script prints the inputs
tried and the crashes found per target, and exits 1 if there were any.
Not collected by pytest; ``make test`` does not need atheris.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import logging
import os
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("needs atheris: pip install -e . --group fuzz")

with atheris.instrument_imports():
    import msgpack
    import yaml

    from hotcfg._errors import CorruptSegmentError, HotcfgError
    from hotcfg._segment import layout as _layout
    from hotcfg._segment import payload as _payload
    from hotcfg._segment.shm import SegmentView
    from hotcfg._segment.snapshot import Snapshot
    from hotcfg._sources import files
    from hotcfg._worker.reader import Reader

TARGETS = ("segment", "reader", "raw", "payload", "yaml", "json", "toml")
SIZE = _layout.DATA_START + 4096
tried: collections.Counter[str] = collections.Counter()
reached: collections.Counter[str] = collections.Counter()
crashes: collections.Counter[str] = collections.Counter()
first_crash: dict[str, str] = {}
crash_dir = Path(".")
deadline = 0.0
max_runs = 0


def build_segment(fdp: atheris.FuzzedDataProvider) -> bytearray:
    """A segment written through the layout functions, then mutated.

    The payload is the fuzzer's bytes with a valid CRC and descriptor, so
    they reach the payload decoder; then a few header fields, descriptor
    fields or payload bytes (with or without a fixed CRC) are rewritten.
    """
    buf = bytearray(SIZE)
    _layout.format_segment(buf, capacity=SIZE, writer_pid=1)
    payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    generation = fdp.ConsumeIntInRange(1, 2**64 - 2)
    at = _layout.DATA_START
    crc = _layout.write_payload(buf, at, payload, generation=generation)
    _layout.commit(
        buf, generation=generation, offset=at, length=len(payload), crc=crc,
        published_at=fdp.ConsumeRegularFloat(), source="fuzz", writer_pid=1,
    )  # fmt: skip
    desc = _layout._desc_offset(generation)
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        kind = fdp.ConsumeIntInRange(0, 3)
        if kind < 2 and payload:  # payload bytes; kind 1 also fixes the CRC
            pos = at + fdp.ConsumeIntInRange(0, len(payload) - 1)
            buf[pos] = fdp.ConsumeIntInRange(0, 255)
            if kind == 1:
                fixed = zlib.crc32(bytes(buf[at : at + len(payload)]))
                struct.pack_into("<I", buf, desc + 24, fixed)
        elif kind == 2:  # descriptor: generation, offset, length
            field = desc + 8 * fdp.ConsumeIntInRange(0, 2)
            struct.pack_into("<Q", buf, field, fdp.ConsumeIntInRange(0, 2**64 - 1))
        else:  # header: sequence, generation, capacity, or the writing generation
            field = fdp.PickValueInList([16, 24, 32, _layout.WRITING_OFFSET])
            struct.pack_into("<Q", buf, field, fdp.ConsumeIntInRange(0, 2**64 - 1))
    return buf


def decode_segment(buf: bytes | bytearray) -> None:
    try:
        snap = _payload.decode(buf)
    except CorruptSegmentError:
        return
    if not isinstance(snap, Snapshot) or not all(isinstance(k, str) for k in snap):
        raise AssertionError("decode returned something that is not a Snapshot")


def read_as_worker(buf: bytearray) -> None:
    fd = os.memfd_create("hotcfg-fuzz")
    os.write(fd, buf)
    reader = Reader(SegmentView(fd))  # owns fd from here on
    try:
        reader.mark_stale()
        reader.refresh()
    finally:
        reader.close()


def decode_payload(data: bytes) -> None:
    with contextlib.suppress(CorruptSegmentError):
        _payload.decode_payload(data)


def load_config(data: bytes, fmt: str) -> None:
    try:
        doc = files.load_document(data, fmt=fmt, source="fuzz")
    except HotcfgError:
        return
    # The master publishes only what a worker decodes back to the same data.
    try:
        payload = _payload.encode(doc)
    except HotcfgError:
        return
    _payload.decode_payload(payload)


def counted_decode_payload(*args: Any, **kwargs: Any) -> Snapshot:
    reached[current_target] += 1
    return real_decode_payload(*args, **kwargs)


# Every decode (segment, reader, raw, payload) goes through the module
# attribute, so this counts the inputs that got past the segment's checks.
real_decode_payload = _payload.decode_payload
_payload.decode_payload = counted_decode_payload
current_target = ""


def one_input(data: bytes) -> None:
    global current_target
    if not data:
        return
    target = current_target = TARGETS[data[0] % len(TARGETS)]
    body = data[1:]
    tried[target] += 1
    try:
        if target == "segment":
            decode_segment(build_segment(atheris.FuzzedDataProvider(body)))
        elif target == "reader":
            read_as_worker(build_segment(atheris.FuzzedDataProvider(body)))
        elif target == "raw":
            decode_segment(body)
        elif target == "payload":
            decode_payload(body)
        else:
            load_config(body, target)
    # Everything else is what the fuzzer is looking for: keep it and go on.
    except Exception:
        crashes[target] += 1
        digest = hashlib.sha1(data).hexdigest()[:16]
        (crash_dir / f"crash-{target}-{digest}").write_bytes(data)
        first_crash.setdefault(target, traceback.format_exc(limit=4))
    if time.monotonic() > deadline or sum(tried.values()) >= max_runs:
        report()
        os._exit(1 if crashes else 0)  # libFuzzer has no clean way to stop


def report() -> None:
    total = sum(tried.values())
    print(f"\ninputs tried: {total}   crashes: {sum(crashes.values())}")
    print("decoded: decode_payload calls (for segment/reader/raw: inputs past")
    print("the segment's checks; a reader's refresh may decode more than once)")
    print(f"{'target':>8} {'inputs':>10} {'decoded':>8} {'share':>6} {'crashes':>8}")
    for target in TARGETS:
        n = tried[target]
        share = f"{reached[target] / n:.0%}" if n else "-"
        print(f"{target:>8} {n:>10} {reached[target]:>8} {share:>6} "
              f"{crashes[target]:>8}")  # fmt: skip
    for target, text in first_crash.items():
        print(f"\nfirst crash in {target}:\n{text}")
    sys.stdout.flush()


def seed_corpus(directory: Path) -> None:
    """Valid inputs of every target, so the fuzzer starts past the first checks."""
    doc = {"db": {"host": "h", "port": 5432}, "flags": [True, None, 1.5], "n": -1}
    seg = bytearray(SIZE)
    _layout.format_segment(seg, capacity=SIZE, writer_pid=1)
    payload = _payload.encode(doc)
    crc = _layout.write_payload(seg, _layout.DATA_START, payload, generation=1)
    _layout.commit(
        seg, generation=1, offset=_layout.DATA_START, length=len(payload), crc=crc,
        published_at=1.0, source="seed", writer_pid=1,
    )  # fmt: skip
    toml = b'n = -1\nflags = [true, 1.5]\n[db]\nhost = "h"\nport = 5432\n'
    seeds = {
        # build_segment: a 2-byte length, 8-byte generation, then the payload
        "segment": bytes(16) + payload,
        "reader": bytes(16) + payload,
        "raw": bytes(seg[: _layout.DATA_START + len(payload)]),
        "payload": msgpack.packb(doc),
        "yaml": yaml.safe_dump(doc).encode() + b"a: &a [1]\nb: *a\n",
        "json": json.dumps(doc).encode(),
        "toml": toml,
    }
    for index, target in enumerate(TARGETS):
        (directory / f"seed-{target}").write_bytes(bytes([index]) + seeds[target])


def main() -> int:
    global crash_dir, deadline, max_runs
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--runs", type=int, default=2**62, help="stop after N inputs")
    parser.add_argument("--crashes", default="fuzz-crashes", help="where to save")
    args = parser.parse_args()
    crash_dir = Path(args.crashes)
    crash_dir.mkdir(exist_ok=True)
    logging.disable(logging.ERROR)  # a Reader logs every corrupt segment it sees
    corpus = Path(tempfile.mkdtemp(prefix="hotcfg-fuzz-"))
    seed_corpus(corpus)
    deadline = time.monotonic() + args.seconds
    max_runs = args.runs
    atheris.Setup([sys.argv[0], str(corpus), "-max_len=8192"], one_input)
    atheris.Fuzz()  # never returns: one_input ends the process
    return 2


if __name__ == "__main__":
    sys.exit(main())
