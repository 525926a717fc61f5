"""The soak test's WSGI app: each answer says which configuration it used.

GET /  ->  {"pid", "generation", "checksum", "version", "version_end",
            "tag_end", "generation_end"}

``checksum`` is :func:`checksum` of the request's snapshot. ``version`` is
read first, then the request spins briefly so that a publish can land in
the middle, then ``version``, ``payload.tag`` and the generation are read
again: a request that saw two generations shows two different versions.
The driver knows the checksum of every valid version it wrote, so an
answer whose checksum it does not know served a configuration it never
accepted.

:func:`reject_marked` is the soak's ``HOTCFG_VALIDATOR`` and
:data:`SCHEMA` its ``HOTCFG_SCHEMA``.
"""

import hashlib
import json
import os

import hotcfg

SPIN = 3000

SCHEMA = {
    "type": "object",
    "properties": {
        "version": {"type": "integer"},
        "payload": {
            "type": "object",
            "properties": {
                "tag": {"type": "string"},
                "items": {"type": "array", "items": {"type": "integer"}},
            },
        },
    },
}


def checksum(data):
    """Canonical digest of a configuration, the same in the app and the driver."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def reject_marked(data):
    if data.get("reject"):
        raise ValueError("marked for rejection")
    return data


_last = (None, "")


def snapshot_checksum(snap):
    """:func:`checksum` of a snapshot, computed once per snapshot object.

    Sound because a snapshot is immutable; it keeps large soak payloads from
    costing a full JSON dump on every request.
    """
    global _last
    cached, digest = _last
    if cached is not snap:
        digest = checksum(snap.to_dict())
        _last = (snap, digest)
    return digest


def app(environ, start_response):
    version = hotcfg.get("version")
    snap = hotcfg.snapshot()
    total = 0
    for i in range(SPIN):  # a window for a publish to land mid-request
        total += i
    body = {
        "pid": os.getpid(),
        "generation": snap.generation,
        "checksum": snapshot_checksum(snap),
        "version": version,
        "version_end": hotcfg.get("version"),
        "tag_end": hotcfg.get("payload.tag"),
        "generation_end": hotcfg.generation(),
    }
    data = json.dumps(body).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]
