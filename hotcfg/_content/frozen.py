"""Read-only values: :class:`FrozenDict` and :func:`thaw`.

PURE: no I/O. Every mapping a worker serves is a :class:`FrozenDict` and
every array a tuple, so one generation's values can be shared by all its
requests. Lives with the content, not the segment, so that typed configs
(``typed``) and snapshots (``_segment.snapshot``) both take it from below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn


def _refuse(self: FrozenDict, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError("hotcfg configuration values are read-only")


class FrozenDict(dict[str, Any]):
    """A read-only ``dict``: every mapping in a snapshot is one.

    A ``dict`` subclass rather than a ``MappingProxyType`` because the
    serializers users reach for (``json``, Flask's ``jsonify``, Django's
    ``JsonResponse``, ``msgpack``, ``orjson``) accept a ``dict`` and refuse
    a proxy. Reads are a plain ``dict``'s; every method that would change it
    raises TypeError. ``copy()`` and ``|`` give a plain, mutable ``dict``.
    Not proof against ``dict.__setitem__(value, ...)`` called on purpose.
    """

    __slots__ = ()

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        # pickle and copy would otherwise rebuild it item by item through
        # __setitem__, which refuses.
        return (FrozenDict, (dict(self),))


def thaw(value: Any) -> Any:
    """Return a plain ``dict``/``list`` deep copy of a frozen value (for JSON)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
