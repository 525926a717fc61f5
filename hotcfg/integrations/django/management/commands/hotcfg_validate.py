"""``manage.py hotcfg_validate [path]``: check a file as the publisher would.

Without a path it checks the configured source. Exits 1 when invalid.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hotcfg import _runtime
from hotcfg._errors import HotcfgError
from hotcfg._master.check import validate_source
from hotcfg._sources.locations import redact_url


class Command(BaseCommand):  # type: ignore[misc]  # Django is untyped here
    help = "Check a hotcfg configuration file (default: the configured source)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", nargs="?", help="file to check")

    def handle(self, *args: Any, path: str | None = None, **options: Any) -> None:
        settings = _runtime.settings()
        if path is not None:
            settings = settings.updated(source=path)
        try:
            data, payload = validate_source(settings)
        except HotcfgError as exc:
            raise CommandError(f"invalid: {exc}") from exc
        self.stdout.write(
            f"ok: {redact_url(settings.source or '')} ({len(data)} top-level keys, "
            f"{len(payload)} bytes packed)"
        )
