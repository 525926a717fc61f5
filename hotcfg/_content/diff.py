"""Which key paths differ between two configurations (``hotcfg diff``).

PURE: mappings in, changes out. Must not import ``os``, ``mmap``,
``signal``, ``threading`` or ``time``.

Mappings are walked key by key; anything else (a list, a scalar) is a leaf
compared whole, so a changed list is one change at its path. Values of
different types differ even where Python calls them equal (``1``,
``1.0`` and ``True`` are three different configurations), and NaN equals
NaN, as in the reader's change detection.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"
_MARK = {ADDED: "+", REMOVED: "-", CHANGED: "~"}


@dataclass(frozen=True, slots=True)
class Change:
    """One differing key path; ``old``/``new`` are None where absent."""

    kind: str
    path: tuple[str, ...]
    old: Any = None
    new: Any = None


def same(a: Any, b: Any) -> bool:
    """Equal as configuration values: same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """The changes that turn ``old`` into ``new``, sorted by path."""
    changes: list[Change] = []
    stack: list[tuple[tuple[str, ...], Mapping[str, Any], Mapping[str, Any]]] = [
        ((), old, new)
    ]
    while stack:  # iterative: depth is bounded by validation, but cheaply so
        prefix, before, after = stack.pop()
        for key in before:
            path = (*prefix, key)
            if key not in after:
                changes.append(Change(REMOVED, path, old=before[key]))
                continue
            a, b = before[key], after[key]
            if isinstance(a, Mapping) and isinstance(b, Mapping):
                stack.append((path, a, b))
            elif not same(a, b):
                changes.append(Change(CHANGED, path, old=a, new=b))
        for key in after:
            if key not in before:
                changes.append(Change(ADDED, (*prefix, key), new=after[key]))
    return sorted(changes, key=lambda c: c.path)


def format_path(path: Sequence[str]) -> str:
    """``db.timeout``; a key that is empty or holds a dot, a bracket, a quote
    or a space is quoted: ``servers["eu.west"].port``."""
    out = ""
    for key in path:
        if key and not any(c in key for c in '.[]" ') and key.isprintable():
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def render(changes: Sequence[Change], *, values: bool) -> list[str]:
    """One line per change; values (which may be secrets) only with ``values``."""
    lines = []
    for change in changes:
        line = f"{_MARK[change.kind]} {format_path(change.path)}"
        if values:
            if change.kind == ADDED:
                line += f" = {_value(change.new)}"
            elif change.kind == REMOVED:
                line += f" (was {_value(change.old)})"
            else:
                line += f": {_value(change.old)} -> {_value(change.new)}"
        lines.append(line)
    return lines
