"""Process state: the settings, publisher, reader and applier of this process.

Three situations, one state:

* **Gunicorn master**: ``integrations.gunicorn`` calls :func:`ensure_publisher`
  before the first fork; the master publishes and never serves requests.
* **Gunicorn worker**: ``post_worker_init`` calls :func:`attach_worker`, which
  maps the inherited segment with the worker's table slot, and
  :func:`start_applier`, the thread that switches when :func:`hint` wakes
  it. ``pre_request`` pins a snapshot for the request (``_api.pin``).
* **Anywhere else** (``flask run``, a script, a test): the first call to
  :func:`reader` creates a publisher and a reader in this process from
  ``HOTCFG_SOURCE`` (or :func:`configure`), with the same file watching.

The request side (``_api``: ``get``, pinning, ``on_change``) reads this
state; the request's pin and the change callbacks live here too, so that
:func:`isolated` can clear the one and readers made here get the other,
without this module importing ``_api``.

Must not import ``_api`` (it imports this module), nor ``_master`` or
``_sources`` at module level: a worker's per-request path imports this
module, and it must bring in no file watcher and no etcd or HTTP client.
The publisher's modules are imported inside the functions that start it,
which run in the master (or a standalone process) only.

Fork story: the publisher is inert in a child (pid check in
``_master.publisher``); a reader inherited by a child keeps reading the
parent's segment; an applier is not inherited (the child forgets it,
``_worker.applier``); the module lock is replaced in the child.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, HotcfgError, NotConfiguredError
from ._segment.layout import (
    ROLE_GUNICORN_MASTER,
    ROLE_GUNICORN_WORKER,
    ROLE_STANDALONE,
)
from ._segment.shm import Segment
from ._segment.snapshot import Snapshot
from ._settings import Settings
from ._worker.applier import Applier, mode_for
from ._worker.reader import ChangeCallbacks, Reader

if TYPE_CHECKING:
    from ._master.publisher import Publisher

_logger = logging.getLogger(__name__)

_lock = threading.RLock()
_settings: Settings | None = None
_publisher: Publisher | None = None
_reader: Reader | None = None
_applier: Applier | None = None
_callbacks = ChangeCallbacks()
# The snapshot pinned for the current request (or context); set and read
# by ``_api``'s pinning functions.
_pinned: contextvars.ContextVar[Snapshot | None] = contextvars.ContextVar(
    "hotcfg_pinned", default=None
)


def settings() -> Settings:
    """This process's settings, resolved once (or as :func:`configure` set them)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.resolve()
        return _settings


