"""The tree's rules hold: no import circle, no import across the walls
docs/contributing/architecture.md draws, no I/O in the pure modules, and nothing of the
master's or the network's on a worker's request path.

The rules are about directories (tools/import_graph.py), so a new module is
covered by where it lives."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location(
        "import_graph", ROOT / "tools" / "import_graph.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


graph = _tool()


def test_hotcfg_has_no_circle_and_breaks_no_rule():
    answer = graph.report(ROOT / "hotcfg")
    assert answer["circles"] == []
    assert answer["broken"] == []


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "pkg"
    write(
        root,
        {
            "__init__.py": "",
            "_api.py": "from ._worker import reader\n",
            "_segment/__init__.py": "",
            "_segment/layout.py": "import struct\n",
            "_segment/shm.py": "import mmap, os\n",
            "_worker/__init__.py": "",
            "_worker/reader.py": "from .._segment import layout\n",
            "_master/__init__.py": "",
            "_master/publisher.py": "from .._sources import file\n",
            "_sources/__init__.py": "",
            "_sources/file.py": "import os, threading\n",
        },
    )
    return root


def test_a_clean_package_passes(package):
    answer = graph.report(package)
    assert (answer["circles"], answer["broken"]) == ([], [])


def test_a_circle_is_found_even_through_a_lazy_import(package):
    write(
        package,
        {
            "_master/metrics.py": "from .publisher import x\n",
            "_master/publisher.py": "def f():\n    from .metrics import serve\n",
        },
    )
    assert graph.report(package)["circles"] == [
        ["_master.metrics", "_master.publisher"]
    ]


@pytest.mark.parametrize(
    ("name", "text", "broken"),
    [
        ("_segment/payload.py", "from .._master import publisher\n", "_master"),
        ("_content/loaders.py", "from .._sources.file import x\n", "_sources"),
        ("_worker/applier.py", "from .._master.publisher import P\n", "_master"),
        ("_worker/applier.py", "import pkg._sources.file\n", "_sources"),
        ("_sources/http.py", "from .._master import publisher\n", "_master"),
        ("_segment/layout.py", "import time\n", "a pure module"),
        ("_content/loaders.py", "def f():\n    import os\n", "a pure module"),
        ("_worker/reader.py", "import watchdog\n", "request path"),
        ("_api.py", "from ._master import publisher\n", "request path"),
    ],
)
def test_each_wall_is_checked(package, name, text, broken):
    write(package, {name: text})
    found = graph.report(package)["broken"]
    assert any(broken in line for line in found), found


def test_a_lazy_import_of_the_master_is_off_the_request_path(package):
    write(package, {"_api.py": "def start():\n    from ._master import publisher\n"})
    assert graph.report(package)["broken"] == []
