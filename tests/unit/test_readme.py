"""The README is the package's page on PyPI: short, and every link works
there, so links into the repository are absolute and name files that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REPOSITORY = "https://github.com/hotcfg/hotcfg/blob/main/"


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 150


def test_every_reference_link_is_defined_and_used():
    used = set(re.findall(r"\]\[([^\]]+)\]", README))
    defined = set(re.findall(r"^\[([^\]]+)\]: ", README, re.MULTILINE))
    assert used == defined


def test_links_into_the_repository_are_absolute_and_name_files_that_exist():
    targets = re.findall(r"^\[[^\]]+\]: (\S+)", README, re.MULTILINE)
    targets += re.findall(r"\]\(([^)\s]+)\)", README)
    assert targets
    for target in targets:
        assert target.startswith("https://"), f"relative link breaks on PyPI: {target}"
        if target.startswith(REPOSITORY):
            path = target.removeprefix(REPOSITORY).split("#", 1)[0]
            assert (ROOT / path).is_file(), f"no such file: {path}"
