"""Celery worker: the pool's parent publishes, each prefork child reads.

One line in the module ``celery -A`` names, after the app is made::

    from hotcfg.integrations.celery import install; install(app)

A ``celery worker`` with the prefork pool is shaped like Gunicorn: a parent
that never runs tasks, and children it forks (and forks again when one is
recycled by ``--max-tasks-per-child`` or ``--max-memory-per-child``). So
hotcfg does there what ``integrations.gunicorn`` does, through Celery's own
signals (``celery/worker/worker.py``, ``celery/concurrency/prefork.py``):

* ``worker_init`` runs in the parent, in ``WorkController.__init__``, before
  the pool exists: the segment is created, the first generation published
  and the watcher started there, so every child is forked with the segment
  mapped and starts current, the first ones and the replacements alike.
  The segment says the parent publishes (role ``celery-parent``, for
  ``hotcfg status``); it keeps history and cache files like a Gunicorn
  master, named after the app and the worker's ``--hostname``. No source
  stops the worker (``SystemExit``): Celery only logs an exception that a
  receiver raises, and the worker would run with every child its own
  publisher.
* ``worker_process_init`` runs in each prefork child after the fork, in
  its main thread: the child maps the inherited segment with a slot of the
  worker table (billiard's pool index, which a replacement child takes
  over), starts its applier thread and takes the hint signal.
* The parent hints, after each publish, the pids the children recorded in
  the worker table: Celery has no public list of its pool's processes, and
  those pids are the children that read the segment. A child that exits
  normally clears its slot (``worker_process_shutdown``); a killed one
  leaves its pid there until billiard starts its replacement in the same
  slot. The hint signal (``SIGURG`` by default) is ignored by a process that
  does not handle it, should such a pid have been reused meanwhile.
* ``task_prerun`` / ``task_postrun`` pin one snapshot per task, as
  Gunicorn's ``pre_request`` / ``post_request`` do per request: every read
  of a task sees one generation however long it runs.
* ``worker_shutdown`` (the parent) stops watching and removes the segment.

Other pools run the tasks in the parent itself: ``solo`` (which sends
``worker_process_init`` there too), ``threads``, ``gevent`` and
``eventlet``. The parent's publisher is then read in the same process,
with nothing to hint, and each task still pins its snapshot.
A pool started with ``worker_pool_start_method = "spawn"`` inherits no
segment: the children then elect one publisher among themselves on their
first reads (``_master.election``), as any processes without hooks do, and
a warning says so.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
from functools import partial
from types import FrameType
from typing import Any

from hotcfg import _api, _runtime
from hotcfg._errors import HotcfgError, NotConfiguredError
from hotcfg._segment import layout
from hotcfg._segment.snapshot import Snapshot

_logger = logging.getLogger(__name__)

#: Why a worker without a source does not start, and where it looks.
NOT_CONFIGURED = (
    "no configuration source in the Celery worker. The worker's parent "
    "process starts hotcfg before it forks the pool, from HOTCFG_SOURCE in "
    "its environment or hotcfg.configure(source=...) called in the app "
    "module before the worker starts"
)

_DISPATCH_UID = "hotcfg.integrations.celery"

# The apps install() was given: a worker of another app in the same
# process (rare) is left alone.
_apps: list[Any] = []
# The pid of the process whose publisher this is (the worker's parent); a
# forked child inherits it, and tells itself apart by it.
_parent_pid: int | None = None
# Whether this process is a pool child that attached to the segment.
_attached = False
# Each running task's pin, by task id (a task run eagerly inside another
# has its own, and gives the outer one back when it ends).
_pins: dict[str, contextvars.Token[Snapshot | None]] = {}


def _on_hint(signum: int, frame: FrameType | None) -> None:
    # Sets a flag and writes one byte to the applier's socket: the switch
    # and the callbacks run in the applier thread, never in this handler.
    _runtime.hint()


def _hint_children(publisher: Any, signum: int) -> None:
    """Send the hint to the pids in the worker table (the pool's children)."""
    me = os.getpid()
    for record in layout.read_workers(publisher.segment.buffer):
        if record.pid != me:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(record.pid, signum)


def service_of(worker: Any) -> tuple[str, ...]:
    """What tells this worker from another on the host, to name its history
    and cache files while ``HOTCFG_NAME`` is the default: the app's main
    module name and the worker's node name (``--hostname``)."""
    return (f"celery={worker.app.main}", f"hostname={worker.hostname}")


def on_worker_init(sender: Any = None, **kwargs: Any) -> None:
    """``worker_init``: publish in the parent, before the pool forks."""
    global _parent_pid
    if sender is None or getattr(sender, "app", None) not in _apps:
        return
    try:
        publisher = _runtime.ensure_publisher(
            start_watching=True, keep_history=True, service=service_of(sender)
        )
    except NotConfiguredError as exc:
        # Printed on stderr, and the worker exits 1 (Celery's logging is
        # not set up yet: a log record would say it a second time).
        raise SystemExit(f"hotcfg: {NOT_CONFIGURED}") from exc
    except HotcfgError as exc:
        raise SystemExit(f"hotcfg: {exc}") from exc
    # Also when an app module read hotcfg at import and made it standalone.
    publisher.set_role(layout.ROLE_CELERY_PARENT)
    _parent_pid = os.getpid()
    signum = _runtime.settings().hint_signal
    if signum is not None:
        publisher.notify = partial(_hint_children, publisher, signum)
    _logger.info(
        "hotcfg: source %s (%s), segment %s, generation %d",
        publisher.source.location,
        publisher.source.fmt,
        publisher.segment.path,
        publisher.generation,
    )


def _pool_index() -> int | None:
    """billiard's index of this pool process: unique among the live ones,
    and taken over by the child that replaces one."""
    try:
        from billiard.process import current_process
    except ImportError:  # pragma: no cover - Celery always brings billiard
        return None
    index = getattr(current_process(), "index", None)
    if isinstance(index, int) and 0 <= index < layout.WORKER_SLOTS:
        return index
    return None


def on_worker_process_init(**kwargs: Any) -> None:
    """``worker_process_init``: read the inherited segment in a pool child."""
    global _attached
    if _parent_pid is None:
        if _apps:
            _logger.warning(
                "hotcfg: this pool process did not inherit the worker's segment "
                "(worker_pool_start_method spawn?); the pool's processes elect one "
                "publisher among themselves at their first reads"
            )
        return
    if _parent_pid == os.getpid():
        return  # the solo pool: tasks run in the parent, which reads its own
    _runtime.attach_worker(slot=_pool_index())
    _attached = True
    settings = _runtime.settings()
    signum = settings.hint_signal
    if signum is not None:
        if settings.applier:
            _runtime.start_applier(signum)
        signal.signal(signum, _on_hint)
        signal.siginterrupt(signum, False)
    # A publish between the attach and the handler sent a hint that was
    # lost: look once more now.
    _runtime.hint()


def on_worker_process_shutdown(**kwargs: Any) -> None:
    """``worker_process_shutdown``: free this child's slot of the table."""
    global _attached
    if _attached:
        _attached = False
        _runtime.shutdown()  # the applier; the publisher is the parent's
        _runtime.reader().close()


def on_task_prerun(task_id: str | None = None, **kwargs: Any) -> None:
    """``task_prerun``: pin one snapshot for the task."""
    if task_id is not None:
        _pins[task_id] = _api.pin()


def on_task_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    """``task_postrun``: end the task's pin (an outer task's is back)."""
    token = _pins.pop(task_id, None) if task_id is not None else None
    if token is None:
        return
    try:
        _api.unpin(token)
    except ValueError:  # not the context that pinned (never seen in Celery)
        _api.unpin()


def on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    """``worker_shutdown``: stop watching and remove the segment (parent)."""
    if _parent_pid == os.getpid():
        _runtime.shutdown()


def install(app: Any) -> None:
    """Run hotcfg in the workers of the Celery ``app``.

    Call it in the module that ``celery -A`` imports (where the app is
    made), so that the worker's parent process has connected the signals
    before it starts. Calling it again does nothing more.

    Args:
        app: the ``celery.Celery`` application.
    """
    from celery import signals

    if app not in _apps:
        _apps.append(app)
    receivers = (
        (signals.worker_init, on_worker_init),
        (signals.worker_process_init, on_worker_process_init),
        (signals.worker_process_shutdown, on_worker_process_shutdown),
        (signals.task_prerun, on_task_prerun),
        (signals.task_postrun, on_task_postrun),
        (signals.worker_shutdown, on_worker_shutdown),
    )
    for sig, receiver in receivers:
        sig.connect(receiver, weak=False, dispatch_uid=_DISPATCH_UID)
