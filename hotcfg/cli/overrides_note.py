"""What ``hotcfg validate`` says about the ``HOTCFG_SET__*`` overrides.

A master applies the overrides of its environment over every document it
publishes (``_content.layers``), and so does ``validate``, from the
environment it runs in, which may not be the service's. So that a valid
result is not read as covering more (or less) than it did, ``validate``
names the overrides it applied, or says there were none, whenever the
source is layered or overrides are set. Names and key paths only: the
values may be secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .._content.layers import overrides_from, split_sources


def overrides_note(source: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The line ``validate`` prints about the overrides, or None for one
    plain source with none set.

    Raises:
        ConfigError: an override cannot be understood (the check fails on it
            first, naming it).
    """
    overrides = overrides_from(os.environ if environ is None else environ)
    try:
        layered = len(split_sources(source)) > 1
    except ValueError:
        layered = False
    if not overrides and not layered:
        return None
    if not overrides:
        return (
            "overrides: none included (no HOTCFG_SET__* variable in this "
            "environment; the service applies its own)"
        )
    names = ", ".join(f"{o.variable} ({'.'.join(o.path)})" for o in overrides)
    return (
        f"overrides: {len(overrides)} included, from this environment, over "
        f"the merged layers: {names}"
    )
