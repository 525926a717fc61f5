"""System checks: ``manage.py check`` (and runserver, migrate, ...) reports a
missing or invalid configuration source before anything serves it.

The default checks stay on this host: every management command runs them,
and a ``migrate`` in a CI job without etcd must not fail because etcd is not
there. They check that a source is set, and read the files: the whole
document when every layer is a file, else each file layer alone, with the
user's validators loaded. Reading etcd or a URL (and validating the merged
document) is a deployment check: ``manage.py check --deploy`` (with
``--tag hotcfg`` for hotcfg's alone).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.core.checks import Error, register

from hotcfg import _runtime
from hotcfg._content.layers import overrides_from
from hotcfg._errors import HotcfgError, NotConfiguredError, SourceError
from hotcfg._master.check import validate_source
from hotcfg._settings import Settings, layer_settings
from hotcfg._sources.checks import validators_for
from hotcfg._sources.file import FileSource
from hotcfg._sources.locations import ETCD_SCHEME, is_http

HINT = "set HOTCFG = {'SOURCE': ...} in settings or HOTCFG_SOURCE in the environment"
REMOTE_HINT = "check --deploy reads etcd or the URL: run it where the service runs"


def _remote(settings: Settings) -> bool:
    """Whether reading ``settings``' source needs the network."""
    return any(
        layer.source is not None
        and (layer.source.startswith(ETCD_SCHEME) or is_http(layer.source))
        for layer in layer_settings(settings)
    )


def _local_parts(settings: Settings) -> None:
    """Read and parse each file layer alone, and load the validators and
    the ``HOTCFG_SET__*`` overrides (a partial merge is not validated: the
    remote layers may complete it)."""
    validators_for(settings)
    overrides_from(os.environ)
    for layer in layer_settings(settings):
        if not _remote(layer):
            FileSource.from_settings(layer).load()


def _errors(check: Callable[[], object], *, hint: str = HINT) -> list[Error]:
    """hotcfg.E001 no source, E002 unreadable, E003 invalid content."""
    try:
        check()
    except NotConfiguredError:
        return [Error("no hotcfg configuration source", hint=HINT, id="hotcfg.E001")]
    except SourceError as exc:
        return [Error(str(exc), hint=hint, id="hotcfg.E002")]
    except HotcfgError as exc:
        return [Error(str(exc), id="hotcfg.E003")]
    return []


def check_source(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The local check: a source is set, its files are readable and valid."""
    settings = _runtime.settings()
    if settings.source and _remote(settings):
        return _errors(lambda: _local_parts(settings))
    return _errors(lambda: validate_source(settings))  # E001 without a source


def check_remote_source(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The deployment check: an etcd or HTTP source is read now, merged and
    validated as the master would."""
    settings = _runtime.settings()
    if not settings.source or not _remote(settings):
        return []  # the local check covered it
    return _errors(lambda: validate_source(settings), hint=REMOTE_HINT)


register(check_source, "hotcfg")
register(check_remote_source, "hotcfg", deploy=True)
