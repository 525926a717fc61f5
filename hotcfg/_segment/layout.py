"""The segment's byte layout: the one place that knows it.

Owns the header, the two live-payload descriptors, the worker table, where
each payload goes (:func:`plan_offset`), and the two read paths: the
lock-free payload copy (:func:`read_consistent`) and the seqlocked header
(:func:`read_header`). What the payload bytes mean is ``_segment.payload``'s
business: this module treats them as opaque bytes with a CRC.

PURE: functions over any buffer (``bytearray``, ``mmap``, ``memoryview``); no
files, no signals, no clock (times are passed in). Must not import ``os``,
``mmap``, ``signal``, ``threading``, ``time``, ``msgpack`` or any other
hotcfg module but ``_errors`` (``_segment.payload`` imports this module, never the
reverse).

Layout (all integers little-endian)::

    offset  size  field
    ------  ----  ----------------------------------------------------------
         0     8  magic  b"HOTCFGSG"
         8     2  layout version (LAYOUT_VERSION)
        10     2  flags (bit 0: the last publish attempt was rejected)
        12     4  header size (HEADER_SIZE)
        16     8  sequence: odd while the writer is updating the header
        24     8  generation: 0 = nothing published yet, then +1 per publish
        32     8  capacity: bytes the writer has made valid in the file
        40     8  payload offset
        48     8  payload length
        56     4  payload CRC-32
        60     4  writer pid
        64     8  published at (Unix time, float64)
        72     8  last error at (Unix time, float64)
        80     8  rejected count (publish attempts refused since creation;
                  an attempt is one read of the source, so a save read
                  half-written and then whole counts twice)
        88     4  worker table offset
        92     4  worker table slots
        96     2  source label length      (label at 104, at most 256 bytes)
        98     2  last error length        (text at 360, at most 1024 bytes)
      1384     8  writing generation: the generation whose payload is being
                  (or was last) written; stored before its bytes are copied
      1392   640  two live-payload descriptors, one for even and one for odd
                  generations, DESC_SIZE bytes each: generation uint64,
                  offset uint64, length uint64, CRC-32 uint32, published at
                  float64, label length uint16, label (at most 256 bytes)
      2032     8  validating since (Unix time, float64; 0 = no user
                  validator is running now)
      2040     2  validator name length    (name at 2042, at most 256 bytes)
      2304     2  role: who publishes (ROLE_*; 0 = not said, a writer older
                  than the field)
      4096        worker table: WORKER_SLOTS x 32 bytes
                  (pid int64, applied generation uint64, applied at float64, 0)
     36864        payloads (msgpack), placed by plan_offset()

Concurrency: one writer, many readers, and a worker never waits for the
writer. A payload is written *outside* the live one (double buffering, see
:func:`plan_offset`), described in the descriptor slot of its generation's
parity, and only then made live by storing the generation. A reader picks
the descriptor of the generation it read, copies the payload, and accepts
the copy unless the writer has meanwhile *started* writing the generation
after the next one (see :func:`read_consistent`). The CRC catches anything
the ordering argument misses on weakly ordered CPUs. The rest of the header
(capacity, errors, the label shown by ``status``) is updated under a
seqlock: the writer makes the sequence odd, changes the fields, makes it
even again, and :func:`read_header` retries until it reads one even
sequence before and after the fields. Single words that readers poll (the
generation, the capacity, the writing generation) are read alone, each in
one aligned 8-byte load, without the seqlock.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import CorruptSegmentError

Buffer = bytearray | memoryview | Any  # mmap.mmap is a writable buffer too

MAGIC = b"HOTCFGSG"
LAYOUT_VERSION = 3
HEADER_SIZE = 4096
WORKER_SLOTS = 1024
#: The largest payload a segment carries; the master's checks
#: (``_content.validate``) and encoder refuse anything bigger, readers distrust it.
MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
SOURCE_MAX_BYTES = 256
ERROR_MAX_BYTES = 1024

FLAG_REJECTED = 0x1

_FIXED = struct.Struct("<8sHHIQQQQQIIddQIIHH")
_U64 = struct.Struct("<Q")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SLOT = struct.Struct("<qQdQ")

SEQ_OFFSET = 16
GENERATION_OFFSET = 24
#: Index of the generation in the buffer viewed as ``uint64`` (``cast("Q")``).
GENERATION_INDEX = GENERATION_OFFSET // 8
_FLAGS_OFFSET = 10
_ERROR_AT_OFFSET = 72
_REJECTED_OFFSET = 80
_ERROR_LEN_OFFSET = 98
_SOURCE_OFFSET = 104
_ERROR_OFFSET = _SOURCE_OFFSET + SOURCE_MAX_BYTES
WRITING_OFFSET = _ERROR_OFFSET + ERROR_MAX_BYTES
_SEQ_INDEX = SEQ_OFFSET // 8
_CAPACITY_OFFSET = 32
_CAPACITY_INDEX = _CAPACITY_OFFSET // 8
_WRITING_INDEX = WRITING_OFFSET // 8
_DESC = struct.Struct("<QQQIdH")
DESC_SIZE = 320
_DESC_OFFSET = WRITING_OFFSET + 8
TABLE_OFFSET = HEADER_SIZE
DATA_START = TABLE_OFFSET + WORKER_SLOTS * _SLOT.size
_ALIGN = 64
#: Generation 0's payload, written by :func:`format_segment`: msgpack's empty
#: map (one byte, so this module need not import msgpack; a test pins it).
EMPTY_PAYLOAD = b"\x80"

_VALIDATING_OFFSET = _DESC_OFFSET + 2 * DESC_SIZE
_VALIDATING = struct.Struct("<dH")
VALIDATOR_MAX_BYTES = 256

#: Who publishes into the segment (``hotcfg status`` names it): not said (a
#: writer from before this field, whose header holds zero there), a
#: Gunicorn master, a standalone process, a Gunicorn worker whose master did
#: not set hotcfg up (standalone, or elected among its siblings), or the
#: process its peers elected (uvicorn's or Hypercorn's workers, a
#: ``multiprocessing`` pool: ``_master.election``).
ROLE_UNKNOWN = 0
ROLE_GUNICORN_MASTER = 1
ROLE_STANDALONE = 2
ROLE_GUNICORN_WORKER = 3
ROLE_ELECTED_PEER = 4
ROLES = {
    ROLE_UNKNOWN: "unknown",
    ROLE_GUNICORN_MASTER: "gunicorn-master",
    ROLE_STANDALONE: "standalone",
    ROLE_GUNICORN_WORKER: "gunicorn-worker",
    ROLE_ELECTED_PEER: "elected-peer",
}
_ROLE_OFFSET = 2304
_WRITER_PID_OFFSET = 60

assert WRITING_OFFSET % 8 == 0
assert _VALIDATING_OFFSET + _VALIDATING.size + VALIDATOR_MAX_BYTES <= HEADER_SIZE
assert _DESC.size + 2 + SOURCE_MAX_BYTES <= DESC_SIZE
assert _DESC_OFFSET + 2 * DESC_SIZE <= HEADER_SIZE
assert _VALIDATING_OFFSET + _VALIDATING.size + VALIDATOR_MAX_BYTES <= _ROLE_OFFSET
assert _ROLE_OFFSET + 2 <= HEADER_SIZE
assert DATA_START % 4096 == 0


@dataclass(frozen=True, slots=True)
class Header:
    """The decoded fixed header (a copy; the buffer may change under it)."""

    layout: int
    flags: int
    sequence: int
    generation: int
    capacity: int
    payload_offset: int
    payload_length: int
    payload_crc: int
    writer_pid: int
    published_at: float
    error_at: float
    rejected_count: int
    table_offset: int
    table_slots: int
    source: str
    error: str | None
    validating: str | None = None
    validating_since: float = 0.0
    role: int = 0  # ROLE_*


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """What one worker last wrote into its slot of the worker table."""

    slot: int
    pid: int
    generation: int
    applied_at: float


@dataclass(frozen=True, slots=True)
class Live:
    """What a reader copied along with a payload: one publish's description."""

    generation: int
    payload_offset: int
    payload_length: int
    payload_crc: int
    published_at: float
    source: str


