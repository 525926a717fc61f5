"""The settings table, generated from ``hotcfg._settings.Settings``.

Each field of ``Settings`` documents itself in its ``metadata`` (``doc``,
``shown``, ``forms``); this script renders those as a Markdown table. The
documentation's settings reference (``docs/reference/settings.md``) is
built from it by ``docs/hooks.py`` at every ``make docs``, so the table
cannot drift from the code; ``tests/unit/test_settings_table.py`` and
``tests/unit/test_docs_generated.py`` check what it shows.

    python tools/settings_table.py            # the table, on stdout
"""

from __future__ import annotations

import sys
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from hotcfg._settings import Settings, variable  # noqa: E402


def shown_default(item: Field[Any]) -> str:
    """The default as the table shows it: ``shown`` if the field gives one,
    else its value (``None`` is "none")."""
    if "shown" in item.metadata:
        return str(item.metadata["shown"])
    value = item.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def rows() -> list[tuple[str, str, str]]:
    """(variable, meaning, default) per setting, each followed by the other
    forms it may be written in, in the order of the fields."""
    table = []
    for item in fields(Settings):
        table.append(
            (f"`{variable(item.name)}`", item.metadata["doc"], shown_default(item))
        )
        for example, meaning, default in item.metadata.get("forms", ()):
            table.append((f"`{example}`", meaning, default))
    return table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """The table, header included, ending in a newline."""
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    for name, meaning, default in rows():
        cells = " | ".join(_cell(c) for c in (name, meaning, default))
        lines.append(f"| {cells} |".replace("|  |", "| |"))
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
