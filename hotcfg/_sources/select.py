"""Which source the settings name: :func:`source_for`.

A file (``file``), etcd (``etcd.source``) or an http(s) URL
(``http.source``), the last two imported only when named; several, or any
``HOTCFG_SET__*`` override, make a ``layered.LayeredSource`` of the sources
built here for each layer. The one module that knows every kind of source:
no source imports it (so no source can build another). Never imports
``_master`` or ``_worker``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .._content.layers import overrides_from, split_sources
from .._settings import Settings, layer_settings
from .base import Source
from .file import FileSource
from .layered import LayeredSource
from .locations import ETCD_SCHEME, is_http


def source_for(
    settings: Settings, *, environ: Mapping[str, str] | None = None
) -> Source:
    """The source ``settings`` name.

    Several sources (``a | b``), or ``HOTCFG_SET__*`` overrides in
    ``environ`` (default ``os.environ``, read now: a master reads them once,
    when it builds its source), give a ``LayeredSource`` of them, each layer
    built as a single source is.

    Raises:
        NotConfiguredError: no source given.
        ConfigError: an override cannot be understood, naming its variable.
    """
    overrides = overrides_from(os.environ if environ is None else environ)
    if overrides or len(split_sources(settings.source or "")) > 1:
        return LayeredSource(
            [_single(part) for part in layer_settings(settings)], overrides
        )
    return _single(settings)


def _single(settings: Settings) -> Source:
    """The one source of ``settings`` (a layer's, or the only one)."""
    if settings.source and settings.source.startswith(ETCD_SCHEME):
        from .etcd.source import EtcdSource  # only a master watching etcd needs it

        return EtcdSource.from_settings(settings)
    if settings.source and is_http(settings.source):
        from .http.source import HttpSource  # only a master polling a URL needs it

        return HttpSource.from_settings(settings)
    return FileSource.from_settings(settings)
