"""A read at import time: warn, once per call site, that it never changes.

``TIMEOUT = hotcfg.get("db.timeout")`` at a module's top level runs once,
while the module is imported (by Gunicorn's worker, ``flask run``,
``django.setup()``), and the name keeps that value for the life of the
process: every later change of the configuration passes it by, silently.
:func:`warn_if_importing` logs a WARNING naming the call site
(``file:line``), once per site and process, when ``hotcfg.get()``,
``snapshot()`` or ``require()`` run while this thread is importing a module
and no request is pinned (docs/decisions/0064).

Cheap by construction, because ``get()`` runs many times a request:

* A request's reads never get here: ``_api`` asks only where no snapshot is
  pinned (or for a volatile read, only when none is pinned either).
* importlib holds a lock per module while it runs the module's code, and
  keeps them in a dict (``importlib._bootstrap._module_locks``) that is
  empty whenever no thread imports anything. ``_api`` tests the truth of
  :data:`imports_in_progress`, that dict, before calling here: outside
  imports the whole check is that test.
* Only while some thread imports, the locks are looked at: one held by
  this thread (its ``owner``, the thread's ident, with a ``count``) means
  this thread's read runs inside an import. Another thread's import (a
  lazy import in a request handler) is not ours and says nothing.

Where that private dict is missing (another Python implementation),
:data:`imports_in_progress` is a non-empty stand-in, so every read outside
a request comes here, and the stack is walked for importlib's frames
instead: slower, and still only off the request path.

Imports nothing from hotcfg: it is on a worker's per-request path.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

_logger = logging.getLogger(__name__)

_BOOTSTRAP = importlib.import_module("importlib._bootstrap")
_LOCKS: Mapping[str, Any] | None = getattr(_BOOTSTRAP, "_module_locks", None)

#: True (non-empty) whenever some thread may be importing a module: the one
#: test ``_api`` makes before calling :func:`warn_if_importing`.
imports_in_progress: Mapping[str, Any] = (
    _LOCKS if _LOCKS is not None else {"": "no module locks to look at"}
)

# Call sites warned about already: (file, line). Finite: lines of code.
_warned: set[tuple[str, int]] = set()

_IMPORTLIB_FRAMES = "<frozen importlib._bootstrap"


def importing() -> bool:
    """Whether this thread is importing a module (running its code) now."""
    if _LOCKS is None:
        return _importing_by_frames(sys._getframe(1))
    if not _LOCKS:
        return False
    me = threading.get_ident()
    # A copy: another thread's import may add or drop a lock meanwhile.
    for ref in tuple(_LOCKS.values()):
        lock = ref()
        if lock is not None and getattr(lock, "owner", None) == me and lock.count:
            return True
    return False


def _importing_by_frames(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(_IMPORTLIB_FRAMES):
            return True
        frame = frame.f_back
    return False


def warn_if_importing(function: str) -> None:
    """Log, once per call site, a read of ``hotcfg.<function>()`` made
    while this thread imports a module.

    Call it directly from the public function (``get``, ``snapshot``,
    ``require``), only when no request is pinned: the call site is the
    frame two above this one.
    """
    if not importing():
        return
    frame = sys._getframe(2)
    site = (frame.f_code.co_filename, frame.f_lineno)
    if site in _warned:
        return
    _warned.add(site)
    _logger.warning(
        "hotcfg.%s() at %s:%d runs while a module is being imported: the value "
        "is read once, now, and never changes with the configuration; read it "
        "where it is used (in the request, or in a function called then)",
        function,
        site[0],
        site[1],
    )
