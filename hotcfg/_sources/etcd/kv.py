"""Master side: etcd's key-value calls as hotcfg makes them, over the
gateway ``client``: a key read (:func:`read_key_from`, :func:`read_key`),
a key with its canary and audit record in one read (:func:`read_range_from`),
and the keys under a prefix read at one revision (:func:`read_prefix_from`).
Writes (``hotcfg push``, ``promote``, ``abort``) are ``txn``'s.

A value over the limit is held as its size only (``answer``'s
:class:`Elided`), so a key too large to publish is still read, with its
revision, and refused by its size rather than retried forever.

Must not import the source, the watch or anything of the master; never on
a worker's request path.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..locations import EtcdTarget
from . import keytree, rollout
from .access import EtcdAccess
from .answer import MARK, Elided, Field, Garbled, decoded
from .client import TooLarge, b64, call, first_answer, not_etcd


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as read: its value (None: no such key; :class:`Elided`: one
    too large to hold, by its size), the revision it was last written at
    (0: no such key) and the store's revision."""

    value: Field | None
    mod_revision: int
    revision: int


def read_key_from(
    endpoint: tuple[str, int],
    key: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
) -> KeyState:
    """Read ``key`` from ``endpoint`` (``/v3/kv/range``); a value over
    ``max_bytes`` is not held, only its size (:class:`Elided`).

    Raises:
        Unavailable: no answer, or an error from etcd.
    """
    reply = call(
        endpoint,
        "/v3/kv/range",
        {"key": b64(key.encode())},
        access=access,
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )
    try:
        revision = int(reply["header"]["revision"])
        kvs = reply.get("kvs") or []
        if not kvs:
            return KeyState(None, 0, revision)
        value = decoded(kvs[0].get("value", ""))
        return KeyState(value, int(kvs[0]["mod_revision"]), revision)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise not_etcd(endpoint) from exc


@dataclass(frozen=True, slots=True)
class RangeState:
    """A key, its canary and its audit record as one read at one revision
    (``rollout.watch_range``): each key present as read (value and
    ``mod_revision``; absent: not in the dict), and the store's revision."""

    found: dict[str, tuple[Field, int]]
    revision: int


def read_range_from(
    endpoint: tuple[str, int],
    key: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
    value_bytes: int,
) -> RangeState:
    """Read ``key``, ``key#canary`` and ``key#audit`` from ``endpoint`` in
    one ``/v3/kv/range`` over ``rollout.watch_range(key)``; any other key
    of the range is left out. A value over ``value_bytes`` is held as its
    size only.

    Raises:
        TooLarge: the answer is over ``max_bytes`` even so (keys of the
            range that are none of the three, many and long).
        Unavailable: no answer, or an error from etcd (:class:`AccessDenied`:
            the user may not read the range).
    """
    start, end = rollout.watch_range(key)
    reply = call(
        endpoint,
        "/v3/kv/range",
        {"key": b64(start), "range_end": b64(end)},
        access=access,
        timeout_s=timeout_s,
        max_bytes=max_bytes,
        value_bytes=value_bytes,
    )
    wanted = {key, rollout.canary_key(key), rollout.audit_key(key)}
    try:
        revision = int(reply["header"]["revision"])
        found = {}
        for kv in reply.get("kvs") or []:
            name = key_text(kv["key"])
            if name in wanted:
                found[name] = (decoded(kv.get("value", "")), int(kv["mod_revision"]))
        return RangeState(found, revision)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise not_etcd(endpoint) from exc


@dataclass(frozen=True, slots=True)
class PrefixState:
    """The keys under a prefix as read (whole key -> value, or
    :class:`Elided` for one too large to hold), the store's revision, and
    the newest key's ``mod_revision`` (0: no keys). ``too_large``: the
    answer's size when it was over its budget even so, and nothing is held."""

    values: dict[str, Field]
    revision: int
    changed_at: int = 0
    too_large: int = 0


def key_text(encoded: object) -> str:
    """A base64 key from the gateway as text; bytes that are not UTF-8 stay
    as surrogates, for ``keytree`` to refuse by name. A key too long to
    hold, or not base64, is a name starting with :data:`MARK` (its size or
    none, and its digest: two never collide) for ``load()`` to refuse."""
    key = decoded(encoded)
    if isinstance(key, Elided):
        return f"{MARK}{key.size}/{key.digest}"
    if isinstance(key, Garbled):
        return f"{MARK}/{key.digest}"
    return key.decode("utf-8", "surrogateescape")


def read_prefix_from(
    endpoint: tuple[str, int],
    prefix: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
    value_bytes: int,
) -> PrefixState:
    """Read every key under ``prefix`` from ``endpoint`` (``/v3/kv/range``
    with etcd's prefix ``range_end``); a value over ``value_bytes`` is not
    held, only its size, and an answer over ``max_bytes`` even so holds
    nothing but its size and revision (``too_large``).

    Raises:
        Unavailable: no answer, or an error from etcd.
    """
    start = prefix.encode()
    try:
        reply = call(
            endpoint,
            "/v3/kv/range",
            {"key": b64(start), "range_end": b64(keytree.range_end(start))},
            access=access,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            value_bytes=value_bytes,
        )
    except TooLarge as exc:
        if not exc.revision:
            raise not_etcd(endpoint) from exc
        return PrefixState({}, exc.revision, exc.revision, too_large=exc.size)
    try:
        revision = int(reply["header"]["revision"])
        kvs = reply.get("kvs") or []
        values = {key_text(kv["key"]): decoded(kv.get("value", "")) for kv in kvs}
        changed_at = max((int(kv["mod_revision"]) for kv in kvs), default=0)
        return PrefixState(values, revision, changed_at)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise not_etcd(endpoint) from exc


def read_key(
    target: EtcdTarget, *, access: EtcdAccess, timeout_s: float, max_bytes: int
) -> KeyState:
    """Read the target's key from the first endpoint that answers.

    Raises:
        UnreachableError: no endpoint answered.
        SourceError: no endpoint answered, and one refused (auth, TLS).
    """
    return first_answer(
        target,
        lambda endpoint: read_key_from(
            endpoint,
            target.key,
            access=access,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
        ),
    )
