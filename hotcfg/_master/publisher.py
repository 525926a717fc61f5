"""Master side: load -> validate -> encode -> write the next generation -> notify.

One publisher per host (the Gunicorn master, or a standalone process). A
document becomes a generation only after it parsed, validated, encoded and
decoded back exactly as a worker will decode it; on any failure the live
generation stays, the reason goes into the segment's header (for
``hotcfg status``) and into the log, once per distinct reason.

User code runs here (validators, the schema and model checks): nothing it
does may stop publishing. Whatever it raises is a rejection (see
``_content.validate.run_validators``), and a validator that hangs is reported, not
interrupted: a thread cannot be, so the monitor thread logs "validating
since" every ``HOTCFG_VALIDATOR_WARN_MS`` and ``hotcfg status`` shows it
(docs/design.md, "User code in the master").

Fork story: Gunicorn forks workers from the main thread while the watcher
thread may be publishing. ``os.register_at_fork`` takes every publisher's
write lock before a fork, so a child never starts with a half-written
header, and gives the child fresh locks. In the child the publisher is inert
(every method checks the pid), so a worker never publishes, never signals
and never removes the master's segment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._content import layers as _layers
from .._content import validate as _validate
from .._content.layers import Layer, Override
from .._errors import (
    ConfigError,
    HotcfgError,
    ParseError,
    SourceError,
    UnreachableError,
    ValidationError,
)
from .._segment import layout
from .._segment import payload as _payload
from .._segment.shm import Segment
from .._settings import Settings
from .._sources.base import Source, Watching
from .._sources.checks import validators_for
from .._sources.locations import redact_url
from . import claim, coldstart
from . import history as _history
from . import metrics as _metrics
from .convergence import Convergence
from .validating import Validating, ValidatorMonitor

_logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[Publisher] = weakref.WeakSet()

# The rejection kinds counted for ``hotcfg_rejections_total{reason=...}``.
_REJECTION_KINDS: dict[type[BaseException], str] = {
    SourceError: "source",
    UnreachableError: "source",
    ParseError: "parse",
    ValidationError: "validation",
}


@dataclass(frozen=True, slots=True)
class Who:
    """Who made a generation and why, as the history records it (each
    None when not known)."""

    action: str | None = None
    author: str | None = None
    message: str | None = None


def _who(provenance: object) -> Who | None:
    """A source's ``provenance`` (``_sources.etcd.rollout.Audit``, or
    anything with its ``action``, ``author`` and ``message``) as a
    :class:`Who`; None for none. An empty message is no message."""
    if provenance is None:
        return None
    return Who(
        getattr(provenance, "action", None) or None,
        getattr(provenance, "author", None) or None,
        getattr(provenance, "message", None) or None,
    )


def _on_canary(who: Who | None) -> bool:
    """Whether what is published is an etcd key's canary (its provenance
    says so), which the cache never keeps."""
    return who is not None and who.action == "canary"


def _no_notify() -> None:
    pass


@dataclass(frozen=True, slots=True)
class Current:
    """What :meth:`Publisher.publish_now` found.

    Attributes:
        generation: the generation holding the source's content (the live
            one when the content is unchanged, refused or unreadable).
        rejected: why the source's content is not live: the master's
            reason, naming the place.
        note: why the live generation is not the source's content although
            nothing was refused (a rollback).
    """

    generation: int
    rejected: str | None = None
    note: str | None = None


class Publisher:
    """Publishes a source's documents into a segment.

    Args:
        source: where documents come from (any kind: a file, etcd).
        segment: the segment this process created.
        settings: the resolved settings (validators, watching, debounce).
        notify: called after each new generation (Gunicorn: hint the workers).
        keep_history: keep ``settings.history`` generations in the history
            file, and the cache (the Gunicorn master); off for one-process
            uses (a script, a management command, tests), which must not
            write the files of the service they share a source with.
        service: what the server says names this service (Gunicorn: its
            ``proc_name`` and binds); part of the files' names while
            ``HOTCFG_NAME`` is the default (``claim``).
        predecessor_pid: the master this one replaces (Gunicorn's re-exec),
            whose files this one takes over.

    Raises:
        ConfigError: a validator, schema or model named in ``settings``
            cannot be loaded.
    """

    def __init__(
        self,
        source: Source,
        segment: Segment,
        settings: Settings,
        *,
        notify: Callable[[], None] = _no_notify,
        keep_history: bool = True,
        service: Sequence[str] = (),
        predecessor_pid: int | None = None,
    ) -> None:
        self.source = source
        self.segment = segment
        self.settings = settings
        self.validators = validators_for(settings)
        self.notify = notify
        self._owner_pid = os.getpid()
        self._serial = threading.RLock()  # one publish at a time
        self._write_lock = threading.Lock()  # held across segment writes; quiesces fork
        self._digest: bytes | None = None  # of the live payload
        self._source_digest: bytes | None = None  # of the source's, last read
        self._force = False  # the next read publishes even what was read before
        self._last_error: str | None = None
        # The kind (``_REJECTION_KINDS``) of the rejection standing with
        # ``_last_error``, for the metrics' gauges; None with it.
        self._rejecting: str | None = None
        self._watcher: Watching | None = None
        self.monitor = ValidatorMonitor(
            warn_ms=settings.validator_warn_ms,
            record=self._record_validating,
            location=source.location,
            generation=lambda: self.generation,
        )
        self.publishes = 0
        self._metrics: Any = None
        self.rejections: dict[str, int] = {}
        self.convergence = Convergence(
            lambda: layout.read_workers(self.segment.buffer),
            warn_ms=settings.apply_warn_ms,
        )
        self._closers: list[Callable[[], None]] = []
        directory = os.path.dirname(segment.path)
        # The label hides a URL's query values (a presigned URL's signature),
        # so two URLs that differ only there share one: the files are named
        # by the source as configured too, which is hashed, never shown.
        named = source.label
        if (
            settings.source is not None
            and redact_url(settings.source) != settings.source
        ):
            named = f"{source.label}\0{settings.source}"
        self._named = named
        self._live_entry: _history.Entry | None = None  # the last publish
        # A canary was published and not cached: the cache holds an older
        # generation of the key (saved again once the key serves).
        self._cache_behind = False
        # The files of this service, and of no other live master (claim).
        self.files = (
            claim.claim(
                directory,
                settings.name,
                named,
                service=service,
                predecessor=predecessor_pid,
            )
            if keep_history
            else None
        )
        self.history = _history.History.open(
            self.files.history_path
            if self.files is not None
            else _history.path_for(directory, settings.name, named),
            keep=settings.history if self.files is not None else 0,
        )
        self.cache_path: str | None = None
        if self.files is not None and source.keeps_cache:
            self.cache_path = self.files.cache_path
            _history.remove_stale_temps(self.cache_path)
        self.from_cache: _history.Entry | None = None  # serving it since start
        # The live generation and, when a LayeredSource's load made it, the
        # layers' documents (``hotcfg get --explain``); None for a rollback,
        # the cache, or one plain source. Set after the commit: a reader that
        # finds another generation in the segment asks again.
        self.live_layers: tuple[int, tuple[Layer, ...] | None] | None = None
        _LIVE.add(self)

    @property
    def overrides(self) -> tuple[Override, ...]:
        """The ``HOTCFG_SET__*`` overrides of this master's environment (read
        when its source was built), applied over every document it
        publishes: the source's, the cache's, a rollback's."""
        return self.source.overrides

    @property
    def serial(self) -> threading.RLock:
        """Held through a read of the source and its publish (or its
        rejection): a reader holding it sees the two together."""
        return self._serial

    @property
    def write_lock(self) -> threading.Lock:
        """Held while the segment is written or grown; a reader of the
        master's own mapping from another thread (metrics) holds it too."""
        return self._write_lock

    @property
    def _active(self) -> bool:
        return os.getpid() == self._owner_pid

    @property
    def generation(self) -> int:
        return layout.read_generation(self.segment.buffer)

    @property
    def last_error(self) -> str | None:
        """The reason the last attempt was rejected, or None if it succeeded."""
        return self._last_error

    @property
    def rejecting(self) -> str | None:
        """The kind of the rejection standing now (``"source"``: the source
        could not be read; ``"parse"``, ``"validation"``, ``"other"``,
        ``"error"``), or None. Set and cleared with :attr:`last_error`, so
        the metrics' gauges say what ``hotcfg status`` says."""
        return self._rejecting if self._last_error is not None else None

    @property
    def serves_source(self) -> bool:
        """Whether the live generation holds what the source held at its
        last good read: False after a rollback or from the cache, until the
        source's content is published (or read again equal to the live
        one). The fleet record tells a rollback from the key's content by it."""
        return self._digest is not None and self._digest == self._source_digest

    @property
    def validating(self) -> Validating | None:
        """The validator running now, if any."""
        return self.monitor.current

    def start(self, *, start_empty: bool = False) -> int | None:
        """The first publish: the source's content, or else the cache.

        When the source cannot be read because its store is unreachable
        (:class:`UnreachableError`), the cached payload (``coldstart``) is
        validated and published instead, and the reason, with the cache's
        age, is recorded as the last error until the store answers again
        (the watcher then publishes the live content). Any other failure, or
        no usable cache, refuses, unless ``start_empty``.

        Returns:
            The generation published, or None (started empty).

        Raises:
            ConfigError: the source is bad at start and there is no cache to
                fall back on (without ``start_empty``).
        """
        try:
            return self.publish_from_source(raise_errors=True)
        except UnreachableError as exc:
            generation = self._start_from_cache(exc)
            if generation is not None or start_empty:
                return generation
            raise
        except KeyboardInterrupt:
            raise
        except BaseException:
            if start_empty:
                return None
            raise

    def _start_from_cache(self, unreachable: UnreachableError) -> int | None:
        """Publish the cached payload; None when there is none to trust."""
        if self.cache_path is None:
            return None
        entry = coldstart.load(self.cache_path)
        if entry is None:
            _logger.error(
                "hotcfg: %s and no cache file (%s) to start from",
                unreachable,
                self.cache_path,
            )
            return None
        try:
            with self._serial:
                origin = f"the cache file {self.cache_path} (published at start)"
                data, base, layers = self._under_overrides(entry, origin)
                generation = self.publish(
                    data,
                    source=f"cache:{self.source.label}",
                    cache=False,
                    base=base,
                    layers=layers,
                )
        except HotcfgError as exc:
            _logger.error(
                "hotcfg: %s, and the cache file %s is refused now: %s",
                unreachable,
                self.cache_path,
                exc,
            )
            return None
        self.from_cache = entry
        _logger.warning(
            "hotcfg: %s%s (generation %d then); the live content is published "
            "when the store answers",
            unreachable,
            self._cache_note(),
            entry.generation,
        )
        self._last_error = str(unreachable)  # logged once, just above
        self._reject(unreachable)  # recorded for status, with the cache's age
        return generation

    def _under_overrides(
        self, entry: _history.Entry, origin: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None, tuple[Layer, ...]]:
        """A kept generation's document (the cache's, a rollback's) under
        this master's overrides, validated as any document is today.

        Returns:
            The mapping to publish, its base (None without overrides), and
            the layers ``--explain`` names (``origin``, the environment).

        Raises:
            HotcfgError: the document is refused now.
        """
        document = _payload.decode_payload(entry.document).to_dict()
        merged, layers = _layers.with_overrides(origin, document, self.overrides)
        _validate.check_document(merged, source=self.source.location)
        base = document if self.overrides else None
        return self._validate(merged), base, layers

    def _cache_note(self) -> str:
        """What a rejection adds while the cache is served, its age now."""
        entry = self.from_cache
        if entry is None:
            return ""
        age = max(0.0, time.time() - entry.published_at)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.published_at))
        return f"; serving the cache from {when} (age {age:.0f} s)"

    def publish_from_source(self, *, raise_errors: bool = False) -> int | None:
        """Read the source and publish it if it is valid and changed.

        Changed means: unlike what the source held at its previous read
        (and unlike the live generation). So after a rollback, re-reading
        the file (a watcher's confirming read, a touch, a save of the same
        text) does not undo it; a new content of the file does, and so does
        a reload (:meth:`request_publish`, Gunicorn's HUP).

        Args:
            raise_errors: raise a rejection instead of only recording it.

        Returns:
            The new generation, or None (unchanged, rejected, or not the master).

        Raises:
            ConfigError: only with ``raise_errors``; otherwise it is recorded.
        """
        if not self._active:
            return None
        with self._serial:
            try:
                started = time.monotonic()
                loaded = self.source.load()
                layers, base = self.source.loaded, self.source.base
                # Who made what was loaded, and why (an etcd key's audit
                # record, a canary's author); other sources know nobody.
                who = _who(getattr(self.source, "provenance", None))
                data = self._validate(loaded)
                checked_ms = (time.monotonic() - started) * 1000.0
                force, self._force = self._force, False
                generation = self.publish(
                    data,
                    checked_ms=checked_ms,
                    source_read=not force,
                    layers=layers,
                    base=base,
                    who=who,
                )
                self.from_cache = None  # the source answered: live content now
                return generation
            except HotcfgError as exc:
                self._reject(exc)
                if raise_errors:
                    raise
            except KeyboardInterrupt as exc:
                # Ctrl-C in the main thread (the first publish, a reload)
                # stops the program; anywhere else it is just an exception.
                if threading.current_thread() is threading.main_thread():
                    raise
                self._reject(exc, unexpected=True)
            # Nothing may escape into the watcher thread: report and keep serving.
            except BaseException as exc:
                self._reject(exc, unexpected=True)
                if raise_errors:
                    raise
            return None

    def _validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run the user's validators, telling the monitor which one runs."""
        if not self.validators:
            return data
        try:
            return _validate.run_validators(
                data,
                self.validators,
                source=self.source.location,
                started=self.monitor.started,
                interruptible=threading.current_thread() is threading.main_thread(),
            )
        finally:
            self.monitor.finished()

    def _record_validating(self, name: str, since: float) -> None:
        """The validator running now, in the header (``hotcfg status``)."""
        with self._write_lock:
            layout.record_validating(self.segment.buffer, name, since=since)

    def publish(
        self,
        data: Mapping[str, Any],
        *,
        source: str | None = None,
        checked_ms: float | None = None,
        source_read: bool | None = None,
        cache: bool = True,
        layers: tuple[Layer, ...] | None = None,
        base: Mapping[str, Any] | None = None,
        who: Who | None = None,
    ) -> int | None:
        """Publish an already validated mapping as the next generation.

        The payload is decoded back before it goes live: what a worker could
        not decode is rejected here, in the master.

        Args:
            data: the mapping.
            source: the label recorded with it (default: the source's).
            checked_ms: how long reading and validating it took, for the log.
            source_read: set when ``data`` was just read from the source
                (``publish_from_source``); True: published only if it also
                differs from the source's previous read; False: a reload.
            cache: write it to the cache file too (not when it came from
                there: the cache keeps its own time).
            layers: the layers' documents ``data`` was merged from (a
                ``LayeredSource``), kept while it is live.
            base: ``data`` before the overrides and the validators, when
                there are overrides: what the history and the cache keep
                (``_master.history``); None: ``data`` is its own base.
            who: the action, author and message the history records with
                it (:class:`Who`), when known.

        Returns:
            The new generation, or None when the content did not change.
        """
        if not self._active:
            return None
        with self._serial:
            payload = _payload.encode(data, source=self.source.location)
            _payload.decode_payload(payload)
            digest = _history.digest(payload)
            read_before = source_read is True and digest == self._source_digest
            # The cache's content confirmed by the live source is published
            # once more, so the segment and status name the live source.
            confirms_cache = source_read is not None and self.from_cache is not None
            if (digest == self._digest or read_before) and not confirms_cache:
                if source_read is not None:
                    self._source_digest = digest
                    if digest == self._digest and layers is not None:
                        # The same content, now made by these layers'
                        # documents (a rollback's that is live already
                        # changes nothing: the live one was not rolled back).
                        self.live_layers = (self.generation, layers)
                self._accept()
                if self._cache_behind and not _on_canary(who) and cache:
                    # A canary promoted: the same content, now the key's.
                    self._save_cache(self._live_entry)
                _logger.debug("hotcfg: %s unchanged; no publish", self.source.label)
                return None
            # Before the commit: a base that cannot be kept is a rejection,
            # never a generation the cache and the history miss.
            kept = (
                None
                if base is None
                else _payload.encode(base, source=self.source.location)
            )
            with self._write_lock:
                # After a restart the new segment starts at 0: continue
                # from the history's last generation (docs/design.md).
                written = self.segment.write_generation(
                    payload,
                    after=self.history.last_generation,
                    source=source or self.source.label,
                )
                generation, published_at = written.generation, written.published_at
                self.live_layers = (generation, layers)
            self._digest = digest
            if source_read is not None:
                # Only once published: a publish that failed is tried again
                # at the next read of the same content.
                self._source_digest = digest
            self._last_error = None
            self.publishes += 1
            _logger.info(
                "hotcfg: published generation %d from %s (%d bytes, content %s%s)",
                generation,
                source or self.source.location,
                len(payload),
                digest.hex(),
                ""
                if checked_ms is None
                else f", read and checked in {checked_ms:.1f} ms",
            )
        self.convergence.published(generation, published_at, written.waiting)
        self._notify()
        # After the hint: workers need not wait for a file write.
        who = who or Who()
        entry = _history.Entry.of(
            generation,
            payload,
            published_at=published_at,
            source=source or self.source.label,
            base=kept,
            action=who.action,
            author=who.author,
            message=who.message,
        )
        self._live_entry = entry
        self.history.add(entry)
        if cache:
            if _on_canary(who):
                # Never cached: a master restarted while etcd is out of
                # reach would serve a canary that may have been aborted
                # meanwhile, or whose selector no longer picks this host.
                self._cache_behind = self.cache_path is not None
            else:
                self._save_cache(entry)
        return generation

    def _save_cache(self, entry: _history.Entry | None) -> None:
        """``entry`` as the cache a cold start serves (``coldstart``)."""
        if entry is not None and self.cache_path is not None:
            coldstart.save(self.cache_path, entry)
            self._cache_behind = False

    def adopt_live(self) -> None:
        """Take the live generation of a segment another process published
        into as this publisher's own (a peer that took over publishing,
        ``_master.election``): its content is the live one, so a source
        read equal to it publishes nothing, and nothing is served twice;
        the writer in the header becomes this process (``hotcfg status``).
        A header its dead writer left half-updated is made readable first."""
        if not self._active:
            return
        with self._serial, self._write_lock:
            buffer = self.segment.buffer
            layout.repair_sequence(buffer)
            layout.record_writer(buffer, os.getpid())
            if layout.read_generation(buffer) == 0:
                return
            live, payload = layout.read_consistent(
                buffer, attempts=1000, pause=os.sched_yield
            )
            self._digest = _history.digest(payload)
            self._live_entry = _history.Entry.of(
                live.generation,
                payload,
                published_at=live.published_at,
                source=live.source,
            )

    def set_role(self, role: int) -> None:
        """Say who publishes (``layout.ROLE_*``) in the header, for
        ``hotcfg status``."""
        if not self._active:
            return
        with self._write_lock:
            layout.record_role(self.segment.buffer, role)

    def keep_files(
        self, *, service: Sequence[str] = (), predecessor_pid: int | None = None
    ) -> None:
        """Keep the history and cache files from now on, as a Gunicorn
        master's publisher does from its start.

        A preloaded app that reads hotcfg at import starts this publisher
        before Gunicorn's ``on_starting``, as a standalone one, without
        files; the master then makes it its own here. The live generation
        goes into the history; when the history already holds that number or
        a later one (a previous run's), the live content is published again
        after it, so numbers keep going forward across restarts.
        """
        if not self._active or self.files is not None:
            return
        with self._serial:
            files = claim.claim(
                os.path.dirname(self.segment.path),
                self.settings.name,
                self._named,
                service=service,
                predecessor=predecessor_pid,
            )
            if files is None:
                return
            self.files = files
            self.history = _history.History.open(
                files.history_path, keep=self.settings.history
            )
            if self.source.keeps_cache:
                self.cache_path = files.cache_path
                _history.remove_stale_temps(self.cache_path)
            live = self._live_entry
            if live is None:
                return
            if live.generation <= self.history.last_generation:
                live = self._publish_again(live)
            self.history.add(live)
            if self.from_cache is None and live.action != "canary":
                self._save_cache(live)

    def _publish_again(self, entry: _history.Entry) -> _history.Entry:
        """The live payload once more, as the generation after the
        history's last (:meth:`keep_files`)."""
        with self._write_lock:
            written = self.segment.write_generation(
                entry.payload, after=self.history.last_generation, source=entry.source
            )
            layers = self.live_layers[1] if self.live_layers is not None else None
            self.live_layers = (written.generation, layers)
        self.convergence.published(
            written.generation, written.published_at, written.waiting
        )
        self._notify()
        again = _history.Entry.of(
            written.generation,
            entry.payload,
            published_at=written.published_at,
            source=entry.source,
            base=entry.base,
            action=entry.action,
            author=entry.author,
            message=entry.message,
        )
        self._live_entry = again
        return again

    def republish(
        self,
        entry: _history.Entry,
        *,
        timeout_s: float,
        author: str | None = None,
        message: str | None = None,
    ) -> int | None:
        """Publish a recorded generation's content again, as a new generation
        (``hotcfg rollback``): its document before the overrides, under this
        master's overrides, validated as any document is today. The history
        records it as a ``rollback`` by ``author``, for ``message``.

        Returns:
            The new generation, or None when that content is live already.

        Raises:
            HotcfgError: busy for ``timeout_s`` (a publish or a validator is
                running), or the payload is refused now.
        """
        if not self._active:
            raise HotcfgError("not the publishing process")
        if not self._serial.acquire(timeout=timeout_s):
            raise HotcfgError("busy publishing (a validator may be running); retry")
        try:
            origin = f"rollback to generation {entry.generation}"
            data, base, layers = self._under_overrides(entry, origin)
            label = f"rollback:{entry.generation} {self.source.label}"
            generation = self.publish(
                data,
                source=label,
                base=base,
                layers=layers,
                who=Who("rollback", author, message),
                # A canary's content, aborted perhaps, is never cached.
                cache=entry.action != "canary",
            )
        finally:
            self._serial.release()
        if generation is not None:
            _logger.warning(
                "hotcfg: rolled back to the content of generation %d as generation "
                "%d; %s still holds newer content, published again at its next change",
                entry.generation,
                generation,
                self.source.location,
            )
        return generation

    def publish_now(self, *, timeout_s: float) -> Current:
        """Read the source now, without waiting for the watcher's debounce,
        the next event or the next poll, and publish it if it changed
        (``hotcfg wait``): a change made before this call is live when it
        returns. Under the publish lock, so a publish running now finishes
        first and one that starts later reads this content or newer.

        Returns:
            The generation holding the source's content, or why there is
            none (a refusal, recorded for ``status`` as any; a rollback).

        Raises:
            HotcfgError: busy for ``timeout_s`` (a validator may be running).
        """
        if not self._active:
            raise HotcfgError("not the publishing process")
        if not self._serial.acquire(timeout=max(0.0, timeout_s)):
            raise HotcfgError("busy publishing (a validator may be running)")
        try:
            try:
                self.source.refresh()
            except ConfigError as exc:
                # Not recorded for status: the watch, not this one read,
                # says whether the source is followed.
                _logger.warning("hotcfg: cannot read the source now: %s", exc)
                return Current(self.generation, rejected=str(exc))
            generation = self.publish_from_source()
            if self._last_error is not None:  # recorded and logged as usual
                return Current(self.generation, rejected=self._last_error)
            if generation is not None:
                return Current(generation)
            live = self.generation
            if self._digest == self._source_digest:
                return Current(live)
            label = layout.read_header(self.segment.buffer).source
            return Current(
                live,
                note=f"generation {live} ({label}) is not what "
                f"{self.source.location} holds; that is published at its next "
                "change or a reload of the master (HUP)",
            )
        finally:
            self._serial.release()

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` first thing in :meth:`close` (the control socket)."""
        self._closers.append(closer)

    def _accept(self) -> None:
        if self._last_error is not None:
            self._last_error = None
            with self._write_lock:
                layout.clear_error(self.segment.buffer)
            _logger.info(
                "hotcfg: %s is valid again (unchanged); generation %d stays",
                self.source.location,
                self.generation,
            )

    def _reject(self, exc: BaseException, *, unexpected: bool = False) -> None:
        """Record every rejection in the segment; log each distinct one once.

        A file saved again with the same mistake (or a watcher firing twice
        for one save) must not fill the log with the same line.
        """
        kind = (
            _REJECTION_KINDS.get(type(exc), "other")
            if isinstance(exc, ConfigError)
            else "error"
        )
        self.rejections[kind] = self.rejections.get(kind, 0) + 1
        self._rejecting = kind
        if isinstance(exc, ConfigError):
            reason = str(exc)  # starts with the path and the place
        else:
            reason = f"{self.source.location}: {type(exc).__name__}: {exc}"
        # Started from the cache and the store is still away: say so (the
        # log line is deduplicated without the note, whose age changes).
        note = self._cache_note() if isinstance(exc, UnreachableError) else ""
        with self._write_lock:
            layout.record_error(self.segment.buffer, reason + note, at=time.time())
        if reason != self._last_error:
            _logger.error(
                "hotcfg: rejected %s%s (keeping generation %d)",
                reason,
                note,
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
            layout.clear_worker(self.segment.buffer, slot)

    def start_watching(self) -> None:
        """Watch the source and publish on change (idempotent; returns at once)."""
        if not self._active or self._watcher is not None:
            return
        self._watcher = self.source.watch(self.publish_from_source, self.settings)
        if self.settings.metrics:
            self._metrics = _metrics.serve(self, self.settings.metrics)

    def request_publish(self) -> None:
        """Read the source again soon (Gunicorn's HUP).

        When watching, the watcher thread does it: the caller (the arbiter's
        main loop) must not wait for a validator that may hang.
        """
        if not self._active:
            return
        self._force = True  # what the source holds, even after a rollback
        if self._watcher is not None:
            self._watcher.notice()
        else:
            self.publish_from_source()

    def close(self) -> None:
        """Stop watching and remove the segment (only in the creating process)."""
        if not self._active:
            return
        if not self.monitor.stop():  # closed already (atexit after a close)
            return
        self.convergence.stop()
        _metrics.stop(self._metrics)
        self._metrics = None
        for closer in self._closers:
            try:
                closer()
            except Exception:
                _logger.exception("hotcfg: closing %r failed", closer)
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        with self._write_lock:
            self.segment.close(unlink=True)
        if self.files is not None:
            self.files.release()


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
        publisher.monitor.reset_in_child()
        publisher._watcher = None  # its threads do not exist in the child
        publisher.convergence.reset_in_child()
        publisher._metrics = None  # _metrics closed the child's copy of its socket


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
