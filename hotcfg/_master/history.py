"""The master's record of its last good generations, kept across restarts.

Owns what is inside the history file, ``<segment dir>/<name>-<tag>.history``,
beside the segments, in the same private (``0700``) directory; which file a
master uses, and that no other live master uses it, is ``_master.claim``'s job. The
codec (:func:`encode_entries`, :func:`decode_entries`) is pure: bytes in,
entries out, or :class:`CorruptHistoryError`. The file functions
(:func:`load`, :func:`save`) trust a file only if it is a regular ``0600``
file of ours, no larger than :data:`MAX_FILE_BYTES`, opened without
following symlinks; a new one is written whole to a temporary name created
with ``O_EXCL | O_NOFOLLOW`` and renamed over the old, so a reader (a
restarting master) sees the old file or the new one, never half of one.

Format: one msgpack map, never pickle::

    {"format": "hotcfg-history", "version": 3,
     "entries": [{"generation": int, "published_at": float, "source": str,
                  "size": int, "hash": str, "payload": bytes,
                  "base": bytes | None, "base_hash": str | None,
                  "action": str | None, "author": str | None,
                  "message": str | None}, ...]}

``payload`` is the generation as published (``hotcfg diff`` shows it);
``hash`` is its hex BLAKE2b (16 bytes), the digest the publisher compares;
``size`` is its length. ``base`` is the same generation before the
``HOTCFG_SET__*`` overrides and the validators (the layers merged), when
there were overrides; None when there were none (or they changed nothing),
and then the payload itself is what is published again. A rollback and a
cold start publish the base again, under the overrides and validators of
the master that does it, never the overrides of the master that recorded
it. ``base_hash`` is the base's hex BLAKE2b. The
hashes and the size are checked when read, so a flipped byte is a corrupt
file, not a wrong configuration to roll back to. Entries are oldest first,
generations strictly increasing.

``action``, ``author`` and ``message`` say who made the generation and
why, when the publisher knows: an etcd key's audit record written in the
transaction that changed it, a canary's author and message
(``_sources.etcd.rollout``), or ``hotcfg rollback -m MSG --author WHO``
(action ``rollback``); None each when not known, and then left out of
the entry (the only fields that may be). Each is at most
:data:`TEXT_MAX_CHARS` characters.

Version 1 (before ``base``) is still read: its payloads hold the overrides
of their time, and are published again with the current ones on top.
Version 2 (before ``action``, ``author`` and ``message``) is still read,
with None for each.

Must not import ``_master.publisher``, ``_master.control`` or anything above them.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from .._errors import CorruptHistoryError, SegmentError
from .._segment.shm import _check_owned_file
from .._sources.files import read_fd

_logger = logging.getLogger(__name__)

FORMAT = "hotcfg-history"
VERSION = 3
#: Versions read; 1 has no ``base``, 2 no author (see the module docstring).
READABLE = (1, 2, 3)
SUFFIX = ".history"
#: The file is never written larger than this, and a larger one is refused
#: unread: the oldest entries are dropped first to stay under it.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Longest source label kept (the segment header keeps 256 bytes of it too).
SOURCE_MAX_CHARS = 1024
#: Longest action, author or message kept; a longer one is cut.
TEXT_MAX_CHARS = 1024
_TMP_GRACE_S = 60.0
_FIELDS_V1 = ("generation", "published_at", "source", "size", "hash", "payload")
_FIELDS_V2 = (*_FIELDS_V1, "base", "base_hash")
_WHO = ("action", "author", "message")
_FIELDS = (*_FIELDS_V2, *_WHO)


def digest(payload: bytes) -> bytes:
    """The BLAKE2b (16-byte) digest of a payload: how the publisher tells
    contents apart, and what the history records."""
    return hashlib.blake2b(payload, digest_size=16).digest()


def content_hash(payload: bytes) -> str:
    """:func:`digest` in hex."""
    return digest(payload).hex()


@dataclass(frozen=True, slots=True)
class Entry:
    """One published generation: its payload (msgpack, as published) and,
    when it differs, its base (the same before the overrides and the
    validators; see the module docstring)."""

    generation: int
    published_at: float
    source: str
    size: int
    hash: str
    payload: bytes
    base: bytes | None = None
    base_hash: str | None = None
    action: str | None = None
    author: str | None = None
    message: str | None = None

    @classmethod
    def of(
        cls,
        generation: int,
        payload: bytes,
        *,
        published_at: float,
        source: str,
        base: bytes | None = None,
        action: str | None = None,
        author: str | None = None,
        message: str | None = None,
    ) -> Entry:
        if base == payload:
            base = None
        return cls(
            generation,
            published_at,
            source[:SOURCE_MAX_CHARS],
            len(payload),
            content_hash(payload),
            payload,
            base,
            None if base is None else content_hash(base),
            _cut(action),
            _cut(author),
            _cut(message),
        )

    @property
    def document(self) -> bytes:
        """What a rollback or a cold start publishes again (msgpack), under
        the overrides and validators of the day: the base, else the payload."""
        return self.payload if self.base is None else self.base

    @property
    def stored_bytes(self) -> int:
        """The payload's and the base's bytes together."""
        return self.size + (0 if self.base is None else len(self.base))

    def describe(self) -> dict[str, object]:
        """Everything but the payload and the base (``hotcfg history``)."""
        return {
            "generation": self.generation,
            "published_at": self.published_at,
            "source": self.source,
            "size": self.size,
            "hash": self.hash,
            "action": self.action,
            "author": self.author,
            "message": self.message,
        }


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:TEXT_MAX_CHARS]


def encode_entries(entries: Sequence[Entry], *, kind: str = FORMAT) -> bytes:
    """The file's bytes for ``entries`` (oldest first); ``kind`` is the
    ``format`` field (``_master.coldstart`` keeps one entry in a file of
    its own kind)."""
    doc = {
        "format": kind,
        "version": VERSION,
        "entries": [_fields_of(e) for e in entries],
    }
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def _fields_of(entry: Entry) -> dict[str, object]:
    """An entry as the file keeps it: every field, but who made it only
    where known (an entry without costs no more than in version 2)."""
    fields = {name: getattr(entry, name) for name in _FIELDS_V2}
    for name in _WHO:
        if getattr(entry, name) is not None:
            fields[name] = getattr(entry, name)
    return fields


def _entry(raw: object, index: int, *, version: int) -> Entry:
    fields = _FIELDS_V2 if version >= 2 else _FIELDS_V1
    optional = _WHO if version >= 3 else ()
    if not isinstance(raw, dict) or not set(fields) <= set(raw) <= {
        *fields,
        *optional,
    }:
        raise CorruptHistoryError(f"entry {index} is not a history entry")
    generation, published_at = raw["generation"], raw["published_at"]
    source, size, digest, payload = (
        raw["source"],
        raw["size"],
        raw["hash"],
        raw["payload"],
    )
    base, base_hash = raw.get("base"), raw.get("base_hash")
    who = tuple(raw.get(name) for name in _WHO)  # absent: None
    if not (
        type(generation) is int
        and generation > 0
        and type(published_at) is float
        and type(source) is str
        and type(size) is int
        and type(digest) is str
        and type(payload) is bytes
        and (base is None or type(base) is bytes)
        and (base_hash is None or type(base_hash) is str)
        and all(text is None or type(text) is str for text in who)
    ):
        raise CorruptHistoryError(f"entry {index} has a field of the wrong type")
    if size != len(payload) or digest != content_hash(payload):
        raise CorruptHistoryError(
            f"entry {index} (generation {generation}): payload does not match "
            "its size or hash"
        )
    if (None if base is None else content_hash(base)) != base_hash:
        raise CorruptHistoryError(
            f"entry {index} (generation {generation}): base does not match its hash"
        )
    action, author, message = who
    return Entry(
        generation,
        published_at,
        source,
        size,
        digest,
        payload,
        base,
        base_hash,
        action,
        author,
        message,
    )


def decode_entries(
    data: bytes, *, max_bytes: int = MAX_FILE_BYTES, kind: str = FORMAT
) -> list[Entry]:
    """Entries from a history file's bytes (or a file of another ``kind``).

    Any bytes give either a list of entries or a CorruptHistoryError, never
    anything else.

    Raises:
        CorruptHistoryError: too large, not msgpack, not our format or
            version, a field of the wrong type, a payload or base that does
            not match its hash, or generations out of order.
    """
    if len(data) > max_bytes:
        raise CorruptHistoryError(f"{len(data)} bytes, more than {max_bytes}")
    try:
        doc = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    # msgpack documents no narrower base class for unpacking errors.
    except Exception as exc:
        raise CorruptHistoryError(f"not msgpack: {type(exc).__name__}") from exc
    if not isinstance(doc, dict) or doc.get("format") != kind:
        raise CorruptHistoryError(f"not a {kind.replace('-', ' ')} file")
    version = doc.get("version")
    if type(version) is not int or version not in READABLE:
        raise CorruptHistoryError(f"unsupported history version {version!r}")
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, list):
        raise CorruptHistoryError("no list of entries")
    entries = [_entry(raw, i, version=version) for i, raw in enumerate(raw_entries)]
    if any(a.generation >= b.generation for a, b in itertools.pairwise(entries)):
        raise CorruptHistoryError("generations are not in increasing order")
    return entries


def _refuse_ext(code: int, data: bytes) -> object:
    raise ValueError(f"unexpected ext type {code}")


def trim(
    entries: Sequence[Entry], *, keep: int, max_bytes: int = MAX_FILE_BYTES
) -> list[Entry]:
    """The newest ``keep`` entries whose encoded file fits ``max_bytes``
    (the oldest go first; with a single entry too big, none)."""
    kept = list(entries[-keep:]) if keep > 0 else []
    # Encoding overhead per entry is small and bounded (about 125 bytes, 35
    # more with a base for its hash); the payloads dominate.
    while kept and sum(_estimate(e) for e in kept) > max_bytes:
        kept.pop(0)
    return kept


def _estimate(entry: Entry) -> int:
    """An upper bound of the entry's encoded size."""
    overhead = 128 if entry.base is None else 168
    who = sum(
        16 + len(text) * 4
        for text in (entry.action, entry.author, entry.message)
        if text is not None
    )
    return entry.stored_bytes + overhead + len(entry.source) * 4 + who


