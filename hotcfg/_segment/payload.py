"""The payload format: validated mapping <-> msgpack bytes <-> Snapshot.

Owns msgpack (:func:`encode`, :func:`decode_payload`), the frozen values
a worker serves (maps as ``_content.frozen.FrozenDict``, arrays as tuples), lazy
sections (:func:`decode_section`), and :func:`decode`, the one call
"segment bytes in, Snapshot out" that joins the two halves.

PURE: bytes in, values out. Must not import ``os``, ``mmap``, ``signal``,
``threading`` or ``time``. It may import ``_segment.layout`` (for :func:`decode`),
``_segment.snapshot`` and ``_errors``; ``_segment.layout`` never imports it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from .._content.frozen import FrozenDict
from .._errors import CorruptSegmentError, ValidationError
from .layout import MAX_PAYLOAD_BYTES, Buffer, read_consistent
from .snapshot import Section, Sections, Snapshot

# Lazy sections. In a large payload, each top-level value that packs to at
# least SECTION_MIN_BYTES is stored as an ext value holding its own packed
# bytes. A worker's switch then unpacks only the outer map, and a section on
# its first access (``_segment.snapshot.Sections``); the master still decodes every
# section back before publishing. Small payloads never have sections, so the
# common case costs nothing more. Why and what it changes: docs/design.md,
# "Lazy sections".
LAZY_MIN_BYTES = 256 * 1024
SECTION_MIN_BYTES = 16 * 1024
SECTION_EXT = 1


def _pack(data: Any) -> bytes:
    packed: bytes = msgpack.packb(data, use_bin_type=True, datetime=False)
    return packed


def encode(data: Mapping[str, Any], *, source: str = "<config>") -> bytes:
    """Pack a validated mapping (large sections as lazy sections).

    Args:
        data: the mapping.
        source: where it came from, for error messages.

    Raises:
        ValidationError: a value msgpack cannot carry, or the result is too big.
    """
    try:
        payload = _pack(data)
        if len(payload) >= LAZY_MIN_BYTES:
            outer: dict[str, Any] = {}
            for key, value in data.items():
                packed = _pack(value)
                big = len(packed) >= SECTION_MIN_BYTES
                outer[key] = msgpack.ExtType(SECTION_EXT, packed) if big else value
            payload = _pack(outer)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(f"cannot encode: {exc}", source=source) from exc
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValidationError(
            f"encoded size {len(payload)} exceeds {MAX_PAYLOAD_BYTES} bytes",
            source=source,
        )
    return payload


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"unexpected ext type {code}")


def _unpack(packed: bytes, ext_hook: Callable[[int, bytes], Any] = _no_ext) -> Any:
    """msgpack -> frozen values, with the cyclic collector paused.

    Unpacking a large config creates hundreds of thousands of containers;
    with the collector on, each few hundred allocations trigger a collection
    that walks them all again. None of them can form a cycle, so it is
    paused: a 1 MB config decodes in about 0.7x the time of a plain
    msgpack.unpackb (BENCHMARKS.md).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return msgpack.unpackb(
            packed,
            raw=False,
            use_list=False,
            strict_map_key=True,
            object_hook=FrozenDict,
            ext_hook=ext_hook,
        )
    finally:
        if collecting:
            gc.enable()


def decode_section(packed: bytes) -> Any:
    """One lazy section's value.

    Raises:
        CorruptSegmentError: undecodable, or a section inside a section.
    """
    try:
        return _unpack(packed)
    # msgpack documents no narrower base class for unpacking errors.
    except Exception as exc:
        raise CorruptSegmentError(f"undecodable section: {type(exc).__name__}") from exc


def decode_payload(
    payload: bytes,
    *,
    generation: int = 0,
    published_at: float = 0.0,
    source: str = "",
    lazy: bool = False,
) -> Snapshot:
    """Unpack a payload into an immutable :class:`Snapshot`.

    Args:
        lazy: leave sections packed until first accessed (a worker's switch);
            otherwise every section is decoded here (the master's check, the
            command line).

    Raises:
        CorruptSegmentError: anything that is not one msgpack map with string
            keys, or sections anywhere but at the top level.
    """
    sections: list[Section] = []

    def section(code: int, data: bytes) -> Any:
        if code != SECTION_EXT:
            return _no_ext(code, data)
        found = Section(data)
        sections.append(found)
        return found

    try:
        data = _unpack(payload, section)
    except Exception as exc:
        raise CorruptSegmentError(f"undecodable payload: {type(exc).__name__}") from exc
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise CorruptSegmentError("payload is not a mapping with string keys")
    if sections:
        # Every section the unpack met must be a top-level value.
        top = sum(type(v) is Section for v in data.values())
        if top != len(sections):
            raise CorruptSegmentError("payload has a section below the top level")
        data = Sections(dict(data), decode_section)
        if not lazy:
            data.decode_all()
    return Snapshot(generation, data, published_at, source)


def decode(buf: Buffer, *, attempts: int = 100) -> Snapshot:
    """Any bytes in; a Snapshot or CorruptSegmentError out, never anything else.

    ``attempts`` bounds the retries of :func:`read_consistent`; a retry needs
    two publishes to start during one copy, so a few are plenty even under a
    writer that publishes continuously.
    """
    header, payload = read_consistent(buf, attempts=attempts)
    return decode_payload(
        payload,
        generation=header.generation,
        published_at=header.published_at,
        source=header.source,
    )
