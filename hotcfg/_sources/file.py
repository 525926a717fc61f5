"""A configuration file as a :class:`~hotcfg._sources.base.Source`.

Reading is ``files``' (capped, regular files only); watching is ``watch``'s,
imported only when a file is watched (watchdog). Imports ``base``,
``files`` and ``watch`` of ``_sources``, never ``select`` (which builds this
source), ``_master`` or ``_worker``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import HOW_TO_CONFIGURE, NotConfiguredError
from .._settings import Settings
from .base import OneDocument, Watching
from .files import load_document, read_capped


@dataclass(frozen=True, slots=True)
class FileSource(OneDocument):
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
            raise NotConfiguredError(f"no configuration source: {HOW_TO_CONFIGURE}")
        return cls(settings.source, settings.format, settings.max_bytes)

    @property
    def label(self) -> str:
        return f"file:{self.path}"

    @property
    def location(self) -> str:
        return self.path

    @property
    def keeps_cache(self) -> bool:
        """No: a file missing or bad at startup refuses the start, as it
        always did (it is never unreachable), so no copy is ever read."""
        return False

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
        """Watch the file's directory (``watch``), with the settings'
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