def resolve_settings(*, base_dir: str) -> Settings:
    """Resolve the settings now, a relative source against ``base_dir``,
    unless they were resolved already (Gunicorn: its ``--chdir``)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.resolve(base_dir=base_dir)
        return _settings


def configure(
    source: str | os.PathLike[str] | None = None,
    *,
    format: str | None = None,
    debounce_ms: float | None = None,
    hint_signal: str | int | None = None,
    validator: str | None = None,
    schema: str | os.PathLike[str] | None = None,
    model: str | None = None,
    validator_warn_ms: float | None = None,
    apply_warn_ms: float | None = None,
    max_bytes: int | None = None,
    segment_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    start_empty: bool | None = None,
    watch: str | None = None,
    poll_interval_ms: float | None = None,
    worker_nice: int | None = None,
    metrics: str | None = None,
    applier: bool | None = None,
    history: int | None = None,
    etcd_timeout_ms: float | None = None,
    etcd_progress_ms: float | None = None,
    etcd_user: str | None = None,
    etcd_password_file: str | os.PathLike[str] | None = None,
    etcd_ca_file: str | os.PathLike[str] | None = None,
    etcd_cert_file: str | os.PathLike[str] | None = None,
    etcd_key_file: str | os.PathLike[str] | None = None,
    fleet: bool | None = None,
    fleet_ttl_ms: float | None = None,
    http_timeout_ms: float | None = None,
    http_token_file: str | os.PathLike[str] | None = None,
    http_ca_file: str | os.PathLike[str] | None = None,
) -> None:
    """Set this process's settings explicitly, before hotcfg is first used.

    There is one argument per ``HOTCFG_*`` variable (the settings table in
    ``_settings``), of the same name in lower case (``hint_signal`` is
    ``HOTCFG_SIGNAL``), parsed the same way, and winning over it; ``None``
    leaves it to the environment. A relative ``source`` is made absolute now.

    Args:
        source: the config file, ``etcd://`` key or prefix, ``http(s)://``
            URL, or several joined by `` | `` (``HOTCFG_SOURCE``).
        format: ``yaml``, ``json`` or ``toml`` (default: from the suffix).
        debounce_ms: quiet time after file events before reading the file.
        hint_signal: signal name or number telling workers to look, or ``"none"``.
        validator: ``"package.module:function"`` run on every new document.
        schema: a JSON Schema file every document must satisfy.
        model: ``"package.module:Class"`` every document must fit.
        validator_warn_ms: log a validator that runs longer than this, again
            each time as long passes, and show it in ``hotcfg status``.
        apply_warn_ms: log a worker that has not applied a publish this long.
        max_bytes: largest config document accepted.
        segment_dir: private directory of the shared segment.
        name: segment file name prefix.
        start_empty: start with an empty config when the source is bad.
        watch: ``auto``, ``events`` or ``poll``.
        poll_interval_ms: how often the file is stat'ed, or the URL fetched.
        worker_nice: nice value of Gunicorn workers.
        metrics: ``host:port`` where the master serves Prometheus metrics.
        applier: switch Gunicorn workers when hinted (default), not only
            at their next request.
        history: good generations kept for ``hotcfg history`` and ``rollback``.
        etcd_timeout_ms: etcd: connecting, and each request but the watch.
        etcd_progress_ms: etcd: the cluster's progress notification interval.
        etcd_user: etcd: the user to authenticate as.
        etcd_password_file: etcd: the file holding that user's password.
        etcd_ca_file: etcd: CA bundle (PEM); setting it means TLS.
        etcd_cert_file: etcd: client certificate (PEM).
        etcd_key_file: etcd: the client certificate's private key (PEM).
        fleet: etcd: keep this master's record for ``hotcfg status --fleet``.
        fleet_ttl_ms: etcd: that record's lease time to live.
        http_timeout_ms: HTTP source: each fetch's total deadline.
        http_token_file: HTTP source: the file holding a bearer token.
        http_ca_file: HTTP source: CA bundle (PEM) for ``https``.

    Raises:
        ConfigError: a value cannot be understood, naming its variable.
        HotcfgError: hotcfg is already running in this process.
    """
    global _settings
    # Every parameter, by name: the keywords are typed for callers, and
    # passing them on as a whole means none can be accepted and then dropped
    # (a test checks that each row of the settings table is a parameter).
    given = dict(locals())
    resolved = Settings.resolve(**given)
    with _lock:
        if _publisher is not None or _reader is not None:
            raise HotcfgError("hotcfg is already running in this process")
        _settings = resolved


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
        running = settings()
    differing = wanted.differences(running, given)
    if differing:
        both = "; ".join(
            f"{var} given {wanted.shown(var)}, running with {running.shown(var)}"
            for var in differing
        )
        raise ConfigError(
            "differs from the value hotcfg already runs with in this process "
            "(under Gunicorn the master's, which it reads from its environment "
            "or gunicorn.conf.py, and from the app's config only with "
            f"--preload): {both}",
            source=", ".join(differing),
        )


def ensure_publisher(
    *,
    start_watching: bool = True,
    keep_history: bool = False,
    service: Sequence[str] = (),
    predecessor_pid: int | None = None,
    role: int | None = None,
) -> Publisher:
    """The publisher of this process, created (and first published) if needed.

    Args:
        start_watching: start the watcher (and the control socket) too.
        keep_history: keep the history and cache files (the Gunicorn master
            only; see :class:`~hotcfg._master.publisher.Publisher`), when it is
            created here; ``service`` and ``predecessor_pid`` then say which
            (``_master.claim``).
        role: who publishes (``layout.ROLE_*``, for ``hotcfg status``);
            default: the Gunicorn master when ``keep_history``, else a
            standalone process. A publisher created earlier in this process
            (a preloaded app that read at import) is made the master's,
            history and all, when ``keep_history`` asks for it.

    Raises:
        ConfigError: the source is missing or invalid at start, unless
            its store is unreachable and the master's cache file holds the
            last good payload, or ``HOTCFG_START_EMPTY`` allows starting with
            an empty mapping.
        SegmentError: the shared segment cannot be created.
    """
    global _publisher
    with _lock:
        if _publisher is None:
            # The master's modules (watchdog, etcd, HTTP) come in here, in
            # the process that publishes, never on a worker's import path.
            from ._master.publisher import Publisher
            from ._sources.select import source_for

            cfg = settings()
            source = source_for(cfg)
            segment = Segment.create(cfg.resolved_segment_dir, name=cfg.name)
            try:
                publisher = Publisher(
                    source,
                    segment,
                    cfg,
                    keep_history=keep_history,
                    service=service,
                    predecessor_pid=predecessor_pid,
                )
            except BaseException:
                segment.close(unlink=True)
                raise
            try:
                publisher.start(start_empty=cfg.start_empty)
            except BaseException:
                publisher.close()  # removes the segment
                raise
            publisher.set_role(
                role
                if role is not None
                else (ROLE_GUNICORN_MASTER if keep_history else ROLE_STANDALONE)
            )
            _publisher = publisher
        elif keep_history and _publisher.files is None:
            # A preloaded app read hotcfg at import, before on_starting: that
            # publisher is the master's; it keeps the files from now on.
            _publisher.keep_files(service=service, predecessor_pid=predecessor_pid)
            _publisher.set_role(ROLE_GUNICORN_MASTER)
        if start_watching:
            _publisher.start_watching()
            _start_control(_publisher)
        return _publisher


def keep_fleet_record() -> None:
    """Keep this master's record in etcd for ``hotcfg status --fleet`` (the
    Gunicorn master, once watching; an etcd source with ``HOTCFG_FLEET``
    on). Its thread stops, and its lease is revoked, when the publisher
    closes."""
    publisher = _publisher
    if publisher is None:
        return
    # Master side only: neither module is on a worker's import path, and
    # the fleet's etcd client only in a master following etcd.
    from ._sources.locations import ETCD_SCHEME

    if ETCD_SCHEME in (publisher.settings.source or ""):
        from ._master import fleet as _fleet

        _fleet.start(publisher)


def _start_control(publisher: Publisher) -> None:
    # With the watcher: the master's control socket (hotcfg history,
    # rollback, diff).
    from ._master import control as _control

    _control.start(publisher)


@atexit.register
def _close_at_exit() -> None:
    # Inert in forked children: the publisher checks the pid.
    shutdown()


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


def start_applier(signum: int) -> Applier:
    """Start this worker's applier thread (Gunicorn: ``post_worker_init``,
    in the main thread, after the fork, the app load and gevent's
    monkey-patching), taking the hint signal ``signum`` itself where it can
    (``_worker.applier.mode_for``)."""
    global _applier
    with _lock:
        if _applier is not None:
            _applier.close()
        own = signum if mode_for(signum) == "signal" else None
        _applier = Applier(_apply_latest, signum=own).start()
        return _applier


def _apply_latest() -> None:
    # The reader of the moment: attach_worker may have replaced it.
    current = _reader
    if current is not None:
        current.refresh()


def hint() -> None:
    """A publish happened: switch soon. Safe in a signal handler: it sets a
    flag and, where an applier runs, writes one byte to wake it; the switch
    itself happens in the applier thread (else at the next request)."""
    current = _reader
    if current is not None:
        current.mark_stale()
    applier = _applier
    if applier is not None:
        applier.wake()


def forget_worker(slot: int) -> None:
    """Free a worker's table slot after it exited (master only)."""
    if _publisher is not None:
        _publisher.forget_worker(slot)


