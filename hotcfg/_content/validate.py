"""Raw parsed document -> validated mapping, or :class:`ValidationError`.

PURE: no I/O. Must not import ``os``, ``mmap``, ``signal``, ``threading`` or
``time``. The checks here run in the master before anything is encoded, so a
worker only ever decodes data that passed them.

Two layers:

* :func:`check_document` enforces what every configuration must be: a
  mapping with string keys whose values are JSON's (strings, numbers,
  booleans, null, lists, mappings), so all three formats mean the same and
  msgpack carries them unchanged: no dates, sets, binary, or integers
  outside 64 bits. The walk is iterative and counts nodes and a lower bound
  of the packed size, so YAML alias bombs (a small document whose aliases
  expand to billions of nodes, or to a few nodes that each repeat a long
  string) and self-referencing aliases end in a ValidationError before
  anything is packed, instead of a hang, a MemoryError or a RecursionError.
* :class:`Validator` plug-ins: a user function (``HOTCFG_VALIDATOR``) and a
  JSON Schema (``HOTCFG_SCHEMA``), run in that order after the first layer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .._errors import ConfigError, ValidationError
from .._segment.layout import MAX_PAYLOAD_BYTES

MAX_DEPTH = 64
MAX_NODES = 2_000_000
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SCALARS = (str, bool, float, type(None))
_SURROGATE = "holds a lone surrogate (a \\ud800-\\udfff escape): not valid Unicode"


class Validator(Protocol):
    """Takes the document, returns it (possibly normalised) or raises."""

    def __call__(self, data: Mapping[str, Any], /) -> Mapping[str, Any]: ...


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def check_document(
    data: object,
    *,
    source: str = "<config>",
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Check that ``data`` can be published unchanged.

    ``max_bytes`` bounds a lower estimate of the packed size (one byte a
    value, plus a string's length in characters), so what is refused here
    would also be refused after packing, only later and at the cost of
    building it in memory.

    Returns:
        ``data`` itself, typed as a mapping.

    Raises:
        ValidationError: naming the key path and the reason.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ValidationError(
            f"top level must be a mapping, not {kind}", source=source, key_path=""
        )
    nodes = size = 0
    stack: list[tuple[object, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        size += 1 + len(value) if isinstance(value, str) else 1
        if nodes > max_nodes:
            raise ValidationError(
                f"more than {max_nodes} values (an alias bomb?)", source=source
            )
        if size > max_bytes:
            raise ValidationError(
                f"expands to more than {max_bytes} bytes (an alias bomb?)",
                source=source,
            )
        if depth > max_depth:
            raise ValidationError(
                f"nested deeper than {max_depth} levels (a recursive alias?)",
                source=source,
                key_path=path,
            )
        if isinstance(value, str) and not _is_unicode(value):
            raise ValidationError(
                f"a string {_SURROGATE}", source=source, key_path=path
            )
        if isinstance(value, _SCALARS):
            continue
        if isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise ValidationError(
                    "integer out of the 64-bit range", source=source, key_path=path
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValidationError(
                        f"a key is a {type(key).__name__}, not a string",
                        source=source,
                        key_path=path,
                    )
                if not _is_unicode(key):
                    raise ValidationError(
                        f"a key {_SURROGATE}", source=source, key_path=path
                    )
                size += 1 + len(key)
                stack.append((item, _join(path, key), depth + 1))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                stack.append((item, _join(path, index), depth + 1))
        else:
            raise ValidationError(
                f"values of type {type(value).__name__} are not supported "
                "(use strings, numbers, booleans, null, lists and mappings)",
                source=source,
                key_path=path,
            )
    return data


def _is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate (JSON's ``"\\ud800"``), which
    UTF-8, and so msgpack, cannot carry."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def import_object(spec: str, *, what: str, setting: str) -> Any:
    """Resolve ``"package.module:attr"`` (``attr`` may be dotted).

    Raises:
        ConfigError: the spec is malformed, or the module or attribute is
            missing; ``setting`` names where the spec came from.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"{what} {spec!r} must look like 'package.module:name'", source=setting
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import {what} {spec!r}: {exc}", source=setting
        ) from exc
    return target


def import_validator(spec: str) -> Validator:
    """Resolve ``"package.module:function"`` to a callable.

    Raises:
        ConfigError: the spec is malformed, or the module or attribute is missing.
    """
    target = import_object(spec, what="validator", setting="HOTCFG_VALIDATOR")
    if not callable(target):
        raise ConfigError(
            f"validator {spec!r} is not callable", source="HOTCFG_VALIDATOR"
        )
    validator: Validator = target
    return validator


def schema_validator(schema: Mapping[str, Any], *, label: str) -> Validator:
    """A :class:`Validator` for a JSON Schema (needs the ``schema`` extra).

    Raises:
        ConfigError: ``jsonschema`` is missing or the schema itself is invalid.
    """
    try:
        import jsonschema
    except ImportError as exc:
        raise ConfigError(
            "HOTCFG_SCHEMA needs jsonschema: pip install 'hotcfg[schema]'", source=label
        ) from exc
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON Schema: {exc.message}", source=label) from exc
    checker = cls(schema)

    def validate(data: Mapping[str, Any], /) -> Mapping[str, Any]:
        error = jsonschema.exceptions.best_match(checker.iter_errors(data))
        if error is None:
            return data
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, Mapping):
            # A file cut off mid-write often still parses; what gives it
            # away is a key missing at the end. Name that key.
            missing = [k for k in error.validator_value if k not in error.instance]
            raise ValidationError(
                f"required key missing (schema rule 'required', {label})",
                key_path=_join(path, missing[0]) if missing else path,
            )
        # error.message quotes the offending value; say which rule failed instead.
        raise ValidationError(
            f"violates schema rule '{error.validator}' ({label})", key_path=path
        )

    return validate


NamedValidator = tuple[str, Validator]


def run_validators(
    data: dict[str, Any],
    validators: Iterable[NamedValidator],
    *,
    source: str,
    started: Callable[[str], object] | None = None,
    interruptible: bool = True,
) -> dict[str, Any]:
    """Run user validators in order; each sees the previous one's result.

    A validator is user code, and the publisher must outlive it: whatever it
    raises, ``SystemExit`` (a command-line style check calling
    ``sys.exit()``) and other ``BaseException`` subclasses included, becomes
    a :class:`ValidationError` naming the source and the validator, and so
    does ``KeyboardInterrupt`` unless ``interruptible``: Ctrl-C in the main
    thread must still stop the program, anywhere else it is one more
    exception.

    Args:
        validators: ``(name, validator)`` pairs; the name is how logs and
            ``hotcfg status`` refer to it.
        started: told each validator's name just before it runs (the
            publisher's "validating since" record).
    """
    for name, validator in validators:
        if started is not None:
            started(name)
        try:
            result = validator(data)
        except KeyboardInterrupt:
            if interruptible:
                raise
            raise ValidationError(
                f"rejected by {name}: KeyboardInterrupt", source=source
            ) from None
        except ConfigError as exc:
            raise ValidationError(
                exc.reason, source=source, line=exc.line, column=exc.column,
                key_path=exc.key_path,
            ) from exc  # fmt: skip
        except BaseException as exc:  # user code; see the docstring
            raise ValidationError(
                f"rejected by {name}: {type(exc).__name__}: {exc}", source=source
            ) from exc
        if result is None:  # a validator that only checks may return nothing
            continue
        data = check_document(result, source=source)
    return data
