"""Process state: the settings, publisher, reader and applier of this process.

Three situations, one state:

* **Gunicorn master**: ``integrations.gunicorn`` calls :func:`ensure_publisher`
  before the first fork; the master publishes and never serves requests.
* **Gunicorn worker**: ``post_worker_init`` calls :func:`attach_worker`, which
  maps the inherited segment with the worker's table slot, and
  :func:`start_applier`, the thread that switches when :func:`hint` wakes
  it. ``pre_request`` pins a snapshot for the request (``_api.pin``).
* **Peers** (``uvicorn --workers``, ``hypercorn --workers``, a
  ``multiprocessing`` pool, a Gunicorn worker without hotcfg's hooks, and
  also ``flask run`` or a script): the first call to :func:`reader` joins the
  processes of the same service on this host (``HOTCFG_PEERS=auto``, the
  default; ``_master.election``). The first publishes, the others map its
  segment, claim a worker-table slot and switch when it hints them, and one
  of them takes over when it dies (:func:`_take_over`). A process alone is
  simply the one elected.
* **Standalone** (``HOTCFG_PEERS=off``, or inside :func:`isolated`): the first
  call to :func:`reader` creates a publisher and a reader in this process
  from ``HOTCFG_SOURCE`` (or :func:`configure`), with the same file watching.

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
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, HotcfgError, NotConfiguredError, SegmentError
from ._segment import layout
from ._segment.layout import (
    ROLE_AGENT,
    ROLE_ELECTED_PEER,
    ROLE_GUNICORN_MASTER,
    ROLE_GUNICORN_WORKER,
    ROLE_STANDALONE,
)
from ._segment.shm import SUFFIX as SEGMENT_SUFFIX
from ._segment.shm import Segment, SegmentView, ensure_private_dir, remove_if_unused
from ._segment.slots import SUFFIX as SLOTS_SUFFIX
from ._segment.slots import WorkerSlots
from ._segment.snapshot import Snapshot
from ._settings import Settings
from ._worker.applier import Applier, mode_for
from ._worker.reader import ChangeCallbacks, Reader
from ._worker.wake import WakeSocket
from ._worker.wake import socket_path as wake_socket_path

if TYPE_CHECKING:
    from ._master.election import Election
    from ._master.publisher import Publisher

_logger = logging.getLogger(__name__)

_lock = threading.RLock()
_settings: Settings | None = None
_publisher: Publisher | None = None
_reader: Reader | None = None
_applier: Applier | None = None
_callbacks = ChangeCallbacks()
# Peers (``_join_peers``): this process's part in the election, its slot
# locks and its slot; None standalone, under Gunicorn, or in isolation.
_election: Election | None = None
_slots: WorkerSlots | None = None
_slot: int | None = None
# A reader that only reads (``HOTCFG_PEERS=read``): its wake-up socket.
_wake: WakeSocket | None = None
_isolation = 0  # depth of isolated(): peers never start inside it
#: How long a peer waits for the elected process to publish its first
#: generation (it reads the source and runs the validators first).
JOIN_TIMEOUT_S = 60.0
#: How often a peer's applier looks without a hint: a safety net for a hint
#: sent before its handler was in place, or from a thread that could not
#: install one (a generation check when nothing changed).
PEER_POLL_S = 1.0
#: How long a process under ``HOTCFG_PEERS=read`` waits at its first read
#: for the agent's segment (the agent may start after the app, or be reading
#: a slow source); then its read raises :class:`NotConfiguredError`.
AGENT_WAIT_S = 30.0
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
    peers: str | None = None,
    history: int | None = None,
    etcd_timeout_ms: float | None = None,
    etcd_progress_ms: float | None = None,
    etcd_order: str | None = None,
    etcd_user: str | None = None,
    etcd_password_file: str | os.PathLike[str] | None = None,
    etcd_ca_file: str | os.PathLike[str] | None = None,
    etcd_cert_file: str | os.PathLike[str] | None = None,
    etcd_key_file: str | os.PathLike[str] | None = None,
    fleet: bool | None = None,
    fleet_ttl_ms: float | None = None,
    host: str | None = None,
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
        peers: ``auto`` (processes of one service elect one publisher among
            themselves) or ``off`` (each publishes for itself alone).
        history: good generations kept for ``hotcfg history`` and ``rollback``.
        etcd_timeout_ms: etcd: connecting, and each request but the watch.
        etcd_progress_ms: etcd: the cluster's progress notification interval.
        etcd_order: etcd: ``random`` start in the endpoint list, or ``listed``.
        etcd_user: etcd: the user to authenticate as.
        etcd_password_file: etcd: the file holding that user's password.
        etcd_ca_file: etcd: CA bundle (PEM); setting it means TLS.
        etcd_cert_file: etcd: client certificate (PEM).
        etcd_key_file: etcd: the client certificate's private key (PEM).
        fleet: etcd: keep this master's record for ``hotcfg status --fleet``.
        fleet_ttl_ms: etcd: that record's lease time to live.
        host: etcd: the host label in that record (default: the host name).
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
    process only; among peers, the last process that maps it)."""
    global _applier, _election, _reader, _slots, _slot, _wake
    applier, _applier = _applier, None
    if applier is not None:
        applier.close()
    election, _election = _election, None
    if election is None and _slots is None:
        if _publisher is not None:
            _publisher.close()
        return
    # A peer: its slot first, then the publisher (which removes the segment
    # if no other process maps it any more), then the lock, which a waiting
    # peer takes at once.
    current, _reader = _reader, None
    if current is not None:
        current.close()
    if _slots is not None and _slot is not None:
        _slots.release(_slot)
    _slots, _slot = None, None
    wake, _wake = _wake, None
    if wake is not None:
        wake.unlink()
        wake.close()
    removed = False
    if _publisher is not None:
        path = _publisher.segment.path
        _publisher.close()
        removed = not os.path.lexists(path)
    elif election is not None and (election.leading or election.try_lead()):
        # The publisher is gone and this process holds the lock (its
        # thread won it, or it was free): the last one out removes the
        # segment, the dead publisher's socket name and the lock files.
        removed = remove_if_unused(election.base + SEGMENT_SUFFIX)
        if removed:
            with contextlib.suppress(OSError):
                os.unlink(election.base + ".sock")
    if election is not None:
        election.release(remove=removed)


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
                cfg = settings()
                if cfg.peers == "read" and _isolation == 0:
                    _read_only(cfg)
                    assert _reader is not None
                    return _reader
                peers = cfg.peers == "auto" and cfg.source is not None
                peers = peers and _isolation == 0
                # Lazily: only where hotcfg starts without a Gunicorn master.
                from ._worker.unhooked import (
                    in_gunicorn_master,
                    warn_if_unhooked_worker,
                )

                peers = peers and not in_gunicorn_master()
                if warn_if_unhooked_worker(shared=peers):
                    role = ROLE_GUNICORN_WORKER
                if peers:
                    _join_peers(cfg, ROLE_ELECTED_PEER if role is None else role)
                    assert _reader is not None
                    return _reader
            publisher = ensure_publisher(role=role)
            _reader = Reader(publisher.segment.view(), callbacks=_callbacks)
        return _reader


