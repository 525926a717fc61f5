"""PURE: the keys under an etcd prefix as one nested mapping, and the range
that holds them (docs/design.md, "etcd: a prefix as a mapping").

``/app/config/db/timeout`` under the prefix ``/app/config/`` is the path
``("db", "timeout")``: the mapping ``{"db": {"timeout": value}}``. What has
no one meaning is refused, naming the etcd keys, so the last good
configuration keeps serving:

* a key that holds a value and is also the parent of other keys
  (``/app/config/db`` beside ``/app/config/db/timeout``): both keys named;
* an empty path segment (``/app/config/db//timeout``, ``/app/config/db/``);
* the prefix itself as a key (``/app/config/``): it has no name in the
  mapping;
* a key that is not UTF-8 (etcd keys are bytes; mapping keys are text).

Must not import ``os``, ``mmap``, ``signal``, ``threading`` or ``time``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import SourceError


def range_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes an etcd range or watch cover every key
    starting with ``prefix``: ``prefix`` with its last byte below 0xff
    incremented and what follows it dropped (etcd's ``GetPrefixRangeEnd``);
    ``b"\\0"`` (every key from ``prefix`` on) when there is none.
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def path_of(key: str, *, prefix: str, source: str) -> tuple[str, ...]:
    """The mapping path of ``key`` (a key under ``prefix``).

    Raises:
        SourceError: the key is the prefix itself, has an empty segment or
            is not UTF-8.
    """
    if not key.startswith(prefix):
        raise SourceError(f"key {key} is not under {prefix}", source=source)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        shown = key.encode("utf-8", "surrogateescape").decode(
            "ascii", "backslashreplace"
        )
        raise SourceError(f"key {shown} is not UTF-8 text", source=source) from None
    rest = key[len(prefix) :]
    if not rest:
        raise SourceError(
            f"key {key} is the prefix itself: a value there has no name in the "
            f"mapping; move it under {prefix} or delete it",
            source=source,
        )
    path = tuple(rest.split("/"))
    if "" in path:
        raise SourceError(
            f"key {key} has an empty path segment ('//' or a trailing '/')",
            source=source,
        )
    return path


def nest(values: Mapping[str, Any], *, prefix: str, source: str) -> dict[str, Any]:
    """The keys under ``prefix`` (whole etcd keys -> their parsed values) as
    one nested mapping.

    Keys are taken in sorted order, so the error for a set of keys is always
    the same one, and a key comes before every key it is the parent of (it
    is the start of theirs): a value met on the way down is a conflict.

    Raises:
        SourceError: a key has no place in a mapping (:func:`path_of`), or
            holds a value and is also the parent of another key (both named).
    """
    leaves: dict[tuple[str, ...], str] = {}  # path -> the key holding a value there
    for key in sorted(values):
        path = path_of(key, prefix=prefix, source=source)
        for depth in range(1, len(path)):
            holder = leaves.get(path[:depth])
            if holder is not None:
                raise _conflict(holder, key, source)
        leaves[path] = key
    root: dict[str, Any] = {}
    for path, key in leaves.items():
        node = root
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = values[key]
    return root


def _conflict(leaf: str, child: str, source: str) -> SourceError:
    return SourceError(
        f"key {leaf} holds a value and is also the parent of key {child}: a key "
        "is either a value or a folder of keys; delete or move one of them",
        source=source,
    )
