"""The process-global state behind ``hotcfg.get()`` and friends.

Three situations, one API:

* **Gunicorn master**: ``integrations.gunicorn`` calls :func:`ensure_publisher`
  before the first fork; the master publishes and never serves requests.
* **Gunicorn worker**: ``post_worker_init`` calls :func:`attach_worker`, which
  maps the inherited segment with the worker's table slot. ``pre_request``
  pins a snapshot for the request (:func:`pin`).
* **Anywhere else** (``flask run``, a script, a test): the first call to
  :func:`reader` creates a publisher and a reader in this process from
  ``HOTCFG_SOURCE`` (or :func:`configure`), with the same file watching.

Fork story: the publisher is inert in a child (pid check in ``_publisher``);
a reader inherited by a child keeps reading the parent's segment; the
module lock is replaced in the child.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._errors import ConfigError, HotcfgError, NotConfiguredError
from ._publisher import Publisher
from ._reader import ChangeCallback, ChangeCallbacks, Reader
from ._resource import Resource
from ._segment import Segment
from ._settings import Settings
from ._snapshot import MISSING, Snapshot
from ._sources import FileSource

_logger = logging.getLogger(__name__)

_lock = threading.RLock()
_settings: Settings | None = None
_publisher: Publisher | None = None
_reader: Reader | None = None
_callbacks = ChangeCallbacks()
_pinned: contextvars.ContextVar[Snapshot | None] = contextvars.ContextVar(
    "hotcfg_pinned", default=None
)

F = TypeVar("F", bound=ChangeCallback)
R = TypeVar("R")


def settings() -> Settings:
    """This process's settings, resolved once (or as :func:`configure` set them)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.resolve()
        return _settings


def configure(source: str | os.PathLike[str] | None = None, **options: Any) -> None:
    """Set this process's settings explicitly, before hotcfg is first used.

    Args:
        source: the config file (overrides ``HOTCFG_SOURCE``).
        **options: any other :class:`~hotcfg._settings.Settings` field, e.g.
            ``debounce_ms=50`` or ``validator="app.config:check"``.

    Raises:
        HotcfgError: hotcfg is already running in this process.
    """
    global _settings
    with _lock:
        if _publisher is not None or _reader is not None:
            raise HotcfgError("hotcfg is already running in this process")
        _settings = Settings.resolve(source=source, **options)


def configure_from(values: Mapping[str, Any]) -> None:
    """Settings from a framework's configuration, keys named like ``HOTCFG_*``.

    Where hotcfg already runs in this process (a Gunicorn worker inherits
    the master's publisher before it imports the app), the running settings
    stay, because a worker cannot change what the master publishes; the
    given ones must then agree with them.

    Raises:
        ConfigError: an unknown key or bad value, or one that contradicts
            the settings hotcfg already runs with.
    """
    global _settings
    wanted = Settings.from_mapping(values)
    given = [key for key, value in values.items() if value is not None]
    if not given:  # keep what configure() or the environment set
        return
    with _lock:
        if _publisher is None and _reader is None:
            _settings = wanted
            return
        differing = wanted.differences(settings(), given)
    if differing:
        raise ConfigError(
            "differs from the value hotcfg already runs with in this process "
            "(under Gunicorn the master's: set it in the master's environment "
            "or in gunicorn.conf.py)",
            source=", ".join(differing),
        )


def ensure_publisher(*, start_watching: bool = True) -> Publisher:
    """The publisher of this process, created (and first published) if needed.

    Raises:
        ConfigError: the source is missing or invalid at start, unless
            ``HOTCFG_START_EMPTY`` allows starting with an empty mapping.
        SegmentError: the shared segment cannot be created.
    """
    global _publisher
    with _lock:
        if _publisher is None:
            cfg = settings()
            source = FileSource.from_settings(cfg)
            segment = Segment.create(cfg.resolved_segment_dir, name=cfg.name)
            publisher = Publisher(
                source,
                segment,
                debounce_ms=cfg.debounce_ms,
                watch=cfg.watch,
                poll_interval_ms=cfg.poll_interval_ms,
            )
            try:
                publisher.publish_from_source(raise_errors=not cfg.start_empty)
            except HotcfgError:
                segment.close(unlink=True)
                raise
            _publisher = publisher
            atexit.register(publisher.close)  # inert in forked children (pid check)
        if start_watching:
            _publisher.start_watching()
        return _publisher


def attach_worker(*, slot: int | None) -> Reader:
    """Map the inherited segment in a freshly forked worker (Gunicorn)."""
    global _reader
    with _lock:
        if _publisher is None:
            raise NotConfiguredError("hotcfg has no segment in this process")
        if _reader is not None:
            _reader.close()
        _reader = Reader(_publisher.segment.view(), slot=slot, callbacks=_callbacks)
        return _reader


def reader() -> Reader:
    """This process's reader, started from the settings on first use."""
    global _reader
    current = _reader
    if current is not None:
        return current
    with _lock:
        if _reader is None:
            publisher = ensure_publisher()
            _reader = Reader(publisher.segment.view(), callbacks=_callbacks)
        return _reader


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


def get(path: str | Sequence[str], default: Any = None) -> Any:
    """Value at a dotted path in the current snapshot, or ``default``."""
    snap = _pinned.get()  # current(), inlined: this runs many times a request
    if snap is None:
        snap = reader().refresh()
    try:  # Snapshot.get's memo hit, inlined for the same reason
        value = snap._memo[path]
    except (KeyError, TypeError):
        return snap.get(path, default)
    return default if value is MISSING else value


def require(path: str | Sequence[str]) -> Any:
    """Value at a dotted path; raises ``MissingKeyError`` when absent."""
    return current().require(path)


def snapshot() -> Snapshot:
    """The whole configuration as one immutable :class:`Snapshot`.

    Inside a request it is the request's pinned snapshot, so several reads
    from it (or passing it to code that runs after the request) never mix
    two versions; outside a request it is the latest one. Keep it rather
    than calling :func:`get` repeatedly when a consistent view matters
    across threads or background work.
    """
    return current()


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
        _callbacks.add(path, callback)
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


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_lock_in_child)
