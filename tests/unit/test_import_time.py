"""How ``_worker.import_time`` tells a read at import time: importlib's
module locks, or, without them, importlib's frames on the stack."""

import importlib
import sys
import textwrap

import pytest

from hotcfg._worker import import_time

PROBE = textwrap.dedent(
    """\
    from hotcfg._worker import import_time

    SEEN = import_time.importing()
    """
)


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """Import a fresh module that records ``importing()`` while imported."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(name):
        (tmp_path / f"{name}.py").write_text(PROBE)
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.invalidate_caches()
        return importlib.import_module(name).SEEN

    return load


def test_module_locks_tell_an_import_in_this_thread(probe):
    assert import_time.imports_in_progress is import_time._LOCKS
    assert probe("import_time_probe_locks") is True
    assert import_time.importing() is False


def test_without_module_locks_the_stack_tells(probe, monkeypatch):
    monkeypatch.setattr(import_time, "_LOCKS", None)
    assert probe("import_time_probe_frames") is True
    assert import_time.importing() is False
