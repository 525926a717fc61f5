"""Reading a configuration file: path -> bytes -> validated mapping.

The only module that opens configuration files. It reads with a size cap and
refuses anything but a regular file (a FIFO or a device would block or never
end), then hands the bytes to the pure ``_loaders`` and ``_validate``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _loaders, _validate
from ._errors import ConfigError, NotConfiguredError, SourceError
from ._settings import Settings


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
        chunks = []
        remaining = max_bytes + 1  # one more byte proves the file grew past the cap
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", source=path) from exc
    finally:
        os.close(fd)
    content = b"".join(chunks)
    if len(content) > max_bytes:
        raise SourceError(f"file is over the {max_bytes}-byte limit", source=path)
    return content


def load_document(
    content: bytes,
    *,
    fmt: str,
    source: str,
    validators: Sequence[_validate.Validator] = (),
) -> dict[str, Any]:
    """Parse and validate one document (everything but reading it)."""
    if not content.strip():
        raise SourceError("file is empty", source=source)
    data = _loaders.parse(content, fmt=fmt, source=source)
    if fmt == "toml" and not data:
        # TOML has no way to write an empty document but comments and blank
        # lines: treat it like YAML's comment-only file (a truncated write).
        data = None
    data = _validate.check_document(data, source=source)
    return _validate.run_validators(data, validators, source=source)


@dataclass(slots=True)
class FileSource:
    """A configuration file with its format and validators.

    Attributes:
        path: absolute path of the file (it may not exist yet).
        label: how the source is named in the segment and in ``status``.
    """

    path: str
    fmt: str
    max_bytes: int
    validators: Sequence[_validate.Validator] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSource:
        """Build the source described by ``settings``.

        Raises:
            NotConfiguredError: no source given.
            ConfigError: unknown format, or a bad validator or schema.
        """
        if not settings.source:
            raise NotConfiguredError(
                "no configuration source: set HOTCFG_SOURCE to a YAML, JSON or "
                "TOML file, or call hotcfg.configure(source=...)"
            )
        path = os.path.abspath(settings.source)
        fmt = settings.format or _loaders.format_for(path)
        validators: list[_validate.Validator] = []
        if settings.validator:
            validators.append(_validate.import_validator(settings.validator))
        if settings.schema:
            validators.append(load_schema(settings.schema))
        return cls(path, fmt, settings.max_bytes, tuple(validators))

    @property
    def label(self) -> str:
        return f"file:{self.path}"

    def load(self) -> dict[str, Any]:
        """Read, parse and validate the file now.

        Raises:
            ConfigError: with the file, the place and the reason.
        """
        content = read_capped(self.path, max_bytes=self.max_bytes)
        return load_document(
            content, fmt=self.fmt, source=self.path, validators=self.validators
        )


def load_schema(path: str) -> _validate.Validator:
    """A validator for the JSON Schema file at ``path`` (JSON or YAML)."""
    content = read_capped(path, max_bytes=8 * 1024 * 1024)
    fmt = "json" if path.endswith(".json") else _loaders.format_for(path)
    schema = _loaders.parse(content, fmt=fmt, source=path)
    if not isinstance(schema, dict):
        raise ConfigError("a JSON Schema must be a mapping", source=path)
    return _validate.schema_validator(schema, label=os.path.basename(path))


def dumps(data: Any) -> str:
    """JSON text of a thawed config, for the CLI."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=repr)
