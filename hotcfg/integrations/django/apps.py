"""The app config: ``settings.HOTCFG`` becomes hotcfg's settings at startup."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from hotcfg import _runtime
from hotcfg._errors import HotcfgError


def options() -> dict[str, Any]:
    """``settings.HOTCFG`` with its keys named like the ``HOTCFG_*`` variables."""
    raw = getattr(settings, "HOTCFG", {})
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("settings.HOTCFG must be a dict")
    return {f"HOTCFG_{key}": value for key, value in raw.items()}


class HotcfgConfig(AppConfig):  # type: ignore[misc]  # Django is untyped here
    name = "hotcfg.integrations.django"
    label = "hotcfg"
    verbose_name = "hotcfg"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system check)

        # Only settings: the publisher starts at the first request (runserver)
        # or is the Gunicorn master's, so manage.py commands start nothing.
        try:
            _runtime.configure_from(options())
        except HotcfgError as exc:
            raise ImproperlyConfigured(f"settings.HOTCFG: {exc}") from exc
