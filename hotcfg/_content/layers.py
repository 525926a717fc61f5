"""Layered configuration: splitting ``HOTCFG_SOURCE``, merging, provenance,
and the ``HOTCFG_SET__*`` environment overrides.

PURE: takes text, mappings and documents, returns values or raises. Must
not import ``os``, ``mmap``, ``signal``, ``threading`` or ``time``; reading
the layers is ``_sources.layered``'s job (docs/design.md, "Layers").

* ``HOTCFG_SOURCE='base.yaml | prod.yaml | etcd://h:2379/app/c.yaml'``
  names several sources, merged in that order. ``|`` cannot appear in an
  etcd endpoint list (commas) and is not a legal URL character (RFC 3986
  requires it percent-encoded); the price is that a file whose path holds
  ``|`` cannot be named.
* **Merge rule.** Mappings merge key by key, recursively; anything else (a
  scalar, a list, a mapping meeting a non-mapping) is replaced by the later
  layer's value. So a later layer can change one key deep down without
  repeating its siblings, and a list is always one layer's list, never a mix.
* **Environment overrides** come last: ``HOTCFG_SET__DB__TIMEOUT=5`` sets
  ``db.timeout``. They are the master's own, of its environment now: a
  document kept from before (the cache, a rollback's generation) is kept
  without them and gets today's on top (:func:`with_overrides`). ``__``
  separates levels and each level is lower-cased; a single ``_`` stays
  inside a key (``HOTCFG_SET__LOG_LEVEL`` is
  ``log_level``). The value is one YAML document read by the project's safe
  loader: a scalar (``5`` an int, ``true`` a bool, ``'"5"'`` a string, empty
  null) or a list (``[a, b]``), never a mapping: a path has one spelling,
  ``HOTCFG_SET__DB__TIMEOUT``, not also ``HOTCFG_SET__DB='{timeout: 5}'``.
* **Provenance** (:func:`trace`, :func:`explain`): for a key path, the value
  each layer has there and which layers make the merged value. The merged
  value of a non-mapping comes from the last layer that defines the path;
  a mapping from every layer since the last one that replaced it.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError, ValidationError
from . import loaders, validate

SEPARATOR = "|"
ENV_PREFIX = "HOTCFG_SET__"
ENV_LEVEL = "__"
ENVIRONMENT = "environment"

# Spaces around the separator are optional and not part of either source.
_SPLIT = re.compile(r"\s*\|\s*")

# What a layer has at a key path.
SET = "set"  # a value
UNSET = "unset"  # nothing: a key on the way is absent
BLOCKED = "blocked"  # nothing: a key on the way holds a non-mapping


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# -- splitting ------------------------------------------------------------------


def split_sources(text: str) -> list[str]:
    """``"a.yaml | etcd://h/k"`` -> its sources, in merge order.

    Text without ``|`` is one source, kept exactly (spaces included).

    Raises:
        ValueError: a layer is empty (``"a.yaml |"``), naming which.
    """
    if SEPARATOR not in text:
        return [text]
    parts = _SPLIT.split(text)
    for number, part in enumerate(parts, 1):
        if not part.strip():
            raise ValueError(f"layer {number} of {len(parts)} is empty")
    return parts


def join_sources(parts: Sequence[str]) -> str:
    """The inverse of :func:`split_sources` for sources without ``|``."""
    return f" {SEPARATOR} ".join(parts)


def layer_name(number: int, count: int, place: str) -> str:
    """How errors name a layer: ``layer 2 of 3 (etcd://h:2379/app/c.yaml)``."""
    return f"layer {number} of {count} ({place})"


# -- merging --------------------------------------------------------------------


def merge(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The documents merged in order (see the module docstring).

    The result shares no dict or list with the documents, so a validator
    that changes it in place cannot change what was recorded for
    ``hotcfg get --explain``.
    """
    result: dict[str, Any] = {}
    for document in documents:
        _merge_into(result, document)
    return result


def _merge_into(target: dict[str, Any], document: Mapping[str, Any]) -> None:
    for key, value in document.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge_into(current, value)
        else:
            target[key] = _fresh(value)


def _fresh(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


# -- provenance -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """What one layer has at a key path.

    Attributes:
        kind: :data:`SET`, :data:`UNSET` or :data:`BLOCKED`.
        value: the layer's value there (``SET`` only).
        blocked_at: the shorter path where the layer holds a non-mapping
            (``BLOCKED`` only).
    """

    kind: str
    value: Any = None
    blocked_at: tuple[str, ...] = ()


def state_of(document: Mapping[str, Any], path: Sequence[str]) -> State:
    """What ``document`` has at ``path``."""
    node: Any = document
    for depth, key in enumerate(path):
        if not isinstance(node, dict):
            return State(BLOCKED, blocked_at=tuple(path[:depth]))
        if key not in node:
            return State(UNSET)
        node = node[key]
    return State(SET, node)


@dataclass(frozen=True, slots=True)
class Trace:
    """A key path through the layers.

    Attributes:
        value: the merged value there, or :data:`MISSING`.
        states: what each layer has there, in merge order.
        contributors: the layers whose values make the merged value, in
            merge order: one for a non-mapping, every layer merged into a
            mapping since the last one that replaced it.
    """

    value: Any
    states: tuple[State, ...]
    contributors: tuple[int, ...]


def trace(documents: Sequence[Mapping[str, Any]], path: Sequence[str]) -> Trace:
    """Follow ``path`` through ``documents``; ``value`` is what
    :func:`merge` gives there, without merging the rest."""
    states = tuple(state_of(document, path) for document in documents)
    value: Any = MISSING
    contributors: list[int] = []
    for index, state in enumerate(states):
        if state.kind == BLOCKED:
            # A non-mapping above the path replaces everything below it.
            value, contributors = MISSING, []
        elif state.kind == SET:
            if isinstance(state.value, dict) and isinstance(value, dict):
                value = merge([value, state.value])
                contributors.append(index)
            else:
                value, contributors = _fresh(state.value), [index]
    return Trace(value, states, tuple(contributors))


# -- environment overrides ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Override:
    """One ``HOTCFG_SET__*`` variable: its name, key path and parsed value."""

    variable: str
    path: tuple[str, ...]
    value: Any


def path_for(variable: str) -> tuple[str, ...]:
    """``HOTCFG_SET__DB__TIMEOUT`` -> ``("db", "timeout")``.

    Raises:
        ConfigError: not ``HOTCFG_SET__<KEY>[__<KEY>...]``, or an empty
            level, naming the variable.
    """
    if not variable.startswith(ENV_PREFIX):
        raise ConfigError(
            f"an override is named {ENV_PREFIX}<KEY>[{ENV_LEVEL}<KEY>...] "
            "(two underscores after SET and between levels)",
            source=variable,
        )
    levels = variable[len(ENV_PREFIX) :].split(ENV_LEVEL)
    if not all(levels):
        raise ConfigError(
            "an empty key level (a key cannot start with '__' or end with '_' "
            "before the next level)",
            source=variable,
        )
    return tuple(level.lower() for level in levels)


def variable_for(path: Sequence[str]) -> str:
    """``("db", "timeout")`` -> ``HOTCFG_SET__DB__TIMEOUT`` (the inverse of
    :func:`path_for` for lower-case keys without ``__``)."""
    return ENV_PREFIX + ENV_LEVEL.join(key.upper() for key in path)


def parse_override(variable: str, text: str) -> Override:
    """One variable's key path and value.

    Raises:
        ConfigError: a bad name, a value that does not parse, a mapping, or
            a value hotcfg cannot publish (a date), naming the variable.
    """
    path = path_for(variable)
    try:
        content = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("the value is not valid UTF-8", source=variable) from None
    value = loaders.parse(content, fmt="yaml", source=variable)
    if isinstance(value, dict):
        raise ValidationError(
            f"the value is a mapping; set each key with its own variable "
            f"({variable}{ENV_LEVEL}<KEY>=...)",
            source=variable,
        )
    validate.check_document({path[-1]: value}, source=variable)
    return Override(variable, path, value)


def overrides_from(environ: Mapping[str, str]) -> tuple[Override, ...]:
    """Every ``HOTCFG_SET__*`` variable of ``environ``, by key path.

    A ``HOTCFG_SET_X`` with one underscore is refused rather than ignored:
    it is almost surely a misspelt override.

    Raises:
        ConfigError: a bad variable, or two variables for one path (or for
            a path and a path inside it), naming them.
    """
    overrides = [
        parse_override(name, environ[name])
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX[:-1])
    ]
    overrides.sort(key=lambda o: o.path)
    for before, after in itertools.pairwise(overrides):
        if after.path[: len(before.path)] == before.path:
            raise ConfigError(
                f"{before.variable} and {after.variable} both set "
                f"{'.'.join(before.path)}",
                source=after.variable,
            )
    return tuple(overrides)


def override_document(overrides: Sequence[Override]) -> dict[str, Any]:
    """The overrides as one document, the last layer of the merge."""
    document: dict[str, Any] = {}
    for override in overrides:
        node = document
        for key in override.path[:-1]:
            node = node.setdefault(key, {})
        node[override.path[-1]] = override.value
    return document


# -- what the master keeps, and what --explain says ----------------------------


@dataclass(frozen=True, slots=True)
class Layer:
    """One merged document and how to name where it came from.

    Attributes:
        name: the source's location, or ``environment``.
        document: what it held (parsed, not validated).
        overrides: the environment layer's variables, to name the one
            behind a key path.
    """

    name: str
    document: dict[str, Any]
    overrides: tuple[Override, ...] = ()

    def describe(self, path: Sequence[str]) -> str:
        """The layer's name, with the variables that touch ``path``."""
        path = tuple(path)
        names = [
            o.variable
            for o in self.overrides
            if o.path[: len(path)] == path or path[: len(o.path)] == o.path
        ]
        return f"{self.name} {', '.join(names)}" if names else self.name


def environment_layer(overrides: Sequence[Override]) -> Layer:
    return Layer(ENVIRONMENT, override_document(overrides), tuple(overrides))


def with_overrides(
    name: str, document: dict[str, Any], overrides: Sequence[Override]
) -> tuple[dict[str, Any], tuple[Layer, ...]]:
    """A document published again (a rollback, the cache at a cold start)
    under ``overrides``, those of the master publishing it now.

    Returns:
        The merge (sharing nothing with ``document``), and the layers
        ``--explain`` names: ``document`` as ``name``, then the environment.
    """
    layers: tuple[Layer, ...] = (Layer(name, document),)
    if overrides:
        layers += (environment_layer(overrides),)
    return merge([layer.document for layer in layers]), layers


def explain(
    layers: Sequence[Layer], path: Sequence[str], live: Mapping[str, Any]
) -> dict[str, Any]:
    """Where the value at ``path`` of the live config comes from, as a
    JSON-ready answer (``hotcfg get --explain``; :func:`render` prints it).

    Args:
        layers: the documents the live config was merged from, in order.
        path: the key path.
        live: the live config (thawed), which is the merged layers unless a
            validator changed them.
    """
    path = tuple(path)
    found = state_of(live, path)
    traced = trace([layer.document for layer in layers], path)
    entries = []
    for index in reversed(range(len(layers))):
        state = traced.states[index]
        entry: dict[str, Any] = {"layer": layers[index].describe(path)}
        if index in traced.contributors:
            entry["state"] = "from"
        else:
            entry["state"] = "under" if state.kind == SET else "unset"
        if state.kind == SET and not isinstance(state.value, dict):
            entry["value"] = state.value
        if state.kind == BLOCKED:
            entry["not_a_mapping_at"] = ".".join(state.blocked_at)
        entries.append(entry)
    answer: dict[str, Any] = {
        "path": ".".join(path),
        "found": found.kind == SET,
        "from": [
            layers[index].describe(path) for index in reversed(traced.contributors)
        ],
        "layers": entries,
    }
    if found.kind != SET:
        if traced.value is not MISSING:
            answer["changed_by_validators"] = True
        return answer
    value = found.value
    answer["mapping"] = isinstance(value, dict)
    if isinstance(value, dict):
        documents = [layer.document for layer in layers]
        answer["keys"] = {
            key: [
                layers[index].describe((*path, key))
                for index in reversed(trace(documents, (*path, key)).contributors)
            ]
            for key in sorted(value)
        }
    else:
        answer["value"] = value
    if not _same(value, traced.value):
        answer["changed_by_validators"] = True
    return answer


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself and types compared strictly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def render(answer: Mapping[str, Any]) -> list[str]:
    """The lines ``hotcfg get --explain`` prints for an :func:`explain` answer."""
    path = answer["path"]
    lines = []
    if not answer["found"]:
        lines.append(f"no key {path!r} in generation {answer.get('generation', '?')}")
    elif answer["mapping"]:
        count = len(answer["keys"])
        lines.append(f"{path} = a mapping of {count} key{'s' * (count != 1)}")
    else:
        lines.append(f"{path} = {_text(answer['value'])}")
    for state in ("from", "under", "unset"):
        label = state
        for entry in answer["layers"]:
            if entry["state"] != state:
                continue
            text = entry["layer"]
            if state == "under":
                value = entry.get("value", MISSING)
                text += " (a mapping)" if value is MISSING else f" = {_text(value)}"
            if "not_a_mapping_at" in entry:
                text += f" ({entry['not_a_mapping_at']} is not a mapping there)"
            lines.append(f"  {label:<6} {text}")
            label = ""
    if answer.get("changed_by_validators"):
        lines.append("  note   the validators changed it after the layers were merged")
    keys = answer.get("keys") or {}
    width = max((len(key) for key in keys), default=0)
    label = "keys"
    for key, names in keys.items():
        where = ", ".join(names) if names else "the validators"
        lines.append(f"  {label:<6} {key:<{width}}  from {where}")
        label = ""
    return lines
