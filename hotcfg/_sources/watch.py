"""Master side: file-system events and a stat safety net -> one callback per burst.

The only module that imports watchdog. It watches the file's *directory*,
not the file: editors and deployment tools replace files (write a temp file
and rename it over, rename the old one away and create a new one, delete and
recreate), and Kubernetes swaps a ``..data`` symlink; a watch on the file's
inode would see none of that after the first save. When the file is a
symlink, the directory it resolves to is watched too.

Events are a hint, never the only path to a change. The watcher's own thread
wakes every ``poll_interval_ms`` and

* stats the file (:func:`fingerprint`); a different answer counts as an
  event. In ``poll`` mode (file systems without change events) this is the
  only source of changes; in the other modes it catches what events miss,
  such as an overflowed inotify queue, whose lost events watchdog only logs;
* checks the observer (:func:`_arm` and :meth:`Watcher._supervise`): a dead
  observer thread or emitter is restarted and reported, a watched directory
  that was deleted, recreated or swapped is watched again.

Everything goes through a pure :class:`~hotcfg._sources.debounce.Debouncer`, so a
burst of events and stat changes ends in one ``on_change`` call, made from
the watcher's thread. That thread never dies of an exception: it logs and
goes on.

Imports only ``debounce`` of ``_sources``; never ``_master`` or ``_worker``
(``file`` imports it when a file is watched, so that watchdog stays out of
every process that watches none).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .._errors import SourceError
from .._settings import WATCH_MODES
from .debounce import Debouncer

_logger = logging.getLogger(__name__)

# inotify_init() fails with EMFILE when fs.inotify.max_user_instances is
# reached, inotify_add_watch() with ENOSPC at fs.inotify.max_user_watches.
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOSPC)

Fingerprint = tuple[str, int, int, int, int, int]
DirIds = dict[str, tuple[int, int]]


def fingerprint(path: str) -> Fingerprint | None:
    """What ``stat`` says about ``path`` and where it resolves; None if absent.

    Any save changes at least one of these: a replaced file has a new inode,
    an in-place write a new size or mtime/ctime, a Kubernetes swap a new
    resolved path.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (
        os.path.realpath(path),
        info.st_dev,
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
    )


def watched_dirs(path: str) -> DirIds:
    """The existing directories to watch for ``path``, with their identities.

    The file's directory, and for a symlink the directory it resolves to. A
    directory that is deleted and recreated has a new ``(st_dev, st_ino)``:
    the old watch is dead even though the name is back.
    """
    ids: DirIds = {}
    for directory in {os.path.dirname(path), os.path.dirname(os.path.realpath(path))}:
        try:
            info = os.stat(directory)
        except OSError:
            continue
        ids[directory] = (info.st_dev, info.st_ino)
    return ids


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = (event.src_path, getattr(event, "dest_path", "") or "")
        if any(self._watcher.is_relevant(os.fsdecode(p)) for p in paths if p):
            self._watcher.notice()


def _arm(dirs: Iterable[str], handler: _Handler) -> Any:
    """A started observer on ``dirs``.

    Raises:
        OSError: inotify cannot start (limits reached) or a directory vanished.
    """
    observer = Observer()
    observer.name = "hotcfg-watchdog"
    try:
        for directory in sorted(dirs):
            observer.schedule(handler, directory, recursive=False)
        observer.start()
    except BaseException:
        _disarm(observer)
        raise
    _without_move_pairing_delay(observer)
    return observer


