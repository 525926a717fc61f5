"""The user's checks that the settings name: ``HOTCFG_VALIDATOR``,
``HOTCFG_SCHEMA`` and ``HOTCFG_MODEL``, built once per publisher (and by
``hotcfg validate`` and the framework checks).

Here rather than beside the publisher because the schema is a file, and
``files`` is the one reader of files; the checks themselves are the pure
``_content.validate`` and ``_content.typed``. Imports ``files`` of
``_sources`` and no source; never ``_master`` or ``_worker``.
"""

from __future__ import annotations

import os

from .._content import loaders, typed, validate
from .._errors import ConfigError
from .._settings import Settings
from .files import read_capped


def validators_for(settings: Settings) -> tuple[validate.NamedValidator, ...]:
    """The user's checks that ``settings`` name, in the order they run:
    ``HOTCFG_VALIDATOR``, ``HOTCFG_SCHEMA``, ``HOTCFG_MODEL``.

    Raises:
        ConfigError: a validator or model cannot be imported, or the schema
            cannot be read or is not a valid JSON Schema.
    """
    validators: list[validate.NamedValidator] = []
    if settings.validator:
        validators.append(
            (
                f"validator {settings.validator}",
                validate.import_validator(settings.validator),
            )
        )
    if settings.schema:
        validators.append(
            (
                f"schema {settings.schema}",
                load_schema(settings.schema, max_bytes=settings.max_bytes),
            )
        )
    if settings.model:
        model = typed.import_model(settings.model)
        validators.append((f"model {settings.model}", typed.model_validator(model)))
    return tuple(validators)


def load_schema(path: str, *, max_bytes: int) -> validate.Validator:
    """A validator for the JSON Schema file at ``path`` (JSON or YAML)."""
    content = read_capped(path, max_bytes=max_bytes)
    fmt = "json" if path.endswith(".json") else loaders.format_for(path)
    schema = loaders.parse(content, fmt=fmt, source=path)
    if not isinstance(schema, dict):
        raise ConfigError("a JSON Schema must be a mapping", source=path)
    return validate.schema_validator(schema, label=os.path.basename(path))
