"""Coverage-guided fuzzing of what hotcfg decodes: segments, payloads, config files.

    .venv/bin/pip install -e '.[fuzz]'        # atheris (libFuzzer for Python)
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
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("needs atheris: pip install 'hotcfg[fuzz]'")

with atheris.instrument_imports():
    import msgpack
    import yaml

    from hotcfg import _layout, _payload, _sources
    from hotcfg._errors import CorruptSegmentError, HotcfgError
    from hotcfg._reader import Reader
    from hotcfg._segment import SegmentView
    from hotcfg._snapshot import Snapshot

TARGETS = ("segment", "reader", "raw", "payload", "yaml", "json", "toml")
SIZE = _layout.DATA_START + 4096
tried: collections.Counter[str] = collections.Counter()
crashes: collections.Counter[str] = collections.Counter()
first_crash: dict[str, str] = {}
crash_dir = Path(".")
deadline = 0.0
max_runs = 0


def build_segment(fdp: atheris.FuzzedDataProvider) -> bytearray:
    buf = bytearray(SIZE)
    _layout.format_segment(buf, capacity=SIZE, writer_pid=1)
    payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    at = _layout.DATA_START
    buf[at : at + len(payload)] = payload

    def field(honest: int, bits: int) -> int:
        lie = fdp.ConsumeIntInRange(0, 2**bits - 1)
        return honest if fdp.ConsumeBool() else lie

    _layout._FIXED.pack_into(
        buf, 0, _layout.MAGIC,
        field(_layout.LAYOUT_VERSION, 16), field(0, 16),
        field(_layout.HEADER_SIZE, 32), field(0, 64), field(1, 64),
        field(SIZE, 64), field(at, 64), field(len(payload), 64),
        field(zlib.crc32(payload), 32), field(1, 32),
        fdp.ConsumeRegularFloat(), fdp.ConsumeRegularFloat(),
        field(0, 64), field(_layout.TABLE_OFFSET, 32),
        field(_layout.WORKER_SLOTS, 32), field(0, 16), field(0, 16),
    )  # fmt: skip
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
        doc = _sources.load_document(data, fmt=fmt, source="fuzz")
    except HotcfgError:
        return
    # The master publishes only what a worker decodes back to the same data.
    try:
        payload = _payload.encode(doc)
    except HotcfgError:
        return
    _payload.decode_payload(payload)


def one_input(data: bytes) -> None:
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
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
    print(f"{'target':>8} {'inputs':>10} {'crashes':>8}")
    for target in TARGETS:
        print(f"{target:>8} {tried[target]:>10} {crashes[target]:>8}")
    for target, text in first_crash.items():
        print(f"\nfirst crash in {target}:\n{text}")
    sys.stdout.flush()


def seed_corpus(directory: Path) -> None:
    """Valid inputs of every target, so the fuzzer starts past the first checks."""
    doc = {"db": {"host": "h", "port": 5432}, "flags": [True, None, 1.5], "n": -1}
    seg = bytearray(SIZE)
    _layout.format_segment(seg, capacity=SIZE, writer_pid=1)
    payload = _payload.encode(doc)
    crc = _layout.write_payload(seg, _layout.DATA_START, payload)
    _layout.commit(
        seg, generation=1, offset=_layout.DATA_START, length=len(payload), crc=crc,
        published_at=1.0, source="seed", writer_pid=1,
    )  # fmt: skip
    toml = b'n = -1\nflags = [true, 1.5]\n[db]\nhost = "h"\nport = 5432\n'
    seeds = {
        "segment": bytes(64) + payload,
        "reader": bytes(64) + payload,
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
