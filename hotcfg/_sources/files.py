"""Reading files safely, and turning a source's bytes into a document.

The only module that opens configuration files and the secret files next to
them (an etcd password, a bearer token, a CA bundle checked at startup). It
reads with a size cap and refuses anything but a regular file (a FIFO or a
device would block or never end), then hands the bytes to the pure
``_content.loaders`` and ``_content.validate`` (:func:`load_document`, which
every source and ``hotcfg push`` use).

Imports nothing of ``_sources`` (every source imports this module), and
never ``_master`` or ``_worker``.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from .._content import loaders, validate
from .._errors import SourceError

_logger = logging.getLogger(__name__)


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
