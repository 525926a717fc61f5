"""The immutable configuration a worker serves: :class:`Snapshot`.

PURE: no I/O, no clock. A snapshot is built once per generation by
``_segment.payload`` and then shared by every request of that generation, so nothing
in it can be mutated: mappings are :class:`FrozenDict` (a ``dict`` that
refuses every change, so ``json.dumps``, ``jsonify``, ``JsonResponse``,
``msgpack`` and ``orjson`` take it as it is) and arrays are tuples. The top
level of a large configuration may be :class:`Sections`, whose big values
are decoded on first access. Imports only ``_errors`` and ``_content``
(frozen values; ``typed`` inside :meth:`Snapshot.as_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._content.frozen import FrozenDict, thaw
from .._errors import MissingKeyError, ValidationError

MISSING: Any = object()
_MODEL: Any = object()  # first item of as_model()'s memo keys; no path has it
T = TypeVar("T")


EMPTY: Mapping[str, Any] = FrozenDict()


MEMO_MAX = 1024


class Section:
    """A top-level value still in its packed form."""

    __slots__ = ("packed",)

    def __init__(self, packed: bytes) -> None:
        self.packed = packed


class Sections(Mapping[str, Any]):
    """The read-only top level of a large snapshot: each :class:`Section` is
    decoded on its first access, then kept (and its bytes dropped).

    No lock: two threads that race on one section both decode it, and each
    stores an equal immutable value; a lock inherited locked through a fork
    would be worse than one spare decode.

    Args:
        values: top-level values, some of them :class:`Section`.
        decode: packed bytes -> the section's frozen value.
    """

    __slots__ = ("_decode", "_values")

    def __init__(self, values: dict[str, Any], decode: Callable[[bytes], Any]) -> None:
        self._values = values
        self._decode = decode

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if type(value) is Section:
            value = self._values[key] = self._decode(value.packed)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._values  # without decoding anything

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        pending = sum(type(v) is Section for v in self._values.values())
        return f"<Sections {len(self._values)} keys, {pending} not decoded yet>"

    def decode_all(self) -> None:
        for key in self._values:
            self[key]


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


@dataclass(frozen=True, slots=True)
class Snapshot(Mapping[str, Any]):
    """One generation of the configuration, immutable and safe to share.

    It is a read-only mapping of the top-level keys; :meth:`get` also takes
    dotted paths.

    Attributes:
        generation: 0 before the first publish, then 1, 2, ... per change.
        data: the configuration (nested :class:`FrozenDict` and tuples).
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

    def __contains__(self, key: object) -> bool:
        return key in self.data  # a lazy section stays packed

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

    def as_model(self, cls: type[T], path: str | Sequence[str] | None = None) -> T:
        """The value at ``path`` (default: everything) as an instance of ``cls``.

        ``cls`` is a dataclass (checked by hotcfg: nested dataclasses, lists,
        tuples, ``dict[str, X]``, ``Optional``, ``Literal``, scalars; ``bool``
        is not ``int``; unknown keys are refused) or a pydantic v2 model
        (needs the ``typed`` extra). Built once per snapshot, class and path,
        then shared: treat it as read-only (use a frozen dataclass).

        Raises:
            ValidationError: the value does not fit, naming the key path.
                Give ``HOTCFG_MODEL`` to refuse such a file before publishing.
        """
        from .._content.typed import to_model  # only typed configs need it

        keys = split_path(path) if path is not None else ()
        memo_key = (_MODEL, cls, keys)
        try:
            model: T = self._memo[memo_key]
            return model
        except KeyError:
            pass
        value = lookup(self.data, keys, MISSING)
        dotted = ".".join(keys)
        if value is MISSING:
            raise ValidationError(
                "required key missing",
                source=self.source or "<config>",
                key_path=dotted,
            )
        model = to_model(cls, value, key_path=dotted, source=self.source or "<config>")
        if len(self._memo) < MEMO_MAX:
            self._memo[memo_key] = model
        return model

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable deep copy (``dict`` and ``list``), e.g. for ``json``."""
        result: dict[str, Any] = thaw(self.data)
        return result
