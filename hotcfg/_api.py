"""The request side: ``hotcfg.get()`` and friends, and a request's pin.

What application code calls (``get``, ``require``, ``snapshot``, ``latest``,
``generation``, ``on_change``, ``resource``) and what the integrations call
around a request (:func:`pin`, :func:`pin_once`, :func:`unpin`,
:class:`RequestScope`): every read goes to the snapshot pinned for the
request, else to this process's reader (``_runtime.reader``), which starts
hotcfg from the settings on first use.

Holds no state of its own: the reader, the change callbacks and the pin
are ``_runtime``'s. ``configure`` is ``_runtime``'s too, and re-exported
here so that the public functions have one home to look them up in.

Must not import ``_master`` or ``_sources``, directly or through what it
imports: this is a worker's per-request path, and it brings in no file
watcher and no etcd or HTTP client (a test imports it in a fresh process
and checks).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import _runtime
from ._runtime import configure as configure
from ._runtime import reader
from ._segment.snapshot import MISSING, Snapshot
from ._worker import import_time
from ._worker.reader import ChangeCallback
from ._worker.resource import Resource

# Assigned, not imported: CPython 3.11 compiles a method call on a name an
# import bound as an attribute load (a bound method made at every call),
# and ``get()`` calls ``_pinned.get()`` many times a request.
_pinned = _runtime._pinned
# Non-empty while some thread imports a module: the one test a read outside
# a request makes before asking ``import_time`` whether it is this thread.
_imports_in_progress = import_time.imports_in_progress

F = TypeVar("F", bound=ChangeCallback)
R = TypeVar("R")


def current() -> Snapshot:
    """The snapshot pinned for this request, else the latest one."""
    snap = _pinned.get()
    return snap if snap is not None else reader().refresh()


def pin() -> contextvars.Token[Snapshot | None]:
    """Refresh and pin one snapshot for the current request (or context)."""
    return _pinned.set(reader().refresh())


def pin_once() -> contextvars.Token[Snapshot | None] | None:
    """Pin for a framework's request unless a server hook pinned already.

    Returns:
        The token to :func:`unpin` with, or None when the pin is not ours
        (Gunicorn's ``pre_request`` made it and ``post_request`` ends it).
    """
    if _pinned.get() is not None:
        return None
    return pin()


def unpin(token: contextvars.Token[Snapshot | None] | None = None) -> None:
    """End the pin; outside a request :func:`current` refreshes again."""
    if token is not None:
        _pinned.reset(token)
    else:
        _pinned.set(None)


def pinned() -> Snapshot | None:
    return _pinned.get()


class RequestScope:
    """One request's snapshot, for the framework integrations.

    Opening pins a snapshot unless a server hook pinned one already
    (Gunicorn's ``pre_request``); :meth:`close` ends only a pin it made, and
    only once. Usable as a context manager or, where the end of a request is
    a callback (Flask's teardown, a WSGI body's ``close``), by hand.

    Attributes:
        snapshot: the snapshot every ``get()`` of this request sees.
    """

    __slots__ = ("_token", "snapshot")

    def __init__(self) -> None:
        self._token = pin_once()
        self.snapshot = current()

    def close(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                _pinned.reset(token)
            except ValueError:  # closed from another context (a WSGI body's close)
                _pinned.set(None)

    def __enter__(self) -> Snapshot:
        return self.snapshot

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def latest() -> Snapshot:
    """The newest configuration, even inside a request that pinned an older one.

    For values that must be fresh in a long request (a log level, a sampling
    rate): unlike :func:`snapshot` it ignores the request's pin, and two
    calls in one request may see two generations. Outside a request it is
    the same as :func:`snapshot`.
    """
    return reader().refresh()


def get(
    path: str | Sequence[str], default: Any = None, *, volatile: bool = False
) -> Any:
    """Value at a dotted path in the current snapshot, or ``default``.

    The value read is the one of this moment: call it where the value is
    used (in a request, or a function called later), not at a module's top
    level, where it would be read once, at import, and never change (a
    warning says so, once per call site: ``_worker.import_time``).

    Args:
        path: ``"db.timeout"`` or ``("db", "timeout")``.
        default: returned when the path is absent from the configuration.
        volatile: read the newest configuration (:func:`latest`) instead of
            the one pinned for this request; for values that must be fresh
            even inside a long request, at the price of consistency with
            the request's other reads.

    Raises:
        NotConfiguredError: this process has no configuration source, even
            with a ``default``: a default stands in for an absent key, not
            for a missing configuration (in tests, use
            :func:`hotcfg.testing.use_config`).
    """
    # current(), inlined: this runs many times a request
    snap = None if volatile else _pinned.get()
    if snap is None:
        # Outside a request (or volatile): a read at import time? (free
        # unless a module is being imported; see _worker.import_time)
        if _imports_in_progress and (not volatile or _pinned.get() is None):
            import_time.warn_if_importing("get")
        snap = reader().refresh()
    try:  # Snapshot.get's memo hit, inlined for the same reason
        value = snap._memo[path]
    except (KeyError, TypeError):
        return snap.get(path, default)
    return default if value is MISSING else value


def require(path: str | Sequence[str]) -> Any:
    """Value at a dotted path; raises ``MissingKeyError`` when absent."""
    snap = _pinned.get()
    if snap is None:
        if _imports_in_progress:
            import_time.warn_if_importing("require")
        snap = reader().refresh()
    return snap.require(path)


def snapshot() -> Snapshot:
    """The whole configuration as one immutable :class:`Snapshot`.

    Inside a request it is the request's pinned snapshot, so several reads
    from it (or passing it to code that runs after the request) never mix
    two versions; outside a request it is the latest one. Keep it rather
    than calling :func:`get` repeatedly when a consistent view matters
    across threads or background work.

    Taken at a module's top level it is the configuration at import, for
    good (a warning says so, once per call site: ``_worker.import_time``).
    """
    snap = _pinned.get()
    if snap is None:
        if _imports_in_progress:
            import_time.warn_if_importing("snapshot")
        snap = reader().refresh()
    return snap


def generation() -> int:
    """The generation number of the configuration this request sees.

    It grows by one with every published change and never repeats while the
    service runs: use it in logs, as part of a cache key or an ETag, or to
    tell whether two answers came from the same configuration.
    """
    return current().generation


def on_change(path: str | Sequence[str] | None = None) -> Callable[[F], F]:
    """Decorator registering ``callback(old, new)`` for changes at ``path``."""

    def register(callback: F) -> F:
        # Looked up at each call: a test may give the process new callbacks.
        _runtime._callbacks.add(path, callback)
        return callback

    return register


def resource(
    path: str | Sequence[str],
    factory: Callable[[Any], R],
    close: Callable[[R], object] | None = None,
) -> Resource[R]:
    """A resource (a pool, a client) rebuilt when the value at ``path`` changes.

    ``factory(value)`` builds it from the value at ``path`` (``None`` when
    absent); ``close(resource)`` ends a replaced one once no request holds it.
    Use it per request with ``with handle.use() as pool: ...``. Create handles
    once, at import time.
    """
    return Resource(path, factory, close, snapshot=current)
