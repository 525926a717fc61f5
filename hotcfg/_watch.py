"""Master side: file-system events -> Debouncer -> one callback per burst.

The only module that imports watchdog. It watches the file's *directory*,
not the file: editors and deployment tools replace files (write a temp file
and rename it over, rename the old one away and create a new one, delete and
recreate), and Kubernetes swaps a ``..data`` symlink; a watch on the file's
inode would see none of that after the first save.

Events are filtered to the file's own name and Kubernetes' ``..``-prefixed
entries, fed to a pure :class:`~hotcfg._debounce.Debouncer`, and a dedicated
thread calls ``on_change`` once the burst is quiet. That thread never dies of
an exception: it logs and goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ._debounce import Debouncer
from ._errors import SourceError

_logger = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = (event.src_path, getattr(event, "dest_path", "") or "")
        if any(self._watcher.is_relevant(os.fsdecode(p)) for p in paths if p):
            self._watcher.notice()


class Watcher:
    """Calls ``on_change`` after each quiet burst of changes to ``path``.

    Args:
        path: absolute path of the watched file (it may not exist yet).
        debounce_ms: quiet time before ``on_change``; 0 reacts to each event.
        on_change: called from the watcher's own thread.
    """

    def __init__(
        self, path: str, *, debounce_ms: float, on_change: Callable[[], object]
    ) -> None:
        self.path = path
        self._on_change = on_change
        self._debouncer = Debouncer(
            quiet_ms=debounce_ms, max_ms=max(1000.0, 10 * debounce_ms)
        )
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: Any = None
        self._thread: threading.Thread | None = None
        self._names = {os.path.basename(path)}
        self._dirs = {os.path.dirname(path)}
        real = os.path.realpath(path)
        if real != path:  # a symlink (Kubernetes): also watch where it points
            self._names.add(os.path.basename(real))
            self._dirs.add(os.path.dirname(real))

    def is_relevant(self, path: str) -> bool:
        name = os.path.basename(path)
        return name in self._names or name.startswith("..")

    def notice(self) -> None:
        with self._cond:
            self._debouncer.event(time.monotonic())
            self._cond.notify()

    def start(self) -> None:
        """Start the observer and the publishing thread.

        Raises:
            SourceError: the file's directory does not exist.
        """
        observer = Observer()
        handler = _Handler(self)
        for directory in sorted(self._dirs):
            if not os.path.isdir(directory):
                if directory == os.path.dirname(self.path):
                    raise SourceError("directory does not exist", source=directory)
                continue
            observer.schedule(handler, directory, recursive=False)
        observer.daemon = True
        observer.name = "hotcfg-watchdog"
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(
            target=self._run, name="hotcfg-publisher", daemon=True
        )
        self._thread.start()
        _logger.info("hotcfg: watching %s", self.path)

    def _next_burst(self) -> bool:
        """Wait until a burst is due; False when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._debouncer.due(now):
                    return True
                self._cond.wait(timeout=self._debouncer.wait_s(now))
            return False

    def _run(self) -> None:
        while self._next_burst():
            try:
                self._on_change()
            # The watcher must outlive any failure: log it and keep watching.
            except Exception:
                _logger.exception(
                    "hotcfg: error while handling a change to %s", self.path
                )

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout_s)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
