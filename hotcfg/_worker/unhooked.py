"""Whether this process is a Gunicorn worker whose master did not set hotcfg
up, and the warning that says how to fix it.

Without hotcfg's Gunicorn hooks (``-c python:hotcfg.integrations.gunicorn``
or ``install(globals())`` in the user's config file) nothing hands a worker
the master's segment, so the first read in each worker starts hotcfg
standalone there: one publisher, one file watcher and one segment per
worker, no history, no hints. It works, which is why it goes unnoticed;
this module lets the worker say so once, in its log.

How a worker is recognised: Gunicorn's arbiter forks the worker from
``spawn_worker`` and sets ``worker.pid = os.getpid()`` in the child, so a
process holding a ``gunicorn.workers.base.Worker`` whose ``pid`` is its own
is that worker (the master's ``Worker`` objects carry their children's
pids). It is looked for only where Gunicorn's worker module is loaded and
Gunicorn's arbiter set ``SERVER_SOFTWARE``, and once per process: the
standalone publisher is created once.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any

_logger = logging.getLogger(__name__)

FIX = (
    "start Gunicorn with -c python:hotcfg.integrations.gunicorn, or add "
    "'from hotcfg.integrations.gunicorn import install; install(globals())' as "
    "the last line of your Gunicorn config file"
)


def gunicorn_worker() -> Any | None:
    """This process's Gunicorn ``Worker`` object, if it is a Gunicorn worker."""
    base = sys.modules.get("gunicorn.workers.base")
    if base is None or not os.environ.get("SERVER_SOFTWARE", "").startswith(
        "gunicorn/"
    ):
        return None
    worker_class = getattr(base, "Worker", None)
    if worker_class is None:
        return None
    pid = os.getpid()
    for obj in gc.get_objects():
        if isinstance(obj, worker_class) and getattr(obj, "pid", None) == pid:
            return obj
    return None


def in_gunicorn_master() -> bool:
    """Whether this process is a Gunicorn master (its arbiter runs here and
    it is not one of its workers): a preloaded app read hotcfg at import,
    before ``on_starting``. It publishes alone, as a standalone process,
    until the hooks make that publisher the master's: never a peer."""
    if not os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return False
    if "gunicorn.arbiter" not in sys.modules:
        return False
    return gunicorn_worker() is None


def warn_if_unhooked_worker(*, shared: bool = False) -> bool:
    """Log a WARNING, in the worker's log, when this process is a Gunicorn
    worker about to run hotcfg without its master (which has no hotcfg
    hooks): standalone, or, with ``shared`` (``HOTCFG_PEERS=auto``), among
    its sibling workers, one of which publishes for the others.

    Returns:
        Whether it is such a worker.
    """
    worker = gunicorn_worker()
    if worker is None:
        return False
    if shared:
        message = (
            "hotcfg: this Gunicorn worker (pid %d) runs hotcfg without its "
            "master (pid %s), which did not set hotcfg up: the workers elect "
            "one of them to read the source and publish, and it starts after "
            "the app is loaded, so workers start on a generation the master "
            "never checked and a recycled publishing worker hands over to "
            "another. To fix it, %s"
        )
    else:
        message = (
            "hotcfg: this Gunicorn worker (pid %d) runs hotcfg standalone: its "
            "master (pid %s) did not set hotcfg up, so every worker reads the "
            "source and publishes its own segment, with no history, no hint and "
            "no 'hotcfg wait' across workers. To fix it, %s"
        )
    args = (os.getpid(), getattr(worker, "ppid", "unknown"), FIX)
    log = getattr(worker, "log", None)
    warn = getattr(log, "warning", None)
    if callable(warn):  # Gunicorn's error log, where the worker's lines go
        warn(message, *args)
    else:
        _logger.warning(message, *args)
    return True
