"""The master's copy of its last good payload, for a cold start with the
store down.

Owns what is inside the cache file, ``<segment dir>/<name>-<tag>.cache``,
beside the segment and the history file; which file a master uses, and
that no other live master uses it, is ``_master.claim``'s job. It holds one entry
in the history's format (the payload as published and, when it differs,
the same before the ``HOTCFG_SET__*`` overrides and the validators; when,
from where, sizes and hashes), under its own ``format`` name,
``hotcfg-cache``; the history's file functions read and write it
(``0600``, ``O_EXCL`` temporary then rename, read without following
symlinks, owner and mode checked, size capped, msgpack only). A cold start
publishes the entry's base (``Entry.document``) under the overrides and
validators of the master that starts, never those of the one that wrote it.

Kept only for a source that can be unreachable (etcd, HTTP): a file source that
is missing at boot refuses to start, as it always did, so it has no cache.
The publisher writes the file after each publish, and reads it back only
when its first read of the source failed because the store was unreachable
(``UnreachableError``).

Must not import ``_master.publisher``, ``_master.control`` or anything above them.
"""

from __future__ import annotations

import logging

from .._errors import CorruptHistoryError
from . import history as _history

_logger = logging.getLogger(__name__)

FORMAT = "hotcfg-cache"


def save(path: str, entry: _history.Entry) -> None:
    """Replace the cache with ``entry`` (a failure is logged: publishing
    never depends on the cache)."""
    if entry.stored_bytes > _history.MAX_FILE_BYTES // 2:
        return  # never written larger than it may be read back
    try:
        _history.write_private(path, _history.encode_entries([entry], kind=FORMAT))
    except OSError as exc:
        _logger.warning("hotcfg: cannot write the cache file %s: %s", path, exc)


def load(path: str) -> _history.Entry | None:
    """The entry cached at ``path``; None when there is none, or when the
    file is not to be trusted (logged with the reason).

    Trusted means: a regular ``0600`` file of ours, not a symlink, no larger
    than the cap, of the cache format, its payload matching its hash.
    """
    try:
        data = _history.read_private(path)
        if data is None:
            return None
        entries = _history.decode_entries(data, kind=FORMAT)
    except CorruptHistoryError as exc:
        _logger.warning("hotcfg: ignoring the cache file: %s", exc)
        return None
    if len(entries) != 1:
        _logger.warning("hotcfg: ignoring the cache file %s: not one entry", path)
        return None
    return entries[0]
