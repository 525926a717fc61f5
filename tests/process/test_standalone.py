"""Outside Gunicorn: publisher, watcher and reader in one process."""

import os
import textwrap
from pathlib import Path

from . import run_script

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import hotcfg

    path = sys.argv[1]
    changes = []
    hotcfg.on_change("value")(lambda old, new: changes.append((old, new)))
    assert hotcfg.get("value") == "one", hotcfg.get("value")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("value: two\\n")
    os.replace(tmp, path)
    deadline = time.monotonic() + 10
    while hotcfg.get("value") != "two" and time.monotonic() < deadline:
        time.sleep(0.01)
    print(hotcfg.get("value"), hotcfg.generation(), changes)
    """
)


def test_get_and_on_change_in_one_process(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    output = run_script(SCRIPT, config, config, HOTCFG_DEBOUNCE_MS="10")
    assert output == "two 2 [('one', 'two')]"
    assert list(Path(os.environ["HOTCFG_SEGMENT_DIR"]).iterdir()) == []
