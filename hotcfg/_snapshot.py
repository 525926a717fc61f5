"""The immutable configuration a worker serves: :class:`Snapshot`.

PURE: no I/O, no clock. A snapshot is built once per generation by the codec
and then shared by every request of that generation, so nothing in it can be
mutated: mappings are ``MappingProxyType`` views and arrays are tuples.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import MissingKeyError

MISSING: Any = object()
EMPTY: Mapping[str, Any] = MappingProxyType({})


MEMO_MAX = 1024


def split_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """Split ``"a.b.c"`` into its keys; a sequence is taken as the keys already.

    A sequence lets callers reach keys that themselves contain dots.
    """
    if isinstance(path, str):
        return tuple(path.split(".")) if path else ()
    return tuple(path)


def lookup(data: Mapping[str, Any], keys: tuple[str, ...], default: Any) -> Any:
    """Walk ``keys`` down nested mappings; ``default`` where any step is missing.

    Indexing and catching the miss costs a fraction of an ``isinstance(node,
    Mapping)`` check per step, which is an ABC lookup. A step into a value
    that is not a mapping fails with TypeError (str, int, tuple indexed by a
    str key) and gives ``default`` as well.
    """
    node: Any = data
    try:
        for key in keys:
            node = node[key]
    except (KeyError, TypeError, IndexError):
        return default
    return node


def thaw(value: Any) -> Any:
    """Return a plain ``dict``/``list`` deep copy of a frozen value (for JSON)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Snapshot(Mapping[str, Any]):
    """One generation of the configuration, immutable and safe to share.

    It is a read-only mapping of the top-level keys; :meth:`get` also takes
    dotted paths.

    Attributes:
        generation: 0 before the first publish, then 1, 2, ... per change.
        data: the configuration (nested read-only mappings and tuples).
        published_at: Unix time of the publish, 0.0 when never published.
        source: a label of where the data came from (``file:/etc/app.yaml``).
    """

    generation: int
    data: Mapping[str, Any] = field(default_factory=lambda: EMPTY, repr=False)
    published_at: float = 0.0
    source: str = ""
    # Answers of get() by path. A snapshot never changes, so an answer never
    # goes stale; apps ask for the same few paths on every request, and a hit
    # costs one dict lookup instead of a split and a walk. Bounded, so paths
    # built from user input cannot grow it without end.
    _memo: dict[Any, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def get(self, path: str | Sequence[str], default: Any = None) -> Any:
        """Value at a dotted path (``"db.timeout"``), or ``default`` if absent.

        Args:
            path: dotted string, or a sequence of keys for keys with dots.
            default: returned when any step of the path is missing.
        """
        try:
            value = self._memo[path]
        except KeyError:
            value = lookup(self.data, split_path(path), MISSING)
            if len(self._memo) < MEMO_MAX:
                self._memo[path] = value
        except TypeError:  # an unhashable path, such as a list of keys
            value = lookup(self.data, split_path(path), MISSING)
        return default if value is MISSING else value

    def require(self, path: str | Sequence[str]) -> Any:
        """Value at ``path``.

        Raises:
            MissingKeyError: when any step of the path is missing.
        """
        value = self.get(path, MISSING)
        if value is MISSING:
            raise MissingKeyError(f"no key {path!r} in generation {self.generation}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable deep copy (``dict`` and ``list``), e.g. for ``json``."""
        result: dict[str, Any] = thaw(self.data)
        return result
