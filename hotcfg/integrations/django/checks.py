"""System check: ``manage.py check`` (and runserver, migrate, ...) reports a
missing or invalid configuration source before anything serves it."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from hotcfg import _api
from hotcfg._errors import HotcfgError, NotConfiguredError, SourceError
from hotcfg._publisher import validate_source

HINT = "set HOTCFG = {'SOURCE': ...} in settings or HOTCFG_SOURCE in the environment"


def check_source(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """hotcfg.E001 no source, E002 unreadable, E003 invalid content."""
    try:
        validate_source(_api.settings())
    except NotConfiguredError:
        return [Error("no hotcfg configuration source", hint=HINT, id="hotcfg.E001")]
    except SourceError as exc:
        return [Error(str(exc), hint=HINT, id="hotcfg.E002")]
    except HotcfgError as exc:
        return [Error(str(exc), id="hotcfg.E003")]
    return []


register(check_source, "hotcfg")
