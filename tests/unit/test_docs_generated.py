"""The generated reference pages, built in-process by docs/hooks.py as
``make docs`` builds them: every setting and every command is there."""

import importlib.util
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from hotcfg._settings import Settings, variable
from hotcfg.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _hooks():
    path = ROOT / "docs" / "hooks.py"
    spec = importlib.util.spec_from_file_location("docs_hooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()
SETTINGS_PAGE = ROOT / "docs" / "reference" / "settings.md"
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"


def built(page):
    """The Markdown mkdocs renders for ``page``, markers expanded."""
    return hooks.on_page_markdown(page.read_text(encoding="utf-8"), page=None)


def test_the_reference_pages_ask_for_the_generated_content():
    assert "<!-- generated: settings -->" in SETTINGS_PAGE.read_text()
    assert "<!-- generated: cli -->" in CLI_PAGE.read_text()


@pytest.mark.parametrize("item", fields(Settings), ids=lambda f: f.name)
def test_the_settings_page_lists_every_setting(item):
    page = built(SETTINGS_PAGE)
    assert f"| `{variable(item.name)}` |" in page
    assert "<!-- generated" not in page


def test_the_settings_page_shows_each_setting_once_in_field_order():
    rows = [
        line.split("`")[1]
        for line in built(SETTINGS_PAGE).splitlines()
        if line.startswith("| `HOTCFG_") and "=" not in line.split("|")[1]
    ]
    assert rows == [variable(f.name) for f in fields(Settings)]


def test_the_cli_page_has_a_section_with_the_help_of_every_command():
    page = built(CLI_PAGE)
    names = list(hooks.subcommands(build_parser()))
    assert {"validate", "status", "wait", "history", "rollback", "push"} <= set(names)
    for name in names:
        assert f"\n## hotcfg {name}\n" in page
        assert f"usage: hotcfg {name}" in page
    assert "exit codes:" in page


def test_the_cli_help_is_wrapped_the_same_on_any_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = hooks.cli_markdown()
    monkeypatch.setenv("COLUMNS", "200")
    assert hooks.cli_markdown() == narrow
    assert max(len(line) for line in narrow.splitlines()) <= 120


def test_the_benchmarks_page_includes_benchmarks_md():
    page = built(ROOT / "docs" / "contributing" / "benchmarks.md")
    body = (ROOT / "BENCHMARKS.md").read_text().split("\n", 1)[1]
    assert body.strip() in page
    assert "<!-- include:" not in page


def _nav_pages(nav):
    """Every page named in a nav entry of mkdocs.yml, however deep."""
    if isinstance(nav, str):
        return {nav}
    entries = nav.values() if isinstance(nav, dict) else nav
    return set().union(*(_nav_pages(entry) for entry in entries))


def test_every_page_and_decision_record_is_in_the_nav():
    docs = ROOT / "docs"
    on_disk = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    missing = sorted(on_disk - _nav_pages(config["nav"]))
    assert not missing, f"pages missing from mkdocs.yml's nav: {missing}"
