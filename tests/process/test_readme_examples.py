"""The README's runnable examples run as written."""

import re

from tests.process import ROOT


def readme_block(heading):
    """The first ``python`` block under ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_testing_example_runs():
    namespace = {}
    exec(compile(readme_block("Testing your code"), "README.md", "exec"), namespace)
    namespace["test_banner_follows_the_flag"]()
