"""PURE: which of the documents an etcd key's range holds this master
serves, and who made it: the key's (``main``) or its canary's.

The source holds the raw values of ``K``, ``K#canary`` and ``K#audit``
(``rollout``) as the last read or watch response left them; these
functions decide, from those values and this master's own host label,
what a ``load()`` serves, at every load. Nothing else decides it: a master
outside a canary's selection never serves the canary's content, whatever
another process thinks.

A canary record that cannot be read (too large to hold, not base64, not a
``hotcfg-canary`` record) is served by nobody: its selector is unknown, so
every master serves ``K`` and says why (:attr:`Track.unusable`).

Must not import ``os``, ``mmap``, ``signal``, ``threading``, ``time`` or
``socket``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .answer import Elided, Field, Garbled
from .rollout import Audit, Canary

MAIN = "main"
CANARY = "canary"
#: The largest audit record read; a larger one is no provenance.
AUDIT_MAX_BYTES = 64 * 1024


def canary_record_bytes(max_bytes: int) -> int:
    """The largest canary record held for content of up to ``max_bytes``:
    JSON escapes (a newline is two bytes) and the fields around it."""
    return 2 * max_bytes + 4096


@dataclass(frozen=True, slots=True)
class Held:
    """A key of the range as held: its value (None: no such key) and the
    revision of its last change (its put, or its deletion; 0: never seen)."""

    value: Field | None = None
    mod_revision: int = 0


@dataclass(frozen=True, slots=True)
class Track:
    """What this master serves from the held range.

    Attributes:
        name: :data:`MAIN` or :data:`CANARY`.
        canary: the canary record, when one is held and reads.
        unusable: why a held canary record is served by nobody, or None.
    """

    name: str
    canary: Canary | None = None
    unusable: str | None = None


def choose(canary: Held, *, host: str, max_bytes: int) -> Track:
    """The track ``host`` is on, given the held canary record."""
    value = canary.value
    if value is None:
        return Track(MAIN)
    limit = canary_record_bytes(max_bytes)
    if isinstance(value, Garbled):
        return Track(MAIN, unusable="etcd sent it as no base64")
    size = value.size if isinstance(value, Elided) else len(value)
    if isinstance(value, Elided) or size > limit:
        return Track(
            MAIN,
            unusable=f"the record is {size} bytes, over the {limit} bytes a "
            f"canary of HOTCFG_MAX_BYTES={max_bytes} may take",
        )
    try:
        record = Canary.decode(value)
    except ValueError as exc:
        return Track(MAIN, unusable=str(exc))
    if record.selector.selects(host):
        return Track(CANARY, canary=record)
    return Track(MAIN, canary=record)


def provenance(
    track: Track, *, key: Held, audit: Held, canary: Held | None = None
) -> Audit | None:
    """Who made what ``track`` serves, and why: the canary's author and
    message; for the key, the audit record etcd wrote in one transaction
    (the same ``mod_revision``) with the key, or with the canary's deletion
    (an abort: this host is back on the key); None when not known."""
    if track.name == CANARY:
        assert track.canary is not None
        record = track.canary
        return Audit(
            "canary",
            record.author,
            record.message,
            record.at,
            selector=record.selector.describe(),
        )
    if (
        key.value is None
        or not isinstance(audit.value, bytes)
        or audit.mod_revision not in _changes(key, canary)
        or len(audit.value) > AUDIT_MAX_BYTES
    ):
        return None
    try:
        return Audit.decode(audit.value)
    except ValueError:
        return None


def _changes(key: Held, canary: Held | None) -> tuple[int, ...]:
    """The revisions whose audit record speaks for the key as served: its
    own put, and the canary's deletion."""
    if canary is not None and canary.value is None and canary.mod_revision:
        return (key.mod_revision, canary.mod_revision)
    return (key.mod_revision,)