def _join_peers(cfg: Settings, role: int) -> None:
    """Join this service's peers on this host (module docstring): lead if
    nobody does, else map the leader's segment once it has published, claim
    a slot, and wait (in a thread) to take over. Called with ``_lock`` held.

    Raises:
        ConfigError: elected, and the source is bad at start (as standalone).
        SegmentError: the files cannot be used, or the elected process has
            not published within :data:`JOIN_TIMEOUT_S`.
    """
    global _reader, _election, _slots, _slot
    # The election's modules are the publisher's side; they come in here,
    # in a process that may have to publish, never on the request path.
    from ._master import election as _elect

    base = _elect.service_base(cfg)
    ensure_private_dir(os.path.dirname(base))
    election = _elect.Election(base)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    # A thread inherits its creator's signal mask. Leading starts the
    # watcher's, the control socket's and the fleet's threads before the
    # applier takes the hint signal: blocked from here, none of them can
    # receive a hint, which would wait for the main thread's next bytecode.
    unblock = _block_hint_signal(cfg)
    try:
        while True:
            # The slots file is opened only holding the lock or mapping the
            # segment: a service in that state is never taken for a dead
            # one (``election.remove_dead_services``).
            if election.try_lead():
                slots = WorkerSlots(base + SLOTS_SUFFIX)
                view = _lead(cfg, election, slots, role).segment.view()
                break
            view_or_none = SegmentView.open_shared(base + SEGMENT_SUFFIX)
            if view_or_none is not None:
                if layout.read_role(view_or_none.buffer) != layout.ROLE_UNKNOWN:
                    view = view_or_none
                    slots = WorkerSlots(base + SLOTS_SUFFIX)
                    break
                view_or_none.close()  # its publisher is still starting
            if time.monotonic() > deadline:
                raise SegmentError(
                    f"the process publishing for this service (pid "
                    f"{election.holder() or 'unknown'}) has not published into "
                    f"{base + SEGMENT_SUFFIX} within {JOIN_TIMEOUT_S:g} s"
                )
            time.sleep(0.005)
    except BaseException:
        election.release()
        unblock()
        raise
    _election, _slots = election, slots
    _slot = slots.claim(view.buffer)
    _start_peer_waking(cfg, base, _slot)
    unblock()
    # After the slot and its wake-up: a publish before this read is read now.
    _reader = Reader(view, slot=_slot, callbacks=_callbacks)
    if not election.leading:
        election.wait_to_lead(lambda: _take_over(cfg, election, slots, role))