def path_for(
    directory: str,
    name: str,
    source: str,
    *,
    service: Sequence[str] = (),
    suffix: str = SUFFIX,
) -> str:
    """``<directory>/<name>-<tag><suffix>``: the tag is 4 bytes of BLAKE2b
    of ``source`` (a label) and ``service`` (``_master.claim.identity``), so
    services that differ in either have files of their own."""
    text = "\0".join((source, *service))
    tag = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=4)
    return os.path.join(directory, f"{name}-{tag.hexdigest()}{suffix}")


def read_private(path: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of the private file at ``path``; None if there is none.

    Raises:
        CorruptHistoryError: the file is not to be trusted (a symlink, not a
            regular file, not ours, readable by others, too large).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptHistoryError(f"cannot open {path}: {exc}") from exc
    try:
        info = _check_owned_file(fd, path)  # regular, ours, 0600
        if info.st_size > max_bytes:
            raise CorruptHistoryError(
                f"{path} has {info.st_size} bytes, more than {max_bytes}"
            )
        return read_fd(fd, max_bytes=max_bytes)
    except SegmentError as exc:
        raise CorruptHistoryError(str(exc)) from exc
    finally:
        os.close(fd)


def load(path: str, *, max_bytes: int = MAX_FILE_BYTES) -> list[Entry]:
    """The entries recorded at ``path``; none if there is no file.

    Raises:
        CorruptHistoryError: the file is not to be trusted (see
            :func:`read_private`) or not a history file; the caller logs the
            reason and starts afresh.
    """
    data = read_private(path, max_bytes=max_bytes)
    if data is None:
        return []
    try:
        return decode_entries(data, max_bytes=max_bytes)
    except CorruptHistoryError as exc:
        raise CorruptHistoryError(f"{path}: {exc}") from exc


def save(path: str, entries: Sequence[Entry]) -> None:
    """Replace the file at ``path`` with ``entries``, atomically.

    Raises:
        OSError: the file cannot be written (the old one stays).
    """
    write_private(path, encode_entries(entries))


def write_private(path: str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data``, atomically, as a ``0600``
    file: written whole under a temporary name made with ``O_EXCL |
    O_NOFOLLOW``, then renamed over the old one.

    Raises:
        OSError: the file cannot be written (the old one stays).
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # No fsync: the file has to outlive the master, not the machine
            # (it lives in /dev/shm by default), and a publish must not wait
            # for a disk. A file cut short by a crash is refused as corrupt.
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temps(path: str) -> None:
    """Remove temporary files a killed master left while saving ``path``."""
    directory, name = os.path.split(path)
    prefix = f".{name}.tmp-"
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory):
            if not entry.startswith(prefix):
                continue
            full = os.path.join(directory, entry)
            with contextlib.suppress(OSError):
                info = os.lstat(full)
                if time.time() - info.st_mtime > _TMP_GRACE_S:
                    os.unlink(full)


class History:
    """The master's history: the newest ``keep`` generations, in memory and
    in the file. ``keep=0`` keeps nothing and never touches the file.

    Attributes:
        path: the history file.
        keep: how many generations are kept (``HOTCFG_HISTORY``).
    """

    def __init__(self, path: str, *, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._entries: list[Entry] = []
        # Callers hold the publisher's lock already; this one keeps the file
        # writes ordered whoever calls.
        self._lock = threading.Lock()
        _LIVE.add(self)

    @classmethod
    def open(cls, path: str, *, keep: int) -> History:
        """The history recorded at ``path`` (a corrupt or untrusted file is
        logged with its reason and replaced at the next publish)."""
        history = cls(path, keep=keep)
        if keep <= 0:
            return history
        remove_stale_temps(path)
        try:
            history._entries = trim(load(path), keep=keep)
        except CorruptHistoryError as exc:
            _logger.warning("hotcfg: ignoring the history file: %s", exc)
        return history

    @property
    def entries(self) -> list[Entry]:
        """Oldest first."""
        return list(self._entries)

    @property
    def last_generation(self) -> int:
        """The newest recorded generation (0 when there is none)."""
        return self._entries[-1].generation if self._entries else 0

    def find(self, generation: int) -> Entry | None:
        return next((e for e in self._entries if e.generation == generation), None)

    def before(self, generation: int) -> Entry | None:
        """The newest entry older than ``generation``."""
        older = [e for e in self._entries if e.generation < generation]
        return older[-1] if older else None

    def add(self, entry: Entry) -> None:
        """Record a published generation and write the file (a failure to
        write is logged: publishing never depends on the history)."""
        if self.keep <= 0:
            return
        with self._lock:
            entries = [e for e in self._entries if e.generation != entry.generation]
            entries.append(entry)
            entries.sort(key=lambda e: e.generation)
            self._entries = trim(entries, keep=self.keep)
            try:
                save(self.path, self._entries)
            except OSError as exc:
                _logger.warning(
                    "hotcfg: cannot write the history file %s: %s", self.path, exc
                )


# Fork story: a fork while the master's thread writes the file would leave
# the child a locked lock. The child never writes (its publisher is inert),
# but gets a fresh lock all the same.
_LIVE: weakref.WeakSet[History] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for history in list(_LIVE):
        history._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
