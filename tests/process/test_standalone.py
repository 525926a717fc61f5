"""Outside Gunicorn: publisher, watcher and reader in one process."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
    env = dict(os.environ, HOTCFG_SOURCE=str(config), HOTCFG_DEBOUNCE_MS="10",
               PYTHONPATH=str(ROOT))  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config)],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "two 2 [('one', 'two')]"
    assert list(Path(os.environ["HOTCFG_SEGMENT_DIR"]).iterdir()) == []
