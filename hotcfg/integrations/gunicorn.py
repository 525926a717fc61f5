"""Gunicorn hooks: the master publishes, each worker reads.

Use it as the whole Gunicorn config (``gunicorn -c
python:hotcfg.integrations.gunicorn app:app``), or add one line at the end
of your own config file, which keeps (chains) the hooks you already define::

    from hotcfg.integrations.gunicorn import install; install(globals())

Why these hooks (see gunicorn's ``arbiter.py`` and ``workers/base.py``):

* ``on_starting`` runs in the master before the first fork: the segment is
  created and the first generation published there, so the first workers
  already start current. The service's ``proc_name`` and binds go with it,
  to name the history and cache files (:func:`service_of`). hotcfg's log
  records are routed to Gunicorn's error log there (:func:`route_logs`),
  and workers inherit that.
* ``when_ready`` starts the watcher thread (still before any fork; forks are
  made safe by ``os.register_at_fork`` in ``_master.publisher``), and with an etcd
  source the thread that keeps the master's fleet record (``_master.fleet``).
* ``pre_fork`` gives the worker a slot of the worker table.
* ``post_fork`` applies ``HOTCFG_WORKER_NICE`` first thing in the worker, so
  every thread the worker and its app start inherits it.
* ``post_worker_init``, not ``post_fork``: ``Worker.init_signals()`` runs
  between the two and resets signals; by ``post_worker_init`` the app is
  loaded and our hint handler is safe to install. The worker's applier
  thread starts there too (``HOTCFG_APPLIER``), after gevent patched the
  worker: the hint wakes it and it switches an idle worker at once.
* ``pre_request`` / ``post_request`` pin one snapshot per request, for any
  WSGI app, without code changes.
* ``child_exit`` frees the slot; ``on_reload`` (HUP) has the watcher re-read
  the source;
  ``on_exit`` removes the segment.

Gunicorn checks each hook's exact number of positional parameters, so every
function here and every chained wrapper has exactly that many.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
from collections.abc import Callable, MutableMapping
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

from hotcfg import _api, _runtime
from hotcfg._errors import HotcfgError, NotConfiguredError
from hotcfg._segment import layout

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker
else:
    Arbiter = Worker = Any

#: Why a master has no source, and where it reads one.
MASTER_NOT_CONFIGURED = (
    "no configuration source in the Gunicorn master. The master starts hotcfg "
    "before any worker imports the app, from its own settings: HOTCFG_SOURCE "
    "in its environment, or hotcfg.configure(source=...) in gunicorn.conf.py. "
    "It reads the app's config (Flask's app.config, "
    "Django's settings) only when it loads the app itself, with --preload"
)

_SLOT_ATTR = "_hotcfg_slot"
_MARK = "_hotcfg_hook"


def _hint_workers(server: Arbiter, signum: int | None) -> None:
    """Send the hint to the pids Gunicorn knows as workers (never a group)."""
    if signum is None:
        return
    for _ in range(3):
        try:
            pids = list(server.WORKERS)
            break
        except RuntimeError:  # the arbiter changed the dict while we copied it
            continue
    else:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _on_hint(signum: int, frame: FrameType | None) -> None:
    # Sets a flag and writes one byte to the applier's socket: the switch
    # and the callbacks run in the applier thread, never in this handler.
    _runtime.hint()


class _ToGunicornLog(logging.Handler):
    """Hands hotcfg's records to Gunicorn's error log: Gunicorn's format, its
    destination (``--error-logfile``) and its ``--log-level``, also after a
    HUP changed it."""

    def __init__(self, error_log: logging.Logger) -> None:
        super().__init__()
        self.error_log = error_log

    def emit(self, record: logging.LogRecord) -> None:
        if self.error_log.isEnabledFor(record.levelno):
            self.error_log.handle(record)


def route_logs(server: Arbiter) -> None:
    """Send the ``hotcfg`` logger's records to Gunicorn's error log, unless
    logging was configured already.

    Without this they would reach Python's last-resort handler: bare
    messages on stderr, warnings and errors only. Configured means a handler
    or level on the ``hotcfg`` logger or a handler on the root logger (set
    by the application, ``--log-config`` or ``logconfig_dict``): then the
    records go where that configuration says, and nowhere else.
    """
    logger = logging.getLogger("hotcfg")
    configured = (
        logger.handlers
        or logger.level != logging.NOTSET
        or logging.getLogger().handlers
    )
    error_log = getattr(server.log, "error_log", None)
    if configured or not isinstance(error_log, logging.Logger):
        return
    logger.addHandler(_ToGunicornLog(error_log))
    logger.setLevel(logging.DEBUG)  # the handler applies Gunicorn's level
    logger.propagate = False  # once, even if the app configures the root later


def service_of(server: Arbiter) -> tuple[str, ...]:
    """What tells this Gunicorn service from another on the host: its
    ``proc_name`` (by default the app, ``module:variable``) and its binds.
    The history and cache files are named after it while ``HOTCFG_NAME`` is
    the default (docs/design.md, "History and rollback"). ``cfg.proc_name``,
    not ``server.proc_name``: a re-exec's master adds ``.2`` to the latter."""
    binds = sorted(str(bind) for bind in server.cfg.bind or ())
    return (f"proc_name={server.cfg.proc_name}", f"bind={','.join(binds)}")


