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
    "hotcfg._runtime",
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


# What only the publishing process needs: the master's and the sources'
# packages, the file watcher, and the etcd and HTTP clients' libraries. The
# source strings' grammar is pure and every process parses its settings
# with it, so it (and its package's empty face) may come in.
MASTER_ONLY = ("hotcfg._master", "hotcfg._sources", "watchdog", "http.client", "ssl")
PURE_GRAMMAR = {"hotcfg._sources", "hotcfg._sources.locations"}


@pytest.mark.parametrize(
    "statement",
    [
        "import hotcfg; hotcfg.get",
        "import hotcfg; hotcfg.configure",
        "import hotcfg._api",
        "import hotcfg.integrations.wsgi",
        "import hotcfg.integrations.asgi",
    ],
)
def test_the_worker_request_path_imports_nothing_of_the_master(statement):
    """A worker's per-request path (the public functions, the pinning, the
    process state they read, the request middleware) brings in no watcher,
    sockets to a store or master module: those load lazily, in the process
    that publishes. (``socket`` itself comes in with the applier's wake-up
    pair, so the check names the stores' clients, not ``socket``.)"""
    loaded = loaded_after(statement)
    assert "hotcfg._runtime" in loaded  # the path under test was loaded
    master = {
        name
        for name in loaded
        if any(name == top or name.startswith(f"{top}.") for top in MASTER_ONLY)
    }
    master -= PURE_GRAMMAR
    assert sorted(master) == []


def test_process_state_does_not_import_the_request_side():
    """``_api`` imports ``_runtime``; the other way would be a circle."""
    assert "hotcfg._api" not in loaded_after("import hotcfg._runtime")


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        hotcfg.no_such_name  # noqa: B018
