"""Master side: load -> validate -> encode -> write the next generation -> notify.

One publisher per host (the Gunicorn master, or a standalone process). A
document becomes a generation only after it parsed, validated, encoded and
decoded back exactly as a worker will decode it; on any failure the live
generation stays, the reason goes into the segment's header (for
``hotcfg status``) and into the log, once per distinct reason.

Fork story: Gunicorn forks workers from the main thread while the watcher
thread may be publishing. ``os.register_at_fork`` takes every publisher's
write lock before a fork, so a child never starts with a half-written
header, and gives the child fresh locks. In the child the publisher is inert
(every method checks the pid), so a worker never publishes, never signals
and never removes the master's segment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from . import _layout, _payload
from ._errors import ConfigError, HotcfgError
from ._segment import Segment
from ._settings import Settings
from ._sources import FileSource
from ._watch import Watcher

_logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[Publisher] = weakref.WeakSet()


def _no_notify() -> None:
    pass


def validate_source(settings: Settings) -> tuple[dict[str, Any], bytes]:
    """Everything a publish checks, without publishing: load, validate,
    encode and decode back as a worker will (``hotcfg validate``, framework
    checks).

    Returns:
        The validated mapping and its encoded payload.

    Raises:
        NotConfiguredError: no source in ``settings``.
        ConfigError: with the file, the place and the reason.
    """
    source = FileSource.from_settings(settings)
    data = source.load()
    payload = _payload.encode(data, source=source.path)
    _payload.decode_payload(payload)
    return data, payload


class Publisher:
    """Publishes a source's documents into a segment.

    Args:
        source: where documents come from.
        segment: the segment this process created.
        notify: called after each new generation (Gunicorn: hint the workers).
        debounce_ms: quiet time after file events before reading the file.
        watch: ``auto``, ``events`` or ``poll`` (see :class:`Watcher`).
        poll_interval_ms: how often the watcher stats the file.
    """

    def __init__(
        self,
        source: FileSource,
        segment: Segment,
        *,
        notify: Callable[[], None] = _no_notify,
        debounce_ms: float = 100.0,
        watch: str = "auto",
        poll_interval_ms: float = 1000.0,
    ) -> None:
        self.source = source
        self.segment = segment
        self.notify = notify
        self.debounce_ms = debounce_ms
        self.watch = watch
        self.poll_interval_ms = poll_interval_ms
        self._owner_pid = os.getpid()
        self._serial = threading.RLock()  # one publish at a time
        self._write_lock = threading.Lock()  # held across segment writes; quiesces fork
        self._digest: bytes | None = None
        self._last_error: str | None = None
        self._watcher: Watcher | None = None
        _LIVE.add(self)

    @property
    def _active(self) -> bool:
        return os.getpid() == self._owner_pid

    @property
    def generation(self) -> int:
        return _layout.read_generation(self.segment.buffer)

    @property
    def last_error(self) -> str | None:
        """The reason the last attempt was rejected, or None if it succeeded."""
        return self._last_error

    def publish_from_source(self, *, raise_errors: bool = False) -> int | None:
        """Read the source and publish it if it is valid and changed.

        Returns:
            The new generation, or None (unchanged, rejected, or not the master).

        Raises:
            ConfigError: only with ``raise_errors``; otherwise it is recorded.
        """
        if not self._active:
            return None
        with self._serial:
            try:
                data = self.source.load()
                return self.publish(data)
            except HotcfgError as exc:
                self._reject(exc)
                if raise_errors:
                    raise
            # Nothing may escape into the watcher thread: report and keep serving.
            except Exception as exc:
                self._reject(exc, unexpected=True)
                if raise_errors:
                    raise
            return None

    def publish(self, data: Mapping[str, Any]) -> int | None:
        """Publish an already validated mapping as the next generation.

        The payload is decoded back before it goes live: what a worker could
        not decode is rejected here, in the master.

        Returns:
            The new generation, or None when the content did not change.
        """
        if not self._active:
            return None
        with self._serial:
            payload = _payload.encode(data, source=self.source.path)
            _payload.decode_payload(payload)
            digest = hashlib.blake2b(payload, digest_size=16).digest()
            if digest == self._digest:
                self._accept()
                _logger.debug("hotcfg: %s unchanged; no publish", self.source.label)
                return None
            with self._write_lock:
                header = _layout.read_header(self.segment.buffer)
                offset = _layout.plan_offset(header, len(payload))
                self.segment.ensure_capacity(offset + len(payload))
                buffer = self.segment.buffer
                generation = header.generation + 1
                crc = _layout.write_payload(
                    buffer, offset, payload, generation=generation
                )
                _layout.commit(
                    buffer,
                    generation=generation,
                    offset=offset,
                    length=len(payload),
                    crc=crc,
                    published_at=time.time(),
                    source=self.source.label,
                    writer_pid=os.getpid(),
                )
            self._digest = digest
            self._last_error = None
            _logger.info(
                "hotcfg: published generation %d from %s (%d bytes)",
                generation,
                self.source.path,
                len(payload),
            )
        self._notify()
        return generation

    def _accept(self) -> None:
        if self._last_error is not None:
            self._last_error = None
            with self._write_lock:
                _layout.clear_error(self.segment.buffer)
            _logger.info(
                "hotcfg: %s is valid again (unchanged); generation %d stays",
                self.source.path,
                self.generation,
            )

    def _reject(self, exc: BaseException, *, unexpected: bool = False) -> None:
        """Record every rejection in the segment; log each distinct one once.

        A file saved again with the same mistake (or a watcher firing twice
        for one save) must not fill the log with the same line.
        """
        if isinstance(exc, ConfigError):
            reason = str(exc)  # starts with the path and the place
        else:
            reason = f"{self.source.path}: {type(exc).__name__}: {exc}"
        with self._write_lock:
            _layout.record_error(self.segment.buffer, reason, at=time.time())
        if reason != self._last_error:
            _logger.error(
                "hotcfg: rejected %s (keeping generation %d)",
                reason,
                self.generation,
                exc_info=exc if unexpected else None,
            )
        self._last_error = reason

    def _notify(self) -> None:
        try:
            self.notify()
        except Exception:
            _logger.exception("hotcfg: notifying workers failed")

    def forget_worker(self, slot: int) -> None:
        """Free a worker-table slot whose worker exited (master only)."""
        if self._active:
            _layout.clear_worker(self.segment.buffer, slot)

    def start_watching(self) -> None:
        """Watch the source and publish on change (idempotent; returns at once)."""
        if not self._active or self._watcher is not None:
            return
        self._watcher = Watcher(
            self.source.path,
            debounce_ms=self.debounce_ms,
            on_change=self.publish_from_source,
            poll_interval_ms=self.poll_interval_ms,
            mode=self.watch,
        )
        self._watcher.start()

    def close(self) -> None:
        """Stop watching and remove the segment (only in the creating process)."""
        if not self._active:
            return
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        with self._write_lock:
            self.segment.close(unlink=True)


def _before_fork() -> None:
    for publisher in list(_LIVE):
        publisher._write_lock.acquire()


def _after_fork_in_parent() -> None:
    for publisher in list(_LIVE):
        publisher._write_lock.release()


def _after_fork_in_child() -> None:
    for publisher in list(_LIVE):
        publisher._write_lock = threading.Lock()
        publisher._serial = threading.RLock()
        publisher._watcher = None  # its threads do not exist in the child


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