def on_starting(server: Arbiter) -> None:
    route_logs(server)
    try:
        # A relative HOTCFG_SOURCE is relative to where Gunicorn runs (its
        # --chdir), whatever directory a preloaded app has moved to since.
        settings = _runtime.resolve_settings(base_dir=server.cfg.chdir)
        publisher = _runtime.ensure_publisher(
            start_watching=False,
            keep_history=True,
            service=service_of(server),
            # A USR2 re-exec: the old master runs on, and this one
            # continues its history (arbiter.start() sets it from
            # GUNICORN_PID before on_starting).
            predecessor_pid=getattr(server, "master_pid", 0) or None,
        )
    except NotConfiguredError as exc:
        # Most often HOTCFG_SOURCE set in the app's own config (Flask's
        # app.config, Django's settings), which the master never imports
        # without --preload: say where the master looks.
        raise RuntimeError(f"hotcfg: {MASTER_NOT_CONFIGURED}") from exc
    except HotcfgError as exc:
        # Gunicorn prints a RuntimeError from the arbiter's start as
        # "Error: ..." and exits 1, instead of a traceback.
        raise RuntimeError(f"hotcfg: {exc}") from exc
    publisher.notify = partial(_hint_workers, server, settings.hint_signal)
    server.log.info(
        "hotcfg: source %s (%s), segment %s, generation %d",
        publisher.source.location,
        publisher.source.fmt,
        publisher.segment.path,
        publisher.generation,
    )


def when_ready(server: Arbiter) -> None:
    _runtime.ensure_publisher(start_watching=True)
    _runtime.keep_fleet_record()


def pre_fork(server: Arbiter, worker: Worker) -> None:
    used = {getattr(w, _SLOT_ATTR, None) for w in list(server.WORKERS.values())}
    slot = next((i for i in range(layout.WORKER_SLOTS) if i not in used), None)
    setattr(worker, _SLOT_ATTR, slot)


def post_fork(server: Arbiter, worker: Worker) -> None:
    nice = _runtime.settings().worker_nice
    if nice is None:
        return
    # PRIO_PROCESS with 0 is this thread; threads started later inherit it.
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        # Below the master's nice needs CAP_SYS_NICE: serve anyway, but say so.
        worker.log.warning(
            "hotcfg: cannot set HOTCFG_WORKER_NICE=%d (%s); worker keeps nice %d",
            nice,
            exc.strerror or exc,
            os.getpriority(os.PRIO_PROCESS, 0),
        )


