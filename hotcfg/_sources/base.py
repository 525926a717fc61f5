"""What the publisher holds: the :class:`Source` and :class:`Watching`
interfaces, and :class:`OneDocument`, the members every source but layers
has alike.

A source reads once, then watches (or polls) and reports changes and
failures; the publisher holds a :class:`Source` and does not know which kind
(docs/design.md, "Sources"): whatever differs between kinds (a cold-start
cache, overrides, the layers of the last load) the source says itself.

Interfaces only: imports nothing of ``_sources`` (every source imports this
module), and never ``_master`` or ``_worker``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .._content.layers import Layer, Override
from .._settings import Settings


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
            are hidden (``locations.redact_url``).
        fmt: ``yaml``, ``json`` or ``toml``.
        keeps_cache: whether the master keeps a 0600 copy of the last good
            document on disk, to start from when the source cannot be read
            at startup (a store or a URL may be down then; a file is on the
            disk already).
        overrides: the ``HOTCFG_SET__*`` overrides merged over every
            document the source loads (read when it was built), which the
            master applies over the cache's and a rollback's too.
        loaded: the layers' documents of the last load that succeeded, for
            ``hotcfg get --explain``; None for a source of one document
            without overrides.
        base: that load merged without the overrides (what the history and
            the cache keep, so that a rollback or a cold start applies the
            overrides of its day); None without overrides.
    """

    @property
    def label(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def fmt(self) -> str: ...

    @property
    def keeps_cache(self) -> bool: ...

    @property
    def overrides(self) -> tuple[Override, ...]: ...

    @property
    def loaded(self) -> tuple[Layer, ...] | None: ...

    @property
    def base(self) -> dict[str, Any] | None: ...

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


class OneDocument:
    """The :class:`Source` members of a source of one document: no
    overrides and no layers (those are ``layered.LayeredSource``'s)."""

    __slots__ = ()

    @property
    def overrides(self) -> tuple[Override, ...]:
        return ()

    @property
    def loaded(self) -> tuple[Layer, ...] | None:
        return None

    @property
    def base(self) -> dict[str, Any] | None:
        return None
