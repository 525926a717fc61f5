"""mkdocs hooks: the pages that are generated from the code at build time.

A page asks for generated content with a marker comment on a line of its
own, and ``on_page_markdown`` replaces the marker:

- ``<!-- generated: settings -->``: the settings table, from the fields of
  ``hotcfg._settings.Settings`` (through ``tools/settings_table.py``), so
  the reference cannot drift from the code;
- ``<!-- generated: cli -->``: ``hotcfg --help`` and every
  ``hotcfg COMMAND --help``, from the parser the CLI itself builds;
- ``<!-- include: PATH -->``: a Markdown file from outside ``docs/``
  (``BENCHMARKS.md``), its top heading dropped.

The functions work without mkdocs, so the tests call them directly.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The width help text is wrapped at, whatever the terminal building the docs.
HELP_WIDTH = 88

if str(ROOT) not in sys.path:  # mkdocs run from a checkout without an install
    sys.path.insert(0, str(ROOT))


def _settings_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "tools" / "settings_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_markdown() -> str:
    """The table of every setting: variable, meaning, default."""
    table: str = _settings_table().markdown()
    return table


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each subcommand, by name, in the order of ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_markdown() -> str:
    """``hotcfg --help``, then one section per command with its ``--help``."""
    from hotcfg.cli.parser import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)  # argparse wraps at the terminal's
    try:
        parser = build_parser()
        parts = ["```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in subcommands(parser).items():
            parts += [f"## hotcfg {name}", "", "```text", sub.format_help().rstrip()]
            parts += ["```", ""]
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts)


def included(path: str) -> str:
    """``ROOT/path`` without its first ``#`` heading (the page has its own)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.sub(r"\A# [^\n]*\n", "", text, count=1)


def expand(markdown: str) -> str:
    """``markdown`` with every marker replaced by what it names."""
    markdown = markdown.replace("<!-- generated: settings -->", settings_markdown())
    markdown = markdown.replace("<!-- generated: cli -->", cli_markdown())
    return re.sub(
        r"<!-- include: ([^ ]+) -->", lambda m: included(m.group(1)), markdown
    )


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs' hook: every page's Markdown, before it is rendered."""
    return expand(markdown)