def _read_only(cfg: Settings) -> None:
    """``HOTCFG_PEERS=read``: read what this service's agent publishes
    (``hotcfg agent``), never publish nor take over. Wait for its segment up
    to :data:`AGENT_WAIT_S`, claim a worker-table slot, and bind the slot's
    wake-up socket (``_worker.wake``): the agent may be in another PID
    namespace, where a signal cannot reach this process. Called with
    ``_lock`` held.

    Raises:
        NotConfiguredError: no source is set (it names the segment), or no
            agent published within :data:`AGENT_WAIT_S`; the next read
            tries again. Failing loudly is what a deployment wants: an app
            that started on nothing (or on defaults) would hide a missing
            agent until its first request that needs the config.
    """
    global _reader, _slots, _slot, _wake, _applier
    if cfg.source is None:
        raise NotConfiguredError(
            "HOTCFG_PEERS=read needs HOTCFG_SOURCE, set as the agent's: with the "
            "other publishing settings it names the segment to read"
        )
    # Where the files are named only: no publisher is built here.
    from ._master.election import service_base

    base = service_base(cfg)
    ensure_private_dir(os.path.dirname(base))
    path = base + SEGMENT_SUFFIX
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        view = SegmentView.open_shared(path)
        if view is not None:
            if layout.read_role(view.buffer) != layout.ROLE_UNKNOWN:
                break
            view.close()  # the agent is still starting
        if time.monotonic() > deadline:
            raise NotConfiguredError(
                f"HOTCFG_PEERS=read: no hotcfg agent has published into {path} "
                f"within {AGENT_WAIT_S:g} s; run `hotcfg agent` with the same "
                "HOTCFG_SOURCE, HOTCFG_NAME, HOTCFG_SEGMENT_DIR and publishing "
                "settings, as the same user"
            )
        time.sleep(0.02)
    slots = WorkerSlots(base + SLOTS_SUFFIX)
    slot = slots.claim(view.buffer)
    _slots, _slot = slots, slot
    # The socket even without an applier (``HOTCFG_APPLIER=off``): a slot
    # with one gets no signal, which in another PID namespace could reach an
    # unrelated process; unread, its queue fills and the agent stops there.
    if slot is not None:
        try:
            _wake = WakeSocket(wake_socket_path(base, slot))
        except OSError as exc:
            _logger.warning(
                "hotcfg: no wake-up socket for slot %d (%s): switching within "
                "%g s of a publish, or at the next request",
                slot,
                exc,
                PEER_POLL_S,
            )
    if cfg.applier:
        channel = None if _wake is None else (_wake.receive, _wake.send)
        _applier = Applier(_apply_latest, poll_s=PEER_POLL_S, channel=channel).start()
    # After the slot and its socket: a publish before this read is read now.
    _reader = Reader(view, slot=slot, callbacks=_callbacks)


