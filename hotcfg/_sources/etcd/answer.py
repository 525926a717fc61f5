"""PURE: etcd's JSON gateway answers, read in bounded memory, whatever they
hold (docs/design.md, "etcd: values over the limit").

A value in an answer (a read, a watch response) may be far larger than
``HOTCFG_MAX_BYTES``: etcd takes values up to its ``--max-request-bytes``,
and a watch catching up sends many events in one line. Refusing the whole
answer would leave the source at the same revision for good (it would ask
again and get the same answer), so an answer is read through a
:class:`LineReader` instead:

* every JSON string longer than ``string_limit`` characters is left out as
  it streams by, and replaced by a marker that keeps its length, the ``=``
  padding at its end and a SHA-256 of it: :func:`decoded` turns a marker
  into :class:`Elided` (the value's decoded size, and its identity), every
  other base64 string into its bytes (or :class:`Garbled`). The JSON
  around stays valid, so the answer's revision and every other field are
  still read, and the value's revision can be rejected with its real size;
* a line (a watch response, or a whole read's answer) still longer than
  ``budget`` once strings are left out is not kept: an :class:`Overflow`
  says how long it was and keeps its head, where etcd puts the ``header``
  (:func:`header_of`), and the reader goes on with the next line.

No I/O: chunks in, lines out. Must not import ``os``, ``mmap``, ``signal``,
``threading`` or ``time``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

#: Starts a marker; never in base64, nor in etcd's messages.
MARK = "\0"

_OUTSIDE = re.compile(rb'["\n]')
_INSIDE = re.compile(rb'["\\]')
_HEADER = re.compile(r'\{\s*(?:"result"\s*:\s*\{\s*)?"header"\s*:\s*')
_BACKSLASH = 0x5C
_NEWLINE = 0x0A


def base64_length(size: int) -> int:
    """How many base64 characters ``size`` bytes take."""
    return 4 * -(-size // 3)


@dataclass(frozen=True, slots=True)
class Elided:
    """A base64 string the reader did not keep: its decoded size, and a
    digest of its text (two different long keys never look alike)."""

    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Overflow:
    """A line longer than the budget even with long strings left out.

    Attributes:
        size: its length as sent, in bytes.
        head: the beginning of it as read (strings left out), where etcd
            puts the answer's ``header``.
    """

    size: int
    head: bytes


@dataclass(frozen=True, slots=True)
class Garbled:
    """A base64 field that is not base64. etcd never sends one; a proxy in
    between might. Held as what the revision holds, and rejected by it,
    rather than refused as an answer: the source moves on either way."""

    digest: str


#: A key or value as an answer gives it.
Field: TypeAlias = "bytes | Elided | Garbled"


def decoded(text: object) -> Field:
    """A base64 field of an answer (a key, a value): its bytes,
    :class:`Elided` for one the reader left out, :class:`Garbled` for one
    that is not base64."""
    if not isinstance(text, str):
        return Garbled(_digest(repr(text)))
    if text.startswith(MARK):
        try:
            length, pad, digest = text[1:].split("/")
            return Elided(int(length) // 4 * 3 - int(pad), digest)
        except ValueError:
            return Garbled(_digest(text))
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or not ASCII
        return Garbled(_digest(text))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def header_of(head: bytes) -> dict[str, Any] | None:
    """The ``header`` object an answer starts with (etcd's gateway writes
    the fields in the order of the protocol's messages, the header first),
    from its first bytes; None when they hold none."""
    text = head.decode("utf-8", "replace")
    found = _HEADER.match(text)
    if found is None:
        return None
    try:
        header, _ = json.JSONDecoder().raw_decode(text, found.end())
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


class LineReader:
    """Newline-separated JSON texts from chunks of bytes, each with its
    long strings left out, each kept only up to ``budget`` bytes.

    Args:
        string_limit: the longest string kept, in characters as sent.
        budget: the longest line kept, with its long strings left out.
    """

    def __init__(self, *, string_limit: int, budget: int) -> None:
        self.string_limit = string_limit
        self.budget = budget
        self._line = bytearray()  # this line so far, strings left out
        self._size = 0  # this line's length as sent
        self._head: bytes | None = None  # set once this line overflowed
        self._in_string = False
        self._escaped = False  # the string's last character was a backslash
        self._string = bytearray()  # the string so far, while it is kept
        self._length = 0  # the string's length as sent
        self._digest: Any = None  # set once the string is left out
        self._tail = b""  # its last two characters, for the padding

    @property
    def pending(self) -> int:
        """Bytes of a line begun and not ended yet."""
        return self._size

    def feed(self, chunk: bytes) -> list[bytes | Overflow]:
        """The lines that ``chunk`` ends (without their newline)."""
        lines: list[bytes | Overflow] = []
        pos, end = 0, len(chunk)
        while pos < end:
            if self._in_string:
                pos = self._string_part(chunk, pos)
                continue
            found = _OUTSIDE.search(chunk, pos)
            stop = end if found is None else found.start()
            self._size += stop - pos
            self._keep(chunk[pos:stop])
            if found is None:
                break
            pos = stop + 1
            if chunk[stop] == _NEWLINE:
                lines.append(self._end_line())
            else:
                self._size += 1
                self._in_string = True
                self._string.clear()
                self._length, self._digest, self._tail = 0, None, b""
        return lines

    def end(self) -> bytes | Overflow | None:
        """What came after the last newline (an answer that ends without
        one, or a stream's last words); None when nothing did."""
        if not self._size:
            return None
        if self._in_string:  # cut off inside a string: kept as it came
            self._keep(b'"' + self._string)
            self._in_string = False
        return self._end_line()

    def _string_part(self, chunk: bytes, pos: int) -> int:
        """Take string characters from ``pos``; where the reading goes on."""
        if self._escaped:  # the character after a backslash, whatever it is
            self._escaped = False
            self._take(chunk[pos : pos + 1])
            return pos + 1
        found = _INSIDE.search(chunk, pos)
        stop = len(chunk) if found is None else found.start()
        self._take(chunk[pos:stop])
        if found is None:
            return stop
        if chunk[stop] == _BACKSLASH:
            self._take(chunk[stop : stop + 1])
            self._escaped = True
        else:
            self._size += 1
            self._close_string()
        return stop + 1

    def _take(self, part: bytes) -> None:
        self._size += len(part)
        self._length += len(part)
        if self._digest is None:
            self._string += part
            if len(self._string) <= self.string_limit:
                return
            self._digest = hashlib.sha256(self._string)
            self._tail = bytes(self._string[-2:])
            self._string.clear()
            return
        self._digest.update(part)
        self._tail = (self._tail + part)[-2:]

    def _close_string(self) -> None:
        self._in_string = False
        if self._digest is None:
            self._keep(b'"' + self._string + b'"')
            return
        pad = self._tail.count(b"=")
        marker = f"\\u0000{self._length}/{pad}/{self._digest.hexdigest()}"
        self._keep(b'"' + marker.encode() + b'"')

    def _keep(self, part: bytes) -> None:
        if self._head is not None:
            return
        self._line += part
        if len(self._line) > self.budget:
            self._head = bytes(self._line[: self.budget])
            self._line = bytearray()

    def _end_line(self) -> bytes | Overflow:
        line: bytes | Overflow = (
            bytes(self._line)
            if self._head is None
            else Overflow(self._size, self._head)
        )
        self._line = bytearray()
        self._size = 0
        self._head = None
        return line
