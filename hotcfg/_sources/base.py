"""Where documents come from: the :class:`Source` interface, and files.

A source reads once, then watches (or polls) and reports changes and
failures; the publisher holds a :class:`Source` and does not know which kind
(docs/design.md, "Sources"). :func:`source_for` picks one from the settings:
a file (here), etcd (``_etcd``) or an http(s) URL (``_http``), each imported
only when named; several, or any ``HOTCFG_SET__*`` override, make a
``_layered.LayeredSource`` of them.

The only module that opens configuration files. It reads with a size cap and
refuses anything but a regular file (a FIFO or a device would block or never
end), then hands the bytes to the pure ``loaders`` and ``validate``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .._content import loaders, typed, validate
from .._content.layers import overrides_from, split_sources
from .._errors import ConfigError, NotConfiguredError, SourceError
from .._settings import ETCD_SCHEME, Settings, is_http

_logger = logging.getLogger(__name__)


class Watching(Protocol):
    """A source being watched, from :meth:`Source.watch`."""

    def notice(self) -> None:
        """Call ``on_change`` again soon, even with nothing new (a reload)."""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop watching; no ``on_change`` call starts after it returns."""


class Source(Protocol):
    """Where the publisher's documents come from.

    Attributes:
        label: names the source in the segment, the history and ``status``.
        location: names it in errors and logs (a path, an etcd URL).
            Neither holds a secret: a URL's credentials and query values
            are hidden (``_settings.redact_url``).
        fmt: ``yaml``, ``json`` or ``toml``.
    """

    @property
    def label(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def fmt(self) -> str: ...

    def load(self) -> dict[str, Any]:
        """The source's current document, parsed (not yet validated).

        Raises:
            ConfigError: with the place and the reason (missing, unreachable,
                empty, not parsable); the publisher keeps the last good one.
        """

    def refresh(self) -> None:
        """Bring what :meth:`load` returns up to the store as it is now,
        without waiting for the watch's next event or the next poll (``hotcfg
        wait``). Never older than what the watch holds: where both read, the
        newer answer stays. Nothing to do where :meth:`load` reads anyway (a
        file, a source not watched).

        Raises:
            ConfigError: the store cannot be read now.
        """

    def watch(self, on_change: Callable[[], object], settings: Settings) -> Watching:
        """Start watching: ``on_change`` is called from a thread of the
        source's own after each change or failure; it then calls
        :meth:`load`. Returns at once.

        Raises:
            SourceError: watching cannot start.
        """


def source_for(
    settings: Settings, *, environ: Mapping[str, str] | None = None
) -> Source:
    """The source ``settings`` name.

    Several sources (``a | b``), or ``HOTCFG_SET__*`` overrides in
    ``environ`` (default ``os.environ``, read now: a master reads them once,
    when it builds its source), give a ``LayeredSource`` of them.

    Raises:
        NotConfiguredError: no source given.
        ConfigError: an override cannot be understood, naming its variable.
    """
    overrides = overrides_from(os.environ if environ is None else environ)
    if overrides or len(split_sources(settings.source or "")) > 1:
        from .layered import LayeredSource  # it builds its layers here

        return LayeredSource.from_settings(settings, overrides)
    if settings.source and settings.source.startswith(ETCD_SCHEME):
        from .etcd.source import EtcdSource  # only a master watching etcd needs it

        return EtcdSource.from_settings(settings)
    if settings.source and is_http(settings.source):
        from .http.source import HttpSource  # only a master polling a URL needs it

        return HttpSource.from_settings(settings)
    return FileSource.from_settings(settings)


def read_fd(fd: int, *, max_bytes: int) -> bytes:
    """Read ``fd`` to its end, but at most one byte more than ``max_bytes``
    (which proves the file grew past the cap)."""
    chunks = []
    remaining = max_bytes + 1
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_capped(path: str, *, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes``.

    Symlinks are followed on purpose: Kubernetes mounts ConfigMaps as
    symlinks into a ``..data`` directory.

    Raises:
        SourceError: missing, unreadable, not a regular file, or too large.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceError("file not found", source=path) from None
    except OSError as exc:
        raise SourceError(f"cannot open: {exc.strerror}", source=path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError("not a regular file", source=path)
        if info.st_size > max_bytes:
            raise SourceError(
                f"file is {info.st_size} bytes, over the {max_bytes}-byte limit",
                source=path,
            )
        content = read_fd(fd, max_bytes=max_bytes)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", source=path) from exc
    finally:
        os.close(fd)
    if len(content) > max_bytes:
        raise SourceError(f"file is over the {max_bytes}-byte limit", source=path)
    return content


def warn_if_others_read(variable: str, path: str) -> None:
    """Log a WARNING when the secret file ``path`` (named by ``variable``)
    is readable by other users.

    Warn, not refuse: Kubernetes mounts secrets 0644 by default and Docker
    0444, private through their directory rather than their mode.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o004:
        _logger.warning(
            "hotcfg: %s %s is readable by other users (mode %04o); chmod 600 it",
            variable,
            path,
            mode & 0o7777,
        )


def load_document(content: bytes, *, fmt: str, source: str) -> dict[str, Any]:
    """Parse one document and check it is a publishable mapping (everything
    but reading it, and the user's validators)."""
    if not content.strip():
        raise SourceError("file is empty", source=source)
    data = loaders.parse(content, fmt=fmt, source=source)
    if fmt == "toml" and not data:
        # TOML has no way to write an empty document but comments and blank
        # lines: treat it like YAML's comment-only file (a truncated write).
        data = None
    return validate.check_document(data, source=source)


@dataclass(frozen=True, slots=True)
class FileSource:
    """A configuration file and its format.

    It reads and parses; whether a document is good beyond being a mapping
    of plain values is for the validators, which the publisher runs.

    Attributes:
        path: absolute path of the file (it may not exist yet).
        fmt: ``yaml``, ``json`` or ``toml``.
        max_bytes: largest file accepted.
    """

    path: str
    fmt: str
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSource:
        """The source described by ``settings`` (resolved: absolute, with a format).

        Raises:
            NotConfiguredError: no source given.
        """
        if not settings.source or not settings.format:
            raise NotConfiguredError(
                "no configuration source: set HOTCFG_SOURCE to a YAML, JSON or "
                "TOML file, or call hotcfg.configure(source=...)"
            )
        return cls(settings.source, settings.format, settings.max_bytes)

    @property
    def label(self) -> str:
        return f"file:{self.path}"

    @property
    def location(self) -> str:
        return self.path

    def load(self) -> dict[str, Any]:
        """Read and parse the file now.

        Raises:
            ConfigError: with the file, the place and the reason.
        """
        content = read_capped(self.path, max_bytes=self.max_bytes)
        return load_document(content, fmt=self.fmt, source=self.path)

    def refresh(self) -> None:
        """Nothing: :meth:`load` reads the file each time."""

    def watch(self, on_change: Callable[[], object], settings: Settings) -> Watching:
        """Watch the file's directory (``_watch``), with the settings'
        debounce, poll interval and mode."""
        from .watch import Watcher  # watchdog: only where a file is watched

        watcher = Watcher(
            self.path,
            debounce_ms=settings.debounce_ms,
            on_change=on_change,
            poll_interval_ms=settings.poll_interval_ms,
            mode=settings.watch,
        )
        watcher.start()
        return watcher


def validators_for(settings: Settings) -> tuple[validate.NamedValidator, ...]:
    """The user's checks that ``settings`` name, in the order they run:
    ``HOTCFG_VALIDATOR``, ``HOTCFG_SCHEMA``, ``HOTCFG_MODEL``.

    Raises:
        ConfigError: a validator or model cannot be imported, or the schema
            cannot be read or is not a valid JSON Schema.
    """
    validators: list[validate.NamedValidator] = []
    if settings.validator:
        validators.append(
            (
                f"validator {settings.validator}",
                validate.import_validator(settings.validator),
            )
        )
    if settings.schema:
        validators.append(
            (
                f"schema {settings.schema}",
                load_schema(settings.schema, max_bytes=settings.max_bytes),
            )
        )
    if settings.model:
        model = typed.import_model(settings.model)
        validators.append((f"model {settings.model}", typed.model_validator(model)))
    return tuple(validators)


def load_schema(path: str, *, max_bytes: int) -> validate.Validator:
    """A validator for the JSON Schema file at ``path`` (JSON or YAML)."""
    content = read_capped(path, max_bytes=max_bytes)
    fmt = "json" if path.endswith(".json") else loaders.format_for(path)
    schema = loaders.parse(content, fmt=fmt, source=path)
    if not isinstance(schema, dict):
        raise ConfigError("a JSON Schema must be a mapping", source=path)
    return validate.schema_validator(schema, label=os.path.basename(path))


def dumps(data: Any) -> str:
    """JSON text of a thawed config, for the CLI."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=repr)
