"""hotcfg: change a running service's configuration without a restart.

One process per host (the Gunicorn master) watches and validates the
configuration and publishes it into shared memory; every worker switches to
the new version within milliseconds, and each request keeps the version it
started with. In application code::

    import hotcfg

    timeout = hotcfg.get("db.timeout", 5)      # dotted path, default if absent
    rate = hotcfg.get("trace.rate", 0.0, volatile=True)  # newest, even mid-request

    @hotcfg.on_change("log.level")
    def apply_level(old, new):
        logging.getLogger().setLevel(new or "INFO")

The documentation (docs/ in the source tree) covers the Gunicorn, WSGI,
framework and standalone set-ups.
"""

from __future__ import annotations

# Not typing's: importing typing costs more than the interpreter's start,
# and the hotcfg command (hotcfg.cli) loads this package first. Type
# checkers take any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._api import generation as generation
    from ._api import get as get
    from ._api import latest as latest
    from ._api import on_change as on_change
    from ._api import require as require
    from ._api import resource as resource
    from ._api import snapshot as snapshot
    from ._errors import ConfigError as ConfigError
    from ._errors import CorruptSegmentError as CorruptSegmentError
    from ._errors import HotcfgError as HotcfgError
    from ._errors import MissingKeyError as MissingKeyError
    from ._errors import NotConfiguredError as NotConfiguredError
    from ._errors import ParseError as ParseError
    from ._errors import SegmentError as SegmentError
    from ._errors import SourceError as SourceError
    from ._errors import ValidationError as ValidationError
    from ._runtime import configure as configure
    from ._segment.snapshot import Snapshot as Snapshot
    from ._version import __version__ as __version__

__all__ = [
    "ConfigError",
    "CorruptSegmentError",
    "HotcfgError",
    "MissingKeyError",
    "NotConfiguredError",
    "ParseError",
    "SegmentError",
    "Snapshot",
    "SourceError",
    "ValidationError",
    "__version__",
    "configure",
    "generation",
    "get",
    "latest",
    "on_change",
    "require",
    "resource",
    "snapshot",
]

# Public name -> the private module that defines it. Imported on first use
# (PEP 562), so ``import hotcfg._segment.payload`` (or a tool that only needs the
# format) does not pull in the publisher, watchdog, mmap or threads.
_LAZY = {
    **dict.fromkeys(
        ("generation", "get", "latest", "on_change", "require", "resource",
         "snapshot"),
        "_api",
    ),
    "configure": "_runtime",
    **dict.fromkeys(
        ("ConfigError", "CorruptSegmentError", "HotcfgError", "MissingKeyError",
         "NotConfiguredError", "ParseError", "SegmentError", "SourceError",
         "ValidationError"),
        "_errors",
    ),
    "Snapshot": "_segment.snapshot",
    # In a module of its own: hotcfg's modules that name it (the HTTP
    # source's User-Agent) import it from there, not from this package.
    "__version__": "_version",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here: the hotcfg command imports this package first

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