def run_agent(stop: threading.Event) -> Publisher | None:
    """``hotcfg agent``: publish for this service's processes, which only
    read (``HOTCFG_PEERS=read``), holding the service's publisher lock. If
    another process holds it (an agent still stopping), wait for it until
    ``stop`` is set (then None). The publisher watches, serves the control
    socket, the metrics and, for etcd, the fleet record until
    :func:`shutdown`.

    Raises:
        NotConfiguredError: no ``HOTCFG_SOURCE``.
        ConfigError: the source is bad and nothing is live yet (as a master).
    """
    global _election, _slots
    cfg = settings()
    if cfg.source is None:
        raise NotConfiguredError("hotcfg agent needs HOTCFG_SOURCE")
    from ._master.election import Election, service_base

    base = service_base(cfg)
    ensure_private_dir(os.path.dirname(base))
    election = Election(base)
    said = False
    while not election.try_lead():
        if not said:
            _logger.warning(
                "hotcfg: pid %s publishes for this service; waiting for it to stop",
                election.holder() or "unknown",
            )
            said = True
        if stop.wait(0.2):
            election.release()
            return None
    slots = WorkerSlots(base + SLOTS_SUFFIX)
    with _lock:
        try:
            publisher = _lead(cfg, election, slots, ROLE_AGENT)
        except BaseException:
            election.release()
            raise
        _election, _slots = election, slots
    keep_fleet_record()
    publisher.notify()  # readers that kept the last content meanwhile look once
    return publisher


def _lead(
    cfg: Settings, election: Election, slots: WorkerSlots, role: int
) -> Publisher:
    """Publish for the peers, holding the lock: open the service's segment
    (or create it), go on from its live generation, publish the source only
    if it differs, keep the history and cache files, hint the table's pids,
    watch, and serve the control socket.

    Raises:
        ConfigError: the source is bad and the segment has nothing live
            (a first start), unless ``HOTCFG_START_EMPTY``.
    """
    global _publisher
    from ._master import control as _control
    from ._master import election as _elect
    from ._master.publisher import Publisher
    from ._sources.select import source_for
    from ._worker.wake import Sender

    source = source_for(cfg)
    directory, token = os.path.split(election.base)
    _elect.remove_dead_services(directory, cfg.name, keep=election.base)
    segment = Segment.open_or_create(directory, token=token, name=cfg.name)
    try:
        publisher = Publisher(
            source, segment, cfg, keep_history=True, service=_elect.FILES_SERVICE
        )
    except BaseException:
        segment.close(unlink=True)
        raise
    try:
        publisher.adopt_live()
        # Something live already (a takeover): a bad source keeps it.
        live = publisher.generation > 0
        publisher.start(start_empty=cfg.start_empty or live)
    except BaseException:
        publisher.close()
        raise
    publisher.set_role(role)
    publisher.notify = _elect.hinter(
        lambda: publisher.segment.buffer,
        slots.reap,
        cfg.hint_signal,
        Sender(election.base),
    )
    _publisher = publisher
    # The socket's name is the segment's: a dead leader's is in the way.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_control.socket_path(segment.path))
    publisher.start_watching()
    # A change saved between the first read and the watch's start raised no
    # event the watcher saw: read once more (published only if it differs).
    publisher.publish_from_source()
    _start_control(publisher)
    # The fleet sees the elected process as the host's master (an etcd
    # source): a successor's record replaces a dead leader's when its lease
    # ends.
    keep_fleet_record()
    return publisher


def _take_over(
    cfg: Settings, election: Election, slots: WorkerSlots, role: int
) -> None:
    """The election thread, once the lock is this process's: the leader
    died or stopped. The readers keep their mapping of the same segment."""
    started = time.monotonic()
    # This thread only takes over: the threads leading starts inherit its
    # mask, so none of them takes a hint meant for the applier.
    _block_hint_signal(cfg)
    with _lock:
        if _election is not election or _publisher is not None:
            return  # this process is stopping, or publishes already
        try:
            publisher = _lead(cfg, election, slots, role)
        except Exception:
            _logger.exception(
                "hotcfg: pid %d could not take over publishing for its peers",
                os.getpid(),
            )
            return
    _logger.warning(
        "hotcfg: pid %d took over publishing for its peers (generation %d, "
        "%.1f ms after it was elected)",
        os.getpid(),
        publisher.generation,
        (time.monotonic() - started) * 1000.0,
    )
    publisher.notify()  # the table's peers look once: nothing lost meanwhile


def _on_hint(signum: int, frame: FrameType | None) -> None:
    # As Gunicorn's workers: a flag and a wake-up, never the switch itself.
    hint()


