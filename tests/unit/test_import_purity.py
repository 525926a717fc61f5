"""The pure modules import nothing that does I/O or starts anything, and
``import hotcfg`` itself is lazy (PEP 562)."""

import json
import subprocess
import sys

import pytest

import hotcfg

# Modules that map memory, start threads or watch files: none of them may
# come in with the format modules or with a bare ``import hotcfg``.
IMPURE = [
    "mmap",
    "watchdog",
    "hotcfg._api",
    "hotcfg._sources.watch",
    "hotcfg._segment.shm",
]
IMPURE += ["hotcfg._master.publisher", "hotcfg._worker.reader"]


def loaded_after(statement):
    code = f"import json, sys; {statement}; print(json.dumps(list(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "statement",
    ["import hotcfg._segment.payload, hotcfg._segment.layout", "import hotcfg"],
)
def test_format_modules_and_package_import_nothing_impure(statement):
    loaded = loaded_after(statement)
    assert sorted(loaded & set(IMPURE)) == []


def test_layout_imports_no_other_hotcfg_module_but_errors():
    loaded = loaded_after("import hotcfg._segment.layout")
    ours = {name for name in loaded if name.startswith("hotcfg.")}
    assert ours == {"hotcfg._segment", "hotcfg._segment.layout", "hotcfg._errors"}
    assert "msgpack" not in loaded


def test_first_access_imports_and_caches_the_name():
    loaded = loaded_after("import hotcfg; hotcfg.get")
    assert {"hotcfg._api", "hotcfg._errors"} <= loaded
    assert hotcfg.get is hotcfg.__dict__["get"]  # cached: a plain attribute


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        hotcfg.no_such_name  # noqa: B018