def _without_move_pairing_delay(observer: Any) -> None:
    """Let rename events through at once instead of after up to 0.5 s.

    watchdog's inotify emitter holds each IN_MOVED_FROM for half a second,
    waiting for its IN_MOVED_TO, and everything queued behind it waits too:
    a config renamed out of its directory and written anew, or a rename
    whose two halves arrive in two reads, was published 0.5 s late. hotcfg
    does not need the pairs (any event naming the file only means "look"),
    so the wait is set to zero. The attributes are watchdog's private ones:
    on any other shape nothing changes, and the stat check still bounds the
    delay.
    """
    for emitter in getattr(observer, "emitters", ()):
        buffer = getattr(emitter, "_inotify", None)
        # watchdog 7 keeps the delaying queue in a grouper thread, watchdog 6
        # (the newest for Python 3.10) in the inotify buffer itself.
        holder = getattr(buffer, "_move_event_grouper", buffer)
        queue: Any = getattr(holder, "_queue", None)
        # watchdog 6 names the wait delay_sec, which watchdog 7 keeps as a
        # deprecated alias of delay: ask for delay first.
        if isinstance(getattr(queue, "delay", None), (int, float)):
            queue.delay = 0
        elif isinstance(getattr(queue, "delay_sec", None), (int, float)):
            queue.delay_sec = 0


def _disarm(observer: Any, timeout_s: float = 5.0) -> None:
    observer.stop()
    if observer.is_alive() and observer is not threading.current_thread():
        observer.join(timeout_s)


def _observer_alive(observer: Any) -> bool:
    return bool(observer.is_alive()) and all(e.is_alive() for e in observer.emitters)