def _warn_no_handler(signum: int) -> None:
    """The first read happened outside the main thread, where no handler
    can be installed: harmless for a signal whose default action is to
    ignore it (``SIGURG``, the default), fatal for another."""
    if signum in (getattr(signal, "SIGURG", -1), getattr(signal, "SIGWINCH", -1)):
        return
    _logger.warning(
        "hotcfg: pid %d first read its configuration outside the main thread, "
        "so it cannot take HOTCFG_SIGNAL=%s, whose default action ends the "
        "process, and the publisher's hint would: read hotcfg once at import, "
        "or keep the default SIGURG",
        os.getpid(),
        signal.Signals(signum).name,
    )


def _block_hint_signal(cfg: Settings) -> Callable[[], None]:
    """Block the hint signal in this thread; the callable returned unblocks
    it again unless the applier took it (``sigwait`` needs it blocked, and
    the applier blocked it itself) or it was blocked before."""
    signum = cfg.hint_signal
    if signum is None or not cfg.applier:
        return lambda: None
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})

    def unblock() -> None:
        taken = _applier is not None and _applier.signum == signum
        if signum not in before and not taken:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})

    return unblock


def _start_peer_waking(cfg: Settings, base: str, slot: int | None) -> None:
    """How the publisher wakes this peer: the slot's socket where it can be
    bound, else the hint signal.

    A socket wakes the applier whichever threads the process has. A signal
    goes to any thread that does not block it, and the threads a server
    started before this process joined (an event loop's executor, say) do
    not: a hint taken there runs its handler only at the main thread's next
    bytecode, which in an idle uvicorn worker is its next 100 ms tick.
    """
    global _wake, _applier
    if slot is not None:
        try:
            _wake = WakeSocket(wake_socket_path(base, slot))
        except OSError as exc:
            _logger.warning(
                "hotcfg: no wake-up socket for slot %d (%s): woken by signal",
                slot,
                exc,
            )
    if _wake is None:
        _start_peer_applier(cfg)
        return
    if cfg.applier:
        channel = (_wake.receive, _wake.send)
        _applier = Applier(_apply_latest, poll_s=PEER_POLL_S, channel=channel).start()


def _start_peer_applier(cfg: Settings) -> None:
    """A peer's applier and hint handler, as a Gunicorn worker's, where
    this thread can install a handler (the main thread); elsewhere the
    applier looks every :data:`PEER_POLL_S` only. Both look at that
    interval anyway: a hint can come before the handler is in place."""
    global _applier
    signum = cfg.hint_signal
    if not cfg.applier:
        return
    main = threading.current_thread() is threading.main_thread()
    if signum is None or not main:
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            _warn_no_handler(signum)
        _applier = Applier(_apply_latest, poll_s=PEER_POLL_S).start()
        return
    # The look at an interval needs sigtimedwait (not on macOS): else the
    # socket pair, which the handler writes to.
    taken = mode_for(signum) == "signal" and hasattr(signal, "sigtimedwait")
    own = signum if taken else None
    _applier = Applier(_apply_latest, signum=own, poll_s=PEER_POLL_S).start()
    signal.signal(signum, _on_hint)
    signal.siginterrupt(signum, False)


@contextlib.contextmanager
def isolated(cfg: Settings | None) -> Iterator[None]:
    """Run with a fresh process state under ``cfg``; on leaving, whatever
    ran inside is closed (its segment removed) and the previous state is
    back (``hotcfg.testing``). Change callbacks stay registered throughout.
    With ``cfg=None`` the settings are resolved on first use, from the
    environment as it is then, or set by :func:`configure` inside.
    """
    global _settings, _publisher, _reader, _isolation
    with _lock:
        saved = (_settings, _publisher, _reader)
        _settings, _publisher, _reader = cfg, None, None
        _isolation += 1
    token = _pinned.set(None)
    try:
        yield
    finally:
        with _lock:
            inner_publisher, inner_reader = _publisher, _reader
            _settings, _publisher, _reader = saved
            _isolation -= 1
        _pinned.reset(token)
        if inner_reader is not None:
            inner_reader.close()
        if inner_publisher is not None:
            inner_publisher.close()


def _reset_lock_in_child() -> None:
    global _lock, _applier, _election, _slot, _slots, _wake
    _lock = threading.RLock()
    _applier = None  # its thread did not cross the fork (``_worker.applier``)
    # The election's lock and the slot are the parent's (``_master.election``,
    # ``_segment.slots``): the child forgets them.
    _election, _slot, _slots, _wake = None, None, None, None


os.register_at_fork(after_in_child=_reset_lock_in_child)