def minimum_capacity(payload_length: int) -> int:
    """Smallest segment that holds the header, the table and one payload."""
    return DATA_START + _align(payload_length)


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _clip(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8", "replace")[:limit]
    # Cutting may split a multi-byte character; decode-with-ignore drops the stub.
    return raw.decode("utf-8", "ignore").encode("utf-8")


def _get_u64(buf: Buffer, offset: int) -> int:
    value: int = _U64.unpack_from(buf, offset)[0]
    return value


def _bump_sequence(buf: Buffer) -> int:
    seq = _get_u64(buf, SEQ_OFFSET) + 1
    _U64.pack_into(buf, SEQ_OFFSET, seq)
    return seq


def format_segment(buf: Buffer, *, capacity: int, writer_pid: int) -> None:
    """Write a fresh header (generation 0, an empty mapping) and a clear table."""
    if len(buf) < DATA_START + _ALIGN or capacity > len(buf):
        raise ValueError("buffer too small for a segment")
    buf[0:DATA_START] = bytes(DATA_START)
    buf[DATA_START : DATA_START + len(EMPTY_PAYLOAD)] = EMPTY_PAYLOAD
    _FIXED.pack_into(
        buf, 0, MAGIC, LAYOUT_VERSION, 0, HEADER_SIZE,
        0, 0, capacity, DATA_START, len(EMPTY_PAYLOAD), zlib.crc32(EMPTY_PAYLOAD),
        writer_pid, 0.0, 0.0, 0, TABLE_OFFSET, WORKER_SLOTS, 0, 0,
    )  # fmt: skip
    _write_desc(
        buf, Live(0, DATA_START, len(EMPTY_PAYLOAD), zlib.crc32(EMPTY_PAYLOAD), 0.0, "")
    )


def _desc_offset(generation: int) -> int:
    return _DESC_OFFSET + (generation & 1) * DESC_SIZE


def _write_desc(buf: Buffer, live: Live) -> None:
    at = _desc_offset(live.generation)
    label = _clip(live.source, SOURCE_MAX_BYTES)
    _DESC.pack_into(
        buf, at, live.generation, live.payload_offset, live.payload_length,
        live.payload_crc, live.published_at, len(label),
    )  # fmt: skip
    start = at + _DESC.size + 2
    buf[start : start + len(label)] = label


def _read_desc(buf: Buffer, generation: int) -> Live:
    at = _desc_offset(generation)
    gen, offset, length, crc, published_at, label_len = _DESC.unpack_from(buf, at)
    start = at + _DESC.size + 2
    label = bytes(buf[start : start + min(label_len, SOURCE_MAX_BYTES)])
    return Live(
        gen, offset, length, crc, published_at, label.decode("utf-8", "replace")
    )


def read_header(
    buf: Buffer, *, attempts: int = 1000, pause: Callable[[], None] | None = None
) -> Header:
    """A copy of the header as of one moment between two header updates.

    The writer makes the sequence odd before it changes any header field
    and even again after (:func:`commit`, :func:`record_error`, ...). This
    reads the sequence, the fields, then the sequence again, and retries
    while the first was odd or the two differ, so ``hotcfg status`` never
    shows, say, a new generation with the previous source label. Only this
    path waits for the writer; a worker's switch (:func:`read_consistent`)
    never does.

    Args:
        buf: the segment.
        attempts: how many busy or torn reads to tolerate before giving up.
        pause: called between attempts (the caller's way to yield the CPU).

    Raises:
        CorruptSegmentError: too short, wrong magic, unknown layout, fields
            out of range, or a header update still in progress after
            ``attempts`` reads (a writer killed in the middle of one).
    """
    _check_identity(buf)
    for _ in range(max(1, attempts)):
        sequence = _load_u64(buf, _SEQ_INDEX)
        if sequence & 1 == 0:
            header = _unpack_header(buf)
            if _load_u64(buf, _SEQ_INDEX) == sequence:
                return header
        if pause is not None:
            pause()
    raise CorruptSegmentError("segment header update still in progress")


def _unpack_header(buf: Buffer) -> Header:
    """One unguarded decode of the header fields (see :func:`read_header`)."""
    try:
        (_magic, layout, flags, _size, seq, generation, capacity, offset, length,
         crc, pid, published_at, error_at, rejected, table_offset, table_slots,
         source_len, error_len) = _FIXED.unpack_from(buf, 0)  # fmt: skip
        source = bytes(buf[_SOURCE_OFFSET : _SOURCE_OFFSET + source_len])
        error = bytes(buf[_ERROR_OFFSET : _ERROR_OFFSET + error_len])
    except (struct.error, TypeError, ValueError) as exc:
        raise CorruptSegmentError(f"unreadable segment header: {exc}") from exc
    since, name_len = _VALIDATING.unpack_from(buf, _VALIDATING_OFFSET)
    if (
        source_len > SOURCE_MAX_BYTES
        or error_len > ERROR_MAX_BYTES
        or name_len > VALIDATOR_MAX_BYTES
    ):
        raise CorruptSegmentError("segment header text fields out of range")
    name_at = _VALIDATING_OFFSET + _VALIDATING.size
    name = bytes(buf[name_at : name_at + name_len]).decode("utf-8", "replace")
    return Header(
        layout=layout,
        flags=flags,
        sequence=seq,
        generation=generation,
        capacity=capacity,
        payload_offset=offset,
        payload_length=length,
        payload_crc=crc,
        writer_pid=pid,
        published_at=published_at,
        error_at=error_at,
        rejected_count=rejected,
        table_offset=table_offset,
        table_slots=table_slots,
        source=source.decode("utf-8", "replace"),
        error=error.decode("utf-8", "replace") if flags & FLAG_REJECTED else None,
        validating=name if since else None,
        validating_since=since,
        role=_U16.unpack_from(buf, _ROLE_OFFSET)[0],
    )


def read_generation(buf: Buffer) -> int:
    """The published generation: one aligned 8-byte read, no consistency needed."""
    return _get_u64(buf, GENERATION_OFFSET)


def plan_offset(header: Header, payload_length: int) -> int:
    """Where the next payload goes: never over the live payload.

    Readers may still be copying the live payload when the next one is
    written, so the new one goes before it when it fits there, else right
    after it. The capacity needed is ``offset + payload_length``; it stays
    within about three times the largest payload.
    """
    if DATA_START + payload_length <= header.payload_offset:
        return DATA_START
    return _align(header.payload_offset + header.payload_length)


def _load_u64(buf: Buffer, index: int) -> int:
    # One aligned native 8-byte load (memcpy of a uint64), never torn, unlike
    # struct's "<Q", which assembles the value byte by byte.
    with memoryview(buf) as raw, raw[:HEADER_SIZE].cast("Q") as words:
        value: int = words[index]
    return value


def _store_u64(buf: Buffer, index: int, value: int) -> None:
    with memoryview(buf) as raw, raw[:HEADER_SIZE].cast("Q") as words:
        words[index] = value


def read_capacity(buf: Buffer) -> int:
    """The capacity the writer announced (one aligned 8-byte load)."""
    return _load_u64(buf, _CAPACITY_INDEX)


def read_writing(buf: Buffer) -> int:
    """The generation whose payload the writer is writing (or wrote last)."""
    return _load_u64(buf, _WRITING_INDEX)


def write_payload(buf: Buffer, offset: int, payload: bytes, *, generation: int) -> int:
    """Copy the payload of ``generation`` to ``offset`` (not yet live).

    The generation is announced before the first byte is copied: a reader
    that sees it only after its own copy knows this write may have reached
    the bytes it copied (see :func:`read_consistent`).

    Returns:
        The payload's CRC-32.
    """
    if offset < DATA_START or offset + len(payload) > len(buf):
        raise ValueError("payload does not fit at that offset")
    _store_u64(buf, _WRITING_INDEX, generation)
    buf[offset : offset + len(payload)] = payload
    return zlib.crc32(payload)


def commit(
    buf: Buffer,
    *,
    generation: int,
    offset: int,
    length: int,
    crc: int,
    published_at: float,
    source: str,
    writer_pid: int,
) -> None:
    """Make a written payload live as ``generation`` (seqlock-protected).

    A successful publish also clears the rejection flag: the error shown by
    ``status`` is about the current state of the source.
    """
    # The descriptor goes into the slot of this generation's parity, the one
    # of generation - 2, whose readers the announced writing generation
    # already turned away; storing the generation then makes it live.
    _write_desc(buf, Live(generation, offset, length, crc, published_at, source))
    label = _clip(source, SOURCE_MAX_BYTES)
    _bump_sequence(buf)  # odd: status readers retry
    _U16.pack_into(buf, _FLAGS_OFFSET, 0)
    struct.pack_into("<QQIId", buf, 40, offset, length, crc, writer_pid, published_at)
    buf[_SOURCE_OFFSET : _SOURCE_OFFSET + len(label)] = label
    _U16.pack_into(buf, 96, len(label))
    _store_u64(buf, GENERATION_INDEX, generation)
    _bump_sequence(buf)  # even: consistent again


def set_capacity(buf: Buffer, capacity: int) -> None:
    """Announce a grown capacity; readers remap when it exceeds their mapping."""
    _bump_sequence(buf)
    _store_u64(buf, _CAPACITY_INDEX, capacity)
    _bump_sequence(buf)


def record_error(buf: Buffer, message: str, *, at: float) -> None:
    """Record a rejected publish; the live generation is untouched."""
    text = _clip(message, ERROR_MAX_BYTES)
    _bump_sequence(buf)
    flags = _U16.unpack_from(buf, _FLAGS_OFFSET)[0]
    _U16.pack_into(buf, _FLAGS_OFFSET, flags | FLAG_REJECTED)
    struct.pack_into("<d", buf, _ERROR_AT_OFFSET, at)
    _U64.pack_into(buf, _REJECTED_OFFSET, _get_u64(buf, _REJECTED_OFFSET) + 1)
    buf[_ERROR_OFFSET : _ERROR_OFFSET + len(text)] = text
    _U16.pack_into(buf, _ERROR_LEN_OFFSET, len(text))
    _bump_sequence(buf)


def clear_error(buf: Buffer) -> None:
    """Clear the rejection flag: the source is good again (and unchanged)."""
    _bump_sequence(buf)
    flags = _U16.unpack_from(buf, _FLAGS_OFFSET)[0]
    _U16.pack_into(buf, _FLAGS_OFFSET, flags & ~FLAG_REJECTED)
    _bump_sequence(buf)


def record_writer(buf: Buffer, pid: int) -> None:
    """Say which process writes now: a peer that took over publishing
    (``_master.election``) before it has anything new to publish, so that
    ``hotcfg status`` and ``wait`` find a live writer."""
    _bump_sequence(buf)
    _U32.pack_into(buf, _WRITER_PID_OFFSET, pid)
    _bump_sequence(buf)


def repair_sequence(buf: Buffer) -> bool:
    """Make an odd sequence even again: its writer died in the middle of a
    header update (``kill -9``), and a peer that took over writes next.
    Only the one writer may call it. Returns whether it was odd."""
    seq = _get_u64(buf, SEQ_OFFSET)
    if seq % 2 == 0:
        return False
    _U64.pack_into(buf, SEQ_OFFSET, seq + 1)
    return True


def read_role(buf: Buffer) -> int:
    """The role alone (one aligned 2-byte load, no seqlock): what a peer
    waits for before it trusts a segment its publisher is still starting."""
    role: int = _U16.unpack_from(buf, _ROLE_OFFSET)[0]
    return role


def record_role(buf: Buffer, role: int) -> None:
    """Say who publishes (``ROLE_*``): set at creation, and again when a
    process's publisher becomes a Gunicorn master's (a preloaded app that
    read its config at import)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    _bump_sequence(buf)
    _U16.pack_into(buf, _ROLE_OFFSET, role)
    _bump_sequence(buf)


def record_validating(buf: Buffer, name: str, *, since: float) -> None:
    """Record that the user's validator ``name`` runs since ``since``
    (``hotcfg status``: "validating since"); ``since=0`` clears it."""
    label = _clip(name, VALIDATOR_MAX_BYTES) if since else b""
    _bump_sequence(buf)
    _VALIDATING.pack_into(buf, _VALIDATING_OFFSET, since, len(label))
    at = _VALIDATING_OFFSET + _VALIDATING.size
    buf[at : at + len(label)] = label
    _bump_sequence(buf)


def read_consistent(
    buf: Buffer, *, attempts: int = 200, pause: Callable[[], None] | None = None
) -> tuple[Live, bytes]:
    """Copy the live payload and its description as of one single publish.

    The rule, and why it is enough (docs/design.md, "Torn reads"):

    1. Read the generation ``G`` (one aligned 8-byte load) and the
       descriptor in the slot of ``G``'s parity; it must say ``G``.
    2. Copy the payload it describes.
    3. Accept if the writing generation is now at most ``G + 1`` and the CRC
       matches. The writer announces a generation before writing its
       payload or its descriptor, and plans each payload around the live
       one (:func:`plan_offset`): ``G + 1`` touches neither ``G``'s bytes
       nor ``G``'s descriptor slot; only ``G + 2`` or later can, and it
       announces itself first.

    The reader never waits for the writer (no seqlock on this path), and a
    retry needs two publishes to start during one copy, so a writer that
    publishes continuously, or one preempted in the middle of a publish,
    cannot starve readers.

    Args:
        buf: the segment.
        attempts: how many torn reads to tolerate before giving up.
        pause: called between attempts (the caller's way to yield the CPU).

    Raises:
        CorruptSegmentError: no consistent copy within ``attempts``, or the
            bytes are not a segment at all.
    """
    _check_identity(buf)
    reason = "no attempt"
    for _ in range(max(1, attempts)):
        result = _attempt_read(buf)
        if not isinstance(result, str):
            return result
        reason = result
        if pause is not None:
            pause()
    raise CorruptSegmentError(f"no consistent segment read: {reason}")


def _check_identity(buf: Buffer) -> None:
    if len(buf) < HEADER_SIZE:
        raise CorruptSegmentError(f"segment too short ({len(buf)} bytes)")
    magic, layout, _flags, header_size = struct.unpack_from("<8sHHI", buf, 0)
    if magic != MAGIC:
        raise CorruptSegmentError("not a hotcfg segment (bad magic)")
    if layout != LAYOUT_VERSION or header_size != HEADER_SIZE:
        raise CorruptSegmentError(f"unsupported segment layout {layout}")


def _attempt_read(buf: Buffer) -> tuple[Live, bytes] | str:
    """One try of :func:`read_consistent`: the copy, or why to try again."""
    generation = _load_u64(buf, GENERATION_INDEX)
    live = _read_desc(buf, generation)
    start, length = live.payload_offset, live.payload_length
    if live.generation != generation:
        reason = "descriptor being rewritten"
    elif start < DATA_START or length > MAX_PAYLOAD_BYTES or start + length > len(buf):
        reason = "payload out of bounds"
    else:
        payload = bytes(buf[start : start + length])
        if read_writing(buf) > generation + 1:
            reason = "payload reused during read"
        elif zlib.crc32(payload) != live.payload_crc:
            reason = "checksum mismatch"
        else:
            return live, payload
    return reason


def write_worker(
    buf: Buffer, slot: int, *, pid: int, generation: int, applied_at: float
) -> None:
    """Record in ``slot`` that ``pid`` applied ``generation``."""
    if not 0 <= slot < WORKER_SLOTS:
        raise ValueError(f"worker slot {slot} out of range")
    _SLOT.pack_into(
        buf, TABLE_OFFSET + slot * _SLOT.size, pid, generation, applied_at, 0
    )


def clear_worker(buf: Buffer, slot: int) -> None:
    """Free a slot (its worker exited)."""
    write_worker(buf, slot, pid=0, generation=0, applied_at=0.0)


def read_workers_slot(buf: Buffer, slot: int) -> int:
    """The pid in ``slot`` (0: free)."""
    pid: int = _SLOT.unpack_from(buf, TABLE_OFFSET + slot * _SLOT.size)[0]
    return pid


def read_workers(buf: Buffer) -> list[WorkerRecord]:
    """Every occupied slot of the worker table."""
    records = []
    for slot in range(WORKER_SLOTS):
        pid, generation, applied_at, _ = _SLOT.unpack_from(
            buf, TABLE_OFFSET + slot * _SLOT.size
        )
        if pid > 0:
            records.append(WorkerRecord(slot, pid, generation, applied_at))
    return records