class Watcher:
    """Calls ``on_change`` after each quiet burst of changes to ``path``.

    Args:
        path: absolute path of the watched file (it may not exist yet).
        debounce_ms: quiet time before ``on_change``; 0 reacts to each event.
        poll_interval_ms: how often the file is stat'ed and the observer
            checked (``HOTCFG_POLL_INTERVAL_MS``).
        mode: ``auto`` (events, falling back to polling when inotify limits
            are reached), ``events`` or ``poll`` (``HOTCFG_WATCH``).
        on_change: called from the watcher's own thread.
    """

    def __init__(
        self,
        path: str,
        *,
        debounce_ms: float,
        on_change: Callable[[], object],
        poll_interval_ms: float,
        mode: str,
    ) -> None:
        if mode not in WATCH_MODES:
            raise ValueError(f"unknown watch mode {mode!r}")
        self.path = path
        self.mode = mode
        self.poll_interval_s = poll_interval_ms / 1000.0
        self._on_change = on_change
        self._debouncer = Debouncer(
            quiet_ms=debounce_ms, max_ms=max(1000.0, 10 * debounce_ms)
        )
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: Any = None
        self._armed: DirIds = {}
        self._names = frozenset({os.path.basename(path)})
        self._thread: threading.Thread | None = None
        self._fingerprint: Fingerprint | None = None
        self._confirm = False
        self._missing_reported = False
        self._arm_error: str | None = None

    @property
    def polling(self) -> bool:
        """Whether changes are found by stat alone (no observer)."""
        return self.mode == "poll"

    def is_relevant(self, path: str) -> bool:
        name = os.path.basename(path)
        return name in self._names or name.startswith("..")

    def notice(self) -> None:
        with self._cond:
            self._debouncer.event(time.monotonic())
            self._cond.notify()

    def start(self) -> None:
        """Start watching: the observer (unless polling) and the watcher thread.

        Raises:
            SourceError: the file's directory does not exist.
        """
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise SourceError("directory does not exist", source=directory)
        self._fingerprint = fingerprint(self.path)
        self._rearm()
        self._thread = threading.Thread(
            target=self._run, name="hotcfg-publisher", daemon=True
        )
        self._thread.start()
        _logger.info(
            "hotcfg: watching %s (%s, stat every %d ms)",
            self.path,
            "polling" if self.polling else "events",
            self.poll_interval_s * 1000,
        )

    def _rearm(self) -> bool:
        """(Re)start the observer on the directories that exist now.

        Returns:
            Whether an observer runs; events may have been missed before.
        """
        if self._observer is not None:
            _disarm(self._observer)
            self._observer = None
        self._armed = {}
        if self.polling:
            return False
        dirs = watched_dirs(self.path)
        self._names = frozenset(
            {os.path.basename(self.path), os.path.basename(os.path.realpath(self.path))}
        )
        if not dirs:
            return False
        try:
            self._observer = _arm(dirs, _Handler(self))
        except OSError as exc:
            if self.mode == "auto" and exc.errno in _EXHAUSTED:
                self.mode = "poll"
                _logger.warning(
                    "hotcfg: cannot watch %s for changes (%s); polling it every "
                    "%d ms instead. Raise the sysctls fs.inotify.max_user_instances "
                    "and fs.inotify.max_user_watches to get change events back.",
                    self.path,
                    exc.strerror or exc,
                    self.poll_interval_s * 1000,
                )
                return False
            # Changes are still found by the stat check; the next tick retries.
            reason = str(exc.strerror or exc)
            if reason != self._arm_error:
                _logger.error(
                    "hotcfg: cannot watch %s for changes (%s); retrying, and "
                    "checking the file every %d ms meanwhile",
                    self.path,
                    reason,
                    self.poll_interval_s * 1000,
                )
            self._arm_error = reason
            return False
        if self._arm_error is not None:
            self._arm_error = None
            _logger.info("hotcfg: watching %s for changes again", self.path)
        self._armed = dirs
        return True

    def _supervise(self) -> None:
        """Re-arm a dead or outdated observer; report one that died by itself."""
        if self.polling:
            return
        dirs = watched_dirs(self.path)
        if os.path.dirname(self.path) not in dirs:
            if not self._missing_reported:
                self._missing_reported = True
                _logger.warning(
                    "hotcfg: directory of %s is gone; keeping the last good "
                    "configuration until it is back",
                    self.path,
                )
        elif self._missing_reported:
            self._missing_reported = False
            _logger.info("hotcfg: directory of %s is back", self.path)
        healthy = self._observer is not None and _observer_alive(self._observer)
        if dirs == self._armed and (healthy or not dirs):
            return
        if dirs == self._armed and self._observer is not None:
            _logger.error(
                "hotcfg: the file watcher for %s stopped unexpectedly; restarting it",
                self.path,
            )
        # Otherwise a directory was deleted, recreated or (Kubernetes) swapped:
        # expected, not an error. Either way events were lost: look again.
        if self._rearm():
            self.notice()

    def _tick(self) -> None:
        """The periodic check: the file's stat, then the observer's health.

        A change is read once more at the next tick: timestamps are coarser
        than writes (a jiffy), so a same-size rewrite just after this stat
        could leave the stat as it is (git's "racily clean" files).
        """
        current = fingerprint(self.path)
        changed = current != self._fingerprint
        if changed or self._confirm:
            self._fingerprint = current
            self.notice()
        self._confirm = changed
        self._supervise()

    def _next_step(self, next_tick: float) -> tuple[bool, bool] | None:
        """Wait for a due burst or the next tick: (due, tick), None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                due = self._debouncer.due(now)
                tick = now >= next_tick
                if due or tick:
                    return due, tick
                wait = self._debouncer.wait_s(now)
                until_tick = next_tick - now
                self._cond.wait(until_tick if wait is None else min(wait, until_tick))
            return None

    def _run(self) -> None:
        next_tick = time.monotonic() + self.poll_interval_s
        while (step := self._next_step(next_tick)) is not None:
            due, tick = step
            if tick:
                next_tick = time.monotonic() + self.poll_interval_s
                self._guarded(self._tick)
            if due:
                self._guarded(self._on_change)

    def _guarded(self, action: Callable[[], object]) -> None:
        # The watcher must outlive any failure, SystemExit from user code
        # included (this is never the main thread): log it and keep watching.
        try:
            action()
        except BaseException:
            _logger.exception("hotcfg: error while handling a change to %s", self.path)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if self._observer is not None:
            _disarm(self._observer, timeout_s)
