"""Typed configs: a validated mapping -> an instance of the user's model.

PURE: no I/O. Must not import ``os``, ``mmap``, ``signal``, ``threading`` or
``time``, nor pydantic at import time (it is an optional extra, touched only
when the model given is a pydantic model).

Two kinds of model:

* a stdlib dataclass, converted here, recursively: nested dataclasses,
  ``list``/``tuple``/``Sequence``, ``dict``/``Mapping`` with ``str`` keys,
  ``Optional``/unions, ``Literal``, ``Any`` and the JSON scalars. The checks
  are strict where YAML is loose: ``bool`` is not an ``int`` (``on: yes``
  must not become a pool size of 1), but an ``int`` is a ``float``. A key
  the model does not have is an error, so a misspelt key is caught instead
  of silently keeping its default.
* a pydantic v2 ``BaseModel``, validated by pydantic under its own config.

Either way a misfit is a :class:`ValidationError` naming the key path and
the expected type, never the value: configs hold secrets.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

from .._errors import ConfigError, ValidationError
from .frozen import thaw
from .validate import import_object

T = TypeVar("T")

_SEQUENCES = {list, tuple, Sequence, typing.Sequence}
_MAPPINGS = {dict, Mapping, typing.Mapping}
_UNIONS: set[Any] = {Union, types.UnionType}


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _kind(value: object) -> str:
    """The type of a config value in the words of the file, not Python's."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def is_pydantic_model(cls: object) -> bool:
    """True for a pydantic v2 model class, without importing pydantic."""
    return isinstance(cls, type) and callable(getattr(cls, "model_validate", None))


def to_model(
    cls: type[T], data: Any, *, key_path: str = "", source: str = "<config>"
) -> T:
    """Build ``cls`` from ``data`` (the value found at ``key_path``).

    Raises:
        ValidationError: ``data`` does not fit ``cls``; names the key path.
        TypeError: ``cls`` is neither a dataclass nor a pydantic model, or
            uses an annotation this module cannot check (a bug in the model,
            not in the config).
    """
    result: T
    if is_pydantic_model(cls):
        result = _pydantic(cls, data, key_path=key_path, source=source)
        return result
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is neither a dataclass nor a pydantic model")
    result = _convert(cls, data, key_path, source)
    return result


def _convert(tp: Any, value: Any, path: str, source: str) -> Any:
    def wrong(expected: str) -> ValidationError:
        return ValidationError(
            f"expected {expected}, got {_kind(value)}", source=source, key_path=path
        )

    if tp is Any or tp is object:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path, source)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        return _union(tp, args, value, path, source)
    if origin is Literal:
        # type() too: Literal[1] must not accept True, nor Literal[True] 1.
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise wrong("one of " + ", ".join(repr(a) for a in args))
    if origin in _SEQUENCES or tp in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        return _sequence(origin or tp, args, value, path, source, wrong)
    if origin in _MAPPINGS or tp in _MAPPINGS:
        if not isinstance(value, Mapping):
            raise wrong("a mapping")
        item_tp = args[1] if len(args) == 2 else Any
        return {
            k: _convert(item_tp, v, _join(path, k), source) for k, v in value.items()
        }
    return _scalar(tp, value, wrong)


def _scalar(tp: Any, value: Any, wrong: Callable[[str], ValidationError]) -> Any:
    if tp is bool:
        if type(value) is bool:
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is None or tp is type(None):
        if value is None:
            return None
    else:
        raise TypeError(f"hotcfg cannot check values against {tp!r}")
    raise wrong(_name(tp))


def _dataclass(cls: type[Any], value: Any, path: str, source: str) -> Any:
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"expected a mapping ({cls.__name__}), got {_kind(value)}",
            source=source,
            key_path=path,
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            raise ValidationError(
                f"unknown key (not a field of {cls.__name__})",
                source=source,
                key_path=_join(path, key),
            )
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], _join(path, name), source)
        elif (
            f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            raise ValidationError(
                "required key missing", source=source, key_path=_join(path, name)
            )
    return cls(**kwargs)


def _union(tp: Any, args: tuple[Any, ...], value: Any, path: str, source: str) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:  # Optional[X]: X's own error says more
        return _convert(options[0], value, path, source)
    for option in options:
        try:
            return _convert(option, value, path, source)
        except ValidationError:
            continue
    expected = " | ".join(_name(a) for a in args)
    raise ValidationError(
        f"expected {expected}, got {_kind(value)}", source=source, key_path=path
    )


def _sequence(
    origin: Any,
    args: tuple[Any, ...],
    value: Sequence[Any],
    path: str,
    source: str,
    wrong: Callable[[str], ValidationError],
) -> Any:
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)} items")
        return tuple(
            _convert(a, v, _join(path, i), source)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    item_tp = args[0] if args else Any
    items = [_convert(item_tp, v, _join(path, i), source) for i, v in enumerate(value)]
    return items if origin is list else tuple(items)


def _pydantic(cls: Any, data: Any, *, key_path: str, source: str) -> Any:
    import pydantic

    try:
        return cls.model_validate(thaw(data))
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        where = key_path
        for part in first["loc"]:
            where = _join(where, part)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        # from None: pydantic's own message quotes the offending input.
        raise ValidationError(
            f"{first['msg']}{more}", source=source, key_path=where
        ) from None


def import_model(spec: str) -> type[Any]:
    """Resolve ``HOTCFG_MODEL``'s ``"package.module:Class"``.

    Raises:
        ConfigError: malformed spec, missing module or attribute, or not a
            dataclass or pydantic model.
    """
    target = import_object(spec, what="model", setting="HOTCFG_MODEL")
    if not (
        is_pydantic_model(target)
        or (isinstance(target, type) and dataclasses.is_dataclass(target))
    ):
        raise ConfigError(
            f"model {spec!r} is neither a dataclass nor a pydantic model",
            source="HOTCFG_MODEL",
        )
    model: type[Any] = target
    return model


def model_validator(cls: type[Any]) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """A publisher-side validator: refuse a document that does not fit ``cls``.

    The document is published as written, not as the model normalised it:
    every worker builds the same model from it with :meth:`Snapshot.as_model`.
    """

    def validate(data: Mapping[str, Any], /) -> Mapping[str, Any]:
        to_model(cls, data)
        return data

    validate.__qualname__ = f"model_validator({cls.__qualname__})"
    return validate
