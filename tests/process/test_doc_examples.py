"""Every runnable example in README.md and docs/ runs as written.

A ``python``, ``sh`` or ``bash`` block is run unless the line just before
it is ``<!-- not run: REASON -->`` (a fragment of an app, a server that
runs until stopped, a cluster the block needs). A Python block runs as a
script in a fresh interpreter, in an empty directory, and then each
``test_*`` function it defines is called, as pytest would. A shell block
runs under ``bash -euo pipefail`` from the repository's root, with this
interpreter's ``bin`` directory (``hotcfg``, ``gunicorn``) first on the
PATH. Both run with no ``HOTCFG_SOURCE`` and a segment directory of their
own, and must exit 0.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process import ROOT

RUNNABLE = {"python": "python", "py": "python", "sh": "sh", "bash": "sh"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*\Z")

#: Calls each test_* function the example defined, after running it.
PYTHON_RUNNER = """
import runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="__example__")
for name, value in list(namespace.items()):
    if name.startswith("test_") and callable(value):
        value()
"""


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path):
    """(kind, code, line, reason) per python or shell block of ``path``;
    ``reason`` is the opt-out's, or None for a block that runs."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        kind = RUNNABLE.get(match.group(1))
        if kind is None:
            continue
        before = text[: match.start()]
        opt_out = NOT_RUN.search(before)
        line = before.count("\n") + 1
        found.append((kind, match.group(2), line, opt_out and opt_out.group(1)))
    return found


def runnable():
    params = []
    for path in doc_files():
        for kind, code, line, reason in blocks(path):
            if reason is None:
                name = f"{path.relative_to(ROOT)}:{line}"
                params.append(pytest.param(kind, code, id=name))
    return params


def test_examples_are_found_and_opt_outs_say_why():
    """The collector sees blocks (a changed fence would silently run
    nothing), and every opt-out gives a reason."""
    every = [b for path in doc_files() for b in blocks(path)]
    assert len(every) > 30
    assert len(runnable()) >= 5
    for path in doc_files():
        for _, _, line, reason in blocks(path):
            assert reason is None or reason.strip(), f"{path}:{line}"


@pytest.mark.parametrize(("kind", "code"), runnable())
def test_example_runs(kind, code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTCFG_")}
    env.update(
        # the test's own (tests/conftest.py)
        HOTCFG_SEGMENT_DIR=os.environ["HOTCFG_SEGMENT_DIR"],
        PYTHONPATH=str(ROOT),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    if kind == "python":
        work = tmp_path / "work"
        work.mkdir()
        script = tmp_path / "example.py"
        script.write_text(code)
        argv = [sys.executable, "-c", PYTHON_RUNNER, str(script)]
        cwd = work
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
        cwd = ROOT
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
