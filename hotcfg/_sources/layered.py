"""Master side: several sources merged in order, then the environment's
overrides, as one :class:`~hotcfg._sources.base.Source`.

The publisher holds a :class:`LayeredSource` like any other source: it loads
one merged document and watches for changes. The merging itself is pure
(``_content.layers``); the layers are built by ``select.source_for`` and
handed in. Here are the reading and the all-or-nothing rule:

* :meth:`LayeredSource.load` loads every layer, every time. If any layer
  fails, the whole load fails, naming the layer (``layer 2 of 3
  (etcd://...): key /app/config.yaml was deleted at revision 9``), so the
  publisher keeps the last good merge: a new file next to a stale etcd value
  (or the reverse) is never published as if it were a configuration someone
  wrote. Once every layer reads well again, their changes arrive together.
* An ``UnreachableError`` stays one (when no layer failed for another
  reason), so a master started while etcd is down serves its cache.
* :meth:`LayeredSource.watch` starts every layer's own watch with the same
  ``on_change``; the publisher serialises the calls, and each one loads
  every layer.

Fork story: the layers' own (``etcd``, ``watch``). This object holds only
sources and the documents of its last good load.

Imports only ``base`` of ``_sources`` (the layers come in as
:class:`~hotcfg._sources.base.Source`), never ``select``, ``_master`` or
``_worker``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._content import validate
from .._content.layers import Layer, Override, environment_layer, layer_name, merge
from .._errors import ConfigError, UnreachableError
from .._settings import Settings
from .base import Source, Watching


class LayeredSource:
    """Sources merged in order, then ``HOTCFG_SET__*`` overrides.

    Args:
        sources: the layers, in merge order (later ones win).
        overrides: the environment's overrides, merged last.

    Attributes:
        loaded: the layers' documents of the last load that succeeded
            (the publisher keeps them for the generation it publishes).
        base: the layers merged without the overrides, of that load (what
            the history and the cache keep, so that a rollback or a cold
            start applies the overrides of its day); None without overrides.
    """

    def __init__(
        self, sources: Sequence[Source], overrides: Sequence[Override] = ()
    ) -> None:
        self.sources = tuple(sources)
        self.overrides = tuple(overrides)
        self.loaded: tuple[Layer, ...] | None = None
        self.base: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        # Without the overrides: the history and the cache of a service keep
        # their names when an override is added or changed.
        return " | ".join(source.label for source in self.sources)

    @property
    def location(self) -> str:
        names = [source.location for source in self.sources]
        if self.overrides:
            names.append("environment")
        return " | ".join(names)

    @property
    def fmt(self) -> str:
        return "+".join(dict.fromkeys(source.fmt for source in self.sources))

    @property
    def provenance(self) -> object | None:
        """Who made the last load's document, and why: the first layer that
        knows (an etcd layer's audit record or canary); None when none does.
        The publisher records it with the generation."""
        for source in self.sources:
            known: object = getattr(source, "provenance", None)
            if known is not None:
                return known
        return None

    @property
    def keeps_cache(self) -> bool:
        """Yes, whatever the layers, as for any source but a single file:
        one cache per set of layers, holding the merge without the
        overrides (:attr:`base`)."""
        return True

    def load(self) -> dict[str, Any]:
        """Every layer's document, merged, then the overrides on top.

        Raises:
            ConfigError: a layer failed (the first failure's kind, naming its
                layer, with the others' reasons); ``UnreachableError`` only
                when every failure is one.
        """
        documents = []
        failures: list[tuple[int, ConfigError]] = []
        for index, source in enumerate(self.sources):
            try:
                documents.append(source.load())
            except ConfigError as exc:
                failures.append((index, exc))
        if failures:
            raise self._failure(failures)
        layers = tuple(
            Layer(source.location, document)
            for source, document in zip(self.sources, documents, strict=True)
        )
        merged = base = merge([layer.document for layer in layers])
        if self.overrides:
            layers += (environment_layer(self.overrides),)
            # A fresh copy: validators may change the merge in place, and
            # the base is what the history and the cache keep.
            merged = merge([base, layers[-1].document])
        validate.check_document(merged, source=self.location)
        self.loaded = layers
        self.base = base if self.overrides else None
        return merged

    def refresh(self) -> None:
        """Every layer's :meth:`~hotcfg._sources.base.Source.refresh`.

        Raises:
            ConfigError: a layer cannot be read now (as :meth:`load` names it).
        """
        failures: list[tuple[int, ConfigError]] = []
        for index, source in enumerate(self.sources):
            try:
                source.refresh()
            except ConfigError as exc:
                failures.append((index, exc))
        if failures:
            raise self._failure(failures)

    def _failure(self, failures: list[tuple[int, ConfigError]]) -> ConfigError:
        if len(self.sources) == 1:
            return failures[0][1]  # one source: its error as it is
        index, first = next(
            ((i, exc) for i, exc in failures if not isinstance(exc, UnreachableError)),
            failures[0],
        )
        reason = first.reason
        others = [self._where(i, exc) for i, exc in failures if exc is not first]
        if others:
            reason += "; also " + "; ".join(others)
        error = type(first)(
            reason, source=self._layer(index, first), key_path=first.key_path
        )
        error.__cause__ = first
        return error

    def _layer(self, index: int, exc: ConfigError) -> str:
        place = exc.source
        if exc.line is not None:
            place += f":{exc.line}"
            if exc.column is not None:
                place += f":{exc.column}"
        return layer_name(index + 1, len(self.sources), place)

    def _where(self, index: int, exc: ConfigError) -> str:
        where = self._layer(index, exc)
        if exc.key_path is not None:
            where += f": at {exc.key_path or '<top level>'}"
        return f"{where}: {exc.reason}"

    def watch(self, on_change: Callable[[], object], settings: Settings) -> Watching:
        """Start every layer's watch with ``on_change``.

        Raises:
            SourceError: a layer's watch cannot start (the others are
                stopped again).
        """
        started: list[Watching] = []
        try:
            for source in self.sources:
                started.append(source.watch(on_change, settings))
        except BaseException:
            for watching in started:
                watching.stop()
            raise
        return _Together(tuple(started))


class _Together:
    """Every layer's watch, noticed and stopped as one."""

    def __init__(self, watches: tuple[Watching, ...]) -> None:
        self.watches = watches

    def notice(self) -> None:
        for watching in self.watches:
            watching.notice()

    def stop(self, timeout_s: float = 5.0) -> None:
        for watching in self.watches:
            watching.stop(timeout_s)