def shutdown() -> None:
    """Stop the applier, stop watching and remove the segment (the creating
    process only)."""
    global _applier
    applier, _applier = _applier, None
    if applier is not None:
        applier.close()
    if _publisher is not None:
        _publisher.close()


def reader() -> Reader:
    """This process's reader, started from the settings on first use."""
    global _reader
    current = _reader
    if current is not None:
        return current
    with _lock:
        if _reader is None:
            role = None
            if _publisher is None:
                # Lazily: only where hotcfg starts standalone.
                from ._worker.unhooked import warn_if_unhooked_worker

                if warn_if_unhooked_worker():
                    role = ROLE_GUNICORN_WORKER
            publisher = ensure_publisher(role=role)
            _reader = Reader(publisher.segment.view(), callbacks=_callbacks)
        return _reader


@contextlib.contextmanager
def isolated(cfg: Settings | None) -> Iterator[None]:
    """Run with a fresh process state under ``cfg``; on leaving, whatever
    ran inside is closed (its segment removed) and the previous state is
    back (``hotcfg.testing``). Change callbacks stay registered throughout.
    With ``cfg=None`` the settings are resolved on first use, from the
    environment as it is then, or set by :func:`configure` inside.
    """
    global _settings, _publisher, _reader
    with _lock:
        saved = (_settings, _publisher, _reader)
        _settings, _publisher, _reader = cfg, None, None
    token = _pinned.set(None)
    try:
        yield
    finally:
        with _lock:
            inner_publisher, inner_reader = _publisher, _reader
            _settings, _publisher, _reader = saved
        _pinned.reset(token)
        if inner_reader is not None:
            inner_reader.close()
        if inner_publisher is not None:
            inner_publisher.close()


def _reset_lock_in_child() -> None:
    global _lock, _applier
    _lock = threading.RLock()
    _applier = None  # its thread did not cross the fork (``_worker.applier``)


os.register_at_fork(after_in_child=_reset_lock_in_child)
