"""Which etcd key ``hotcfg status --fleet`` reads when none is given: the one
this environment's ``HOTCFG_SOURCE`` follows, as the master would.

A master keeps its fleet record under its source's key, or under the first
etcd layer of a layered source (``_master.fleet.etcd_source_of``); on the
host of a service the operator's shell usually has that same
``HOTCFG_SOURCE``, so ``status --fleet`` alone finds the same masters.
Pure text: no etcd client, no other command module.
"""

from __future__ import annotations

from .._content.layers import split_sources
from .._sources.locations import ETCD_SCHEME


def etcd_layer(source: str | None) -> str | None:
    """The etcd URL ``source`` follows: itself, or its first etcd layer;
    None when it has none."""
    if not source:
        return None
    try:
        parts = split_sources(source)
    except ValueError:
        return None
    for part in parts:
        text = part.strip()
        if text.startswith(ETCD_SCHEME):
            return text
    return None


NO_DEFAULT = (
    "--fleet needs an etcd key: give one (--fleet etcd://HOST:PORT/KEY), or set "
    "HOTCFG_SOURCE to the service's source (an etcd key, or layers with one)"
)