def post_worker_init(worker: Worker) -> None:
    _runtime.attach_worker(slot=getattr(worker, _SLOT_ATTR, None))
    settings = _runtime.settings()
    signum = settings.hint_signal
    if signum is not None:
        if settings.applier:
            # After the fork (threads do not cross it) and after gevent's
            # monkey-patching (its thread is then a greenlet, its socket
            # cooperative): see _applier.
            _runtime.start_applier(signum)
        signal.signal(signum, _on_hint)
        signal.siginterrupt(signum, False)


def pre_request(worker: Worker, req: Any) -> None:
    _api.pin()


def post_request(worker: Worker, req: Any, environ: Any, resp: Any) -> None:
    _api.unpin()


def child_exit(server: Arbiter, worker: Worker) -> None:
    slot = getattr(worker, _SLOT_ATTR, None)
    if slot is not None:
        _runtime.forget_worker(slot)


def on_reload(server: Arbiter) -> None:
    # Through the watcher thread: the arbiter must not wait on a validator.
    _runtime.ensure_publisher().request_publish()


def on_exit(server: Arbiter) -> None:
    _runtime.shutdown()


# name -> (our hook, arity, whether ours runs before the user's)
HOOKS: dict[str, tuple[Callable[..., None], int, bool]] = {
    "on_starting": (on_starting, 1, True),
    "when_ready": (when_ready, 1, True),
    "pre_fork": (pre_fork, 2, True),
    "post_fork": (post_fork, 2, True),
    "post_worker_init": (post_worker_init, 1, True),
    "pre_request": (pre_request, 2, True),
    "post_request": (post_request, 4, False),
    "child_exit": (child_exit, 2, False),
    "on_reload": (on_reload, 1, True),
    "on_exit": (on_exit, 1, False),
}


def _arity(func: Callable[..., object]) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(func).parameters.values())


def _chain(
    name: str, ours: Callable[..., None], theirs: Callable[..., object], *, arity: int,
    ours_first: bool,
) -> Callable[..., None]:  # fmt: skip
    their_arity = _arity(theirs)
    # Gunicorn adapts post_request hooks of 2 or 3 parameters; do the same.
    allowed = {2, 3, 4} if name == "post_request" else {arity}
    if their_arity not in allowed:
        raise TypeError(f"{name} must take {arity} positional parameters")
    first, second = (ours, theirs) if ours_first else (theirs, ours)

    def call(*args: Any) -> None:
        for hook in (first, second):
            hook(*args[: their_arity if hook is theirs else arity])

    # Gunicorn counts positional parameters, so the wrapper spells them out.
    if arity == 1:

        def hook(a: Any) -> None:
            call(a)
    elif arity == 2:

        def hook(a: Any, b: Any) -> None:  # type: ignore[misc]
            call(a, b)
    else:

        def hook(a: Any, b: Any, c: Any, d: Any) -> None:  # type: ignore[misc]
            call(a, b, c, d)

    hook.__name__ = hook.__qualname__ = name
    setattr(hook, _MARK, True)
    return hook


def install(namespace: MutableMapping[str, Any]) -> None:
    """Add hotcfg's hooks to a Gunicorn config module's namespace.

    Call it as the last line of the config file, with ``globals()``. Hooks
    already defined there are kept: hotcfg's runs first where it sets things
    up (so your hook can use ``hotcfg.get()``) and last where it tears down.
    Calling it twice does nothing more.

    Args:
        namespace: the config module's ``globals()``.

    Raises:
        TypeError: an existing hook has the wrong number of parameters.
    """
    for name, (ours, arity, ours_first) in HOOKS.items():
        theirs = namespace.get(name)
        if getattr(theirs, _MARK, False) or theirs is ours:
            continue  # installed already (chained or plain): keep it as it is
        if theirs is None:
            namespace[name] = ours
            continue
        namespace[name] = _chain(name, ours, theirs, arity=arity, ours_first=ours_first)
