"""The public surface, pinned (like httpx's test_exported_members)."""

import hotcfg
from hotcfg import _api, _errors
from hotcfg._segment import snapshot as _snapshot

EXPECTED = [
    "ConfigError",
    "CorruptSegmentError",
    "HotcfgError",
    "MissingKeyError",
    "NotConfiguredError",
    "ParseError",
    "SegmentError",
    "Snapshot",
    "SourceError",
    "ValidationError",
    "__version__",
    "configure",
    "generation",
    "get",
    "latest",
    "on_change",
    "require",
    "resource",
    "snapshot",
]


def test_all_is_pinned_and_sorted():
    assert hotcfg.__all__ == EXPECTED


def test_every_exported_name_resolves_to_its_private_definition():
    for name in EXPECTED:
        value = getattr(hotcfg, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        home = next(m for m in (_api, _errors, _snapshot) if hasattr(m, name))
        assert value is getattr(home, name)
    assert set(EXPECTED) <= set(dir(hotcfg))


def test_star_import_gives_exactly_all():
    namespace = {}
    exec("from hotcfg import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == EXPECTED
