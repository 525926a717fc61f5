"""Who writes a change to an etcd key and what it changes, as the audit
record beside the key (``_sources.etcd.rollout.Audit``) keeps them: the
author (``--author``, else ``user@host``) and the key paths that differ
between two of the key's documents. Shared by ``push`` (:mod:`.etcd`) and
the rollout commands (:mod:`.rollout`).
"""

from __future__ import annotations

import argparse
from typing import Any

from .._content import diff as _diff
from .._content.loaders import format_for
from .._errors import ConfigError
from .._sources.files import load_document


def author(args: argparse.Namespace) -> str:
    """``--author``, else ``user@host`` of whoever runs the command: a
    name to ask, not a proof (etcd's own users say who may write)."""
    given = getattr(args, "author", None)
    if given:
        return str(given)
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        import os

        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def message(args: argparse.Namespace) -> str:
    return str(getattr(args, "message", None) or "")


def document(value: bytes | None, fmt: str, source: str) -> dict[str, Any] | None:
    """``value`` read as a document in ``fmt``; None for no value, or one
    that is not a document (the paths are then not known)."""
    if value is None:
        return None
    try:
        return load_document(value, fmt=fmt, source=source)
    except ConfigError:
        return None


def changed_paths(
    old: dict[str, Any] | None, new: dict[str, Any] | None
) -> tuple[str, ...]:
    """The key paths that differ (``db.pool.size``); a missing document is
    empty (everything added or removed)."""
    changes = _diff.diff(old or {}, new or {})
    return tuple(_diff.format_path(change.path) for change in changes)


def key_format(key: str, masters: list[dict[str, Any]] | None = None) -> str:
    """The format a key's documents are read in: the live masters' (when
    they report one), else the key's suffix's, else YAML (which reads JSON
    too)."""
    for record in masters or ():
        if isinstance(record.get("format"), str):
            return str(record["format"])
    try:
        return format_for(key)
    except ConfigError:
        return "yaml"
