"""Bytes of a YAML, JSON or TOML document -> a Python mapping, or ParseError.

PURE: takes bytes and a label, returns data or raises; reading files is
``_sources``'s job. Must not import ``os``, ``mmap``, ``signal``,
``threading`` or ``time``.

Safety rules, all formats:

* YAML goes through ``SafeLoader`` (the libyaml ``CSafeLoader`` when PyYAML
  was built with it): no tags that build Python objects, ever.
* Duplicate keys are rejected (YAML and JSON would silently keep the last).
* Error messages carry the line, the column and the parser's reason, but
  never a snippet of the document: it may hold secrets.
* Mapping keys must be strings; YAML's other keys (``1:``, ``null:``,
  ``[a]:``) are refused where they stand, with their line and column.
* Text must be UTF-8: a leading UTF-8 byte-order mark is dropped (Windows
  editors write one); a UTF-16 or UTF-32 one is refused with its own reason,
  since decoding a guessed encoding could change what the file means. NUL is
  refused.
* An integer literal longer than Python's ``int`` digit limit (4300 digits,
  the guard against quadratic-time conversion) is a ParseError with its place,
  not a stray ValueError.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from typing import Any

import yaml

from .._errors import ParseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

FORMATS = ("yaml", "json", "toml")
_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}

_YamlBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",  # before UTF-16 LE: it starts with the same bytes
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
# Python refuses to convert longer decimal integers (CVE-2020-10735 guard).
_LONG_DIGITS = re.compile(r"\d{4301,}")
# tomllib before Python 3.14 only puts the position into the message.
_TOML_PLACE = re.compile(r" \(at (?:line (\d+), column (\d+)|end of document)\)$")


def format_for(name: str) -> str:
    """The format implied by a file name's suffix.

    Raises:
        ParseError: the suffix is not one of .yaml, .yml, .json, .toml.
    """
    dot = name.rfind(".")
    fmt = _SUFFIXES.get(name[dot:].lower()) if dot >= 0 else None
    if fmt is None:
        raise ParseError(
            "cannot tell the format from the file name; use a .yaml, .yml, .json "
            "or .toml suffix or set HOTCFG_FORMAT",
            source=name,
        )
    return fmt


class _StrictYamlLoader(_YamlBase):  # type: ignore[misc]
    """SafeLoader that refuses duplicate and non-string keys in a mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _constructor_error(
                    f"mapping keys must be strings, not {type(key).__name__}",
                    key_node,
                )
            if key in seen:
                raise _constructor_error("duplicate key", key_node)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise _constructor_error("integer too long", node) from None


_StrictYamlLoader.add_constructor(
    "tag:yaml.org,2002:int", _StrictYamlLoader.construct_yaml_int
)


def _constructor_error(problem: str, node: Any) -> yaml.YAMLError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


def _yaml_error(exc: yaml.YAMLError, source: str) -> ParseError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    reason = f"invalid YAML: {problem}" if problem else "invalid YAML"
    if mark is None:
        return ParseError(reason, source=source)
    return ParseError(reason, source=source, line=mark.line + 1, column=mark.column + 1)


def _load_yaml(text: str, source: str) -> Any:
    loader = _StrictYamlLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from exc
    finally:
        loader.dispose()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _DuplicateKey(ValueError):
    pass


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"invalid JSON: {exc.msg}", source=source, line=exc.lineno, column=exc.colno
        ) from exc
    except _DuplicateKey as exc:
        # json gives no position for a hook's error; find the key's last occurrence.
        needle = json.dumps(exc.args[0])
        pos = text.rfind(needle)
        line, col = _line_col(text, pos) if pos >= 0 else (None, None)
        raise ParseError("duplicate key", source=source, line=line, column=col) from exc


def _load_toml(text: str, source: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 adds lineno/colno; before, the position is in the message.
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        msg = getattr(exc, "msg", None) or str(exc)
        place = _TOML_PLACE.search(msg)
        if place is not None:
            msg = msg[: place.start()]
            if place[1] is None:
                line, col = _line_col(text, len(text))
            else:
                line, col = int(place[1]), int(place[2])
        raise ParseError(
            f"invalid TOML: {msg}", source=source, line=line, column=col
        ) from exc


_LOADERS = {"yaml": _load_yaml, "json": _load_json, "toml": _load_toml}


def parse(content: bytes, *, fmt: str, source: str) -> Any:
    """Parse ``content`` as ``fmt``; the result is not validated yet.

    Args:
        content: the raw document.
        fmt: one of ``FORMATS``.
        source: label used in error messages (usually the path).

    Raises:
        ParseError: invalid encoding or syntax, with line and column when known.
    """
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise ParseError(f"unknown format {fmt!r}; use one of {FORMATS}", source=source)
    for bom, encoding in _WIDE_BOMS.items():
        if content.startswith(bom):
            raise ParseError(
                f"{encoding} text (byte-order mark); save the file as UTF-8",
                source=source,
                line=1,
                column=1,
            )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _line_col(content.decode("latin-1"), exc.start)
        raise ParseError(
            "not valid UTF-8", source=source, line=line, column=col
        ) from exc
    nul = text.find("\0")
    if nul >= 0:
        line, col = _line_col(text, nul)
        raise ParseError(
            "contains a NUL character", source=source, line=line, column=col
        )
    try:
        return loader(text, source)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError("nested too deeply to parse", source=source) from exc
    # Not a syntax error the parser reports itself: JSON's and TOML's int()
    # of an over-long literal (YAML's is placed by _StrictYamlLoader).
    except ValueError as exc:
        digits = _LONG_DIGITS.search(text)
        if digits is None:
            raise ParseError(
                f"cannot parse: {fmt} parser raised ValueError", source=source
            ) from exc
        line, col = _line_col(text, digits.start())
        raise ParseError(
            "integer too long", source=source, line=line, column=col
        ) from exc
