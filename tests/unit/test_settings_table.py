"""One settings table: the settings reference page is generated from the
``Settings`` fields (``tools/settings_table.py``, through ``docs/hooks.py``),
and what it shows agrees with the code."""

import importlib.util
import re
from dataclasses import fields
from pathlib import Path

import pytest

from hotcfg._settings import Settings, variable

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "tools" / "settings_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _generator()


def test_every_setting_has_one_row_in_field_order():
    names = [row[0] for row in generator.rows() if row[0].count("=") == 0]
    assert names == [f"`{variable(f.name)}`" for f in fields(Settings)]


@pytest.mark.parametrize("item", fields(Settings), ids=lambda f: f.name)
def test_every_setting_says_what_it_does(item):
    assert item.metadata["doc"].strip()
    assert not item.metadata["doc"].endswith(".")


@pytest.mark.parametrize(
    "item",
    [f for f in fields(Settings) if f.default is not None],
    ids=lambda f: f.name,
)
def test_the_default_shown_is_the_default(item):
    """The first literal of the shown default, parsed as the setting's value
    is, gives the field's default."""
    shown = generator.shown_default(item)
    literal = re.search(r"`([^`]*)`", shown)
    assert literal, f"{item.name}: no literal in {shown!r}"
    parsed = getattr(Settings.resolve({}, **{item.name: literal.group(1)}), item.name)
    assert parsed == item.default
