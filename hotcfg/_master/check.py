"""Master side: everything a publish checks, without publishing.

``hotcfg validate``, ``hotcfg push`` and the Django checks ask whether a
source (or bytes about to be written to it) would be published: read,
validate, encode and decode back exactly as the publisher does, with no
segment, no thread and no history. Imports no publisher.
"""

from __future__ import annotations

from typing import Any

from .._content import validate as _validate
from .._segment import payload as _payload
from .._settings import Settings
from .._sources.checks import validators_for
from .._sources.files import load_document
from .._sources.select import source_for


def validate_source(
    settings: Settings, *, content: bytes | None = None
) -> tuple[dict[str, Any], bytes]:
    """Everything a publish checks, without publishing: load, validate,
    encode and decode back as a worker will (``hotcfg validate``, framework
    checks).

    Args:
        content: the source's bytes, read already (``hotcfg push`` checks
            exactly the bytes it writes); default: read the source now.

    Returns:
        The validated mapping and its encoded payload.

    Raises:
        NotConfiguredError: no source in ``settings``.
        ConfigError: with the file, the place and the reason.
    """
    source = source_for(settings)
    document = (
        source.load()
        if content is None
        else load_document(content, fmt=source.fmt, source=source.location)
    )
    data = _validate.run_validators(
        document, validators_for(settings), source=source.location
    )
    payload = _payload.encode(data, source=source.location)
    _payload.decode_payload(payload)
    return data, payload
