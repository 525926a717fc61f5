"""Command side: etcd's transaction and its reads of a range, as the
rollout commands (``push``, ``push --canary``, ``promote``, ``abort``,
``history``) make them, over the gateway ``client``.

* :func:`transact`: one ``/v3/kv/txn`` comparing keys' ``mod_revision``
  (0: the key must not exist), then puts and deletes, all at one revision
  or none; a lost compare reads the range back, so the caller can say what
  is there instead, or find that its own write landed (a retry after a
  member timed out with the write done); a write that lands reads it back
  too, as it is after the write.
* :func:`read_range`: the keys of a range, now or as of an older
  revision (etcd's MVCC keeps every revision back to its last compaction);
  a revision compacted away is :class:`Compacted`, not a failure.

Must not import the source, the watch or anything of the master or of the
command line; never on a worker's request path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..locations import EtcdTarget
from .access import EtcdAccess
from .answer import decoded
from .client import Unavailable, b64, call, first_answer, not_etcd

#: What etcd answers a read at a revision older than its last compaction.
_COMPACTED = "required revision has been compacted"
#: What etcd answers a read at a revision it has not reached.
_FUTURE = "required revision is a future revision"


@dataclass(frozen=True, slots=True)
class Entry:
    """One key as read: its value (None: too large to hold, or not
    base64), the revision it was last written at and the one it was
    created at."""

    value: bytes | None
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class Range:
    """The keys of a range as read at ``revision`` (the store's revision
    for a read now)."""

    entries: dict[str, Entry]
    revision: int

    def mod_revision(self, key: str) -> int:
        """``key``'s last write (0: no such key then)."""
        entry = self.entries.get(key)
        return entry.mod_revision if entry is not None else 0

    def value(self, key: str) -> bytes | None:
        entry = self.entries.get(key)
        return entry.value if entry is not None else None


class Compacted(Exception):
    """The revision asked for is older than etcd's last compaction."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"etcd compacted its history past revision {revision}")
        self.revision = revision


class FutureRevision(Exception):
    """The revision asked for is newer than the store's."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A transaction's outcome: ``succeeded``, the store's revision after it
    (the new one when it succeeded), and the range read back (``now``):
    after the writes, or as it is instead when a compare failed."""

    succeeded: bool
    revision: int
    now: Range | None = None


@dataclass(frozen=True, slots=True)
class Writes:
    """What one transaction compares and does.

    Attributes:
        compare: ``(key, mod_revision)``: each key must have been last
            written at that revision (0: must not exist).
        put: ``(key, value)`` written when every compare holds.
        delete: keys deleted when every compare holds.
        read_back: the range ``(start, end)`` read in the same
            transaction, after the writes (or instead of them when a
            compare fails).
    """

    compare: Sequence[tuple[str, int]]
    put: Sequence[tuple[str, bytes]] = ()
    delete: Sequence[str] = ()
    read_back: tuple[str, str] | None = None
    #: Largest answer read back.
    max_bytes: int = field(default=1 << 20)


def _entries(kvs: object) -> dict[str, Entry]:
    if not isinstance(kvs, list):
        return {}
    entries = {}
    for kv in kvs:
        key = decoded(kv["key"])
        value = decoded(kv.get("value", ""))
        if not isinstance(key, bytes):
            continue
        entries[key.decode("utf-8", "surrogateescape")] = Entry(
            value if isinstance(value, bytes) else None,
            int(kv.get("mod_revision") or 0),
            int(kv.get("create_revision") or 0),
        )
    return entries


def _range_request(start: str, end: str, revision: int | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "key": b64(start.encode()),
        "range_end": b64(end.encode()),
    }
    if revision is not None:
        request["revision"] = str(revision)
    return request


def transact(
    target: EtcdTarget,
    writes: Writes,
    *,
    access: EtcdAccess,
    timeout_s: float,
) -> Outcome:
    """Run ``writes`` as one ``/v3/kv/txn``, tried on the next endpoint when
    one does not answer (a retry of a write that landed loses its compare:
    the caller tells its own write by what it reads back).

    Raises:
        UnreachableError: no endpoint answered.
        SourceError: no endpoint answered, and one refused (auth, TLS,
            a permission missing on one of the keys).
    """
    size = sum(len(value) for _, value in writes.put)
    reads: list[dict[str, Any]] = (
        [{"request_range": _range_request(*writes.read_back, None)}]
        if writes.read_back is not None
        else []
    )
    request: dict[str, Any] = {
        "compare": [
            {
                "target": "MOD",
                "result": "EQUAL",
                "key": b64(key.encode()),
                "mod_revision": str(revision),
            }
            for key, revision in writes.compare
        ],
        "success": [
            {"request_put": {"key": b64(key.encode()), "value": b64(value)}}
            for key, value in writes.put
        ]
        + [
            {"request_delete_range": {"key": b64(key.encode())}}
            for key in writes.delete
        ]
        + reads,
        "failure": reads,
    }

    def attempt(endpoint: tuple[str, int]) -> Outcome:
        reply = call(
            endpoint,
            "/v3/kv/txn",
            request,
            access=access,
            timeout_s=timeout_s,
            max_bytes=max(size * 2, writes.max_bytes) + 65536,
        )
        try:
            revision = int(reply["header"]["revision"])
            now = None
            if writes.read_back is not None:
                responses = reply.get("responses") or [{}]
                kvs = responses[-1].get("response_range", {}).get("kvs") or []
                now = Range(_entries(kvs), revision)
            return Outcome(bool(reply.get("succeeded")), revision, now)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise not_etcd(endpoint) from exc

    return first_answer(target, attempt)


def read_range(
    target: EtcdTarget,
    start: str,
    end: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
    revision: int | None = None,
) -> Range:
    """The keys in ``[start, end)``, now or as of ``revision``.

    Raises:
        Compacted: ``revision`` is older than etcd's last compaction.
        FutureRevision: ``revision`` is newer than the store's.
        UnreachableError: no endpoint answered.
        SourceError: no endpoint answered, and one refused (auth, TLS).
    """
    request = _range_request(start, end, revision)

    def attempt(endpoint: tuple[str, int]) -> Range | Exception:
        try:
            reply = call(
                endpoint,
                "/v3/kv/range",
                request,
                access=access,
                timeout_s=timeout_s,
                max_bytes=max_bytes,
            )
        except Unavailable as exc:  # an answer, not a failure to answer
            if _COMPACTED in str(exc):
                return Compacted(revision or 0)
            if _FUTURE in str(exc):
                return FutureRevision(str(exc))
            raise
        try:
            return Range(
                _entries(reply.get("kvs") or []),
                revision or int(reply["header"]["revision"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise not_etcd(endpoint) from exc

    found = first_answer(target, attempt)
    if isinstance(found, Exception):
        raise found
    return found
