"""Outside Gunicorn: publisher, watcher and reader in one process."""

import os
import textwrap
from pathlib import Path

import pytest

import hotcfg

from . import run_script


def test_get_and_on_change_in_one_process(tmp_path, monkeypatch, fresh_hotcfg):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    monkeypatch.setenv("HOTCFG_DEBOUNCE_MS", "10")
    changes = []
    hotcfg.on_change("value")(lambda old, new: changes.append((old, new)))
    assert hotcfg.get("value") == "one"
    fresh_hotcfg.save(config, "value: two\n")
    fresh_hotcfg.wait_for("value", "two")
    assert (hotcfg.get("value"), hotcfg.generation(), changes) == (
        "two", 2, [("one", "two")]
    )  # fmt: skip


# A child process: what is tested is the interpreter's exit (atexit).
AT_EXIT = textwrap.dedent(
    """
    import os
    import hotcfg

    value = hotcfg.get("value")
    names = os.listdir(os.environ["HOTCFG_SEGMENT_DIR"])
    print(value, sorted(name.rsplit(".", 1)[1] for name in names))
    """
)


def test_segment_is_removed_at_interpreter_exit(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    # The segment and its control socket while running (a process of its own
    # keeps no history: that is the Gunicorn master's), and nothing after.
    assert run_script(AT_EXIT, config, HOTCFG_PEERS="off") == "one ['seg', 'sock']"
    left = [p.name for p in Path(os.environ["HOTCFG_SEGMENT_DIR"]).iterdir()]
    assert left == []


def test_elected_process_leaves_only_its_history_at_exit(tmp_path):
    """With peers (the default), a process alone is the one elected: it
    publishes for peers that may join, so it keeps the service's history
    as a Gunicorn master does; at exit only the history and its lock stay
    (``hotcfg clean`` removes them), nothing per start."""
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    running = "one ['history', 'lock', 'publisher', 'seg', 'slots', 'sock']"
    assert run_script(AT_EXIT, config) == running
    left = sorted(
        p.name.rsplit(".", 1)[1]
        for p in Path(os.environ["HOTCFG_SEGMENT_DIR"]).iterdir()
    )
    assert left == ["history", "lock"]


def test_not_configured_says_how(monkeypatch, fresh_hotcfg):
    """No source anywhere: a default does not hide it, and the message says
    how to configure an app and how to give a test a configuration."""
    monkeypatch.delenv("HOTCFG_SOURCE", raising=False)
    with pytest.raises(hotcfg.NotConfiguredError) as missing:
        hotcfg.get("value", "a default")
    message = str(missing.value)
    assert message.startswith("no configuration source: ")
    assert "HOTCFG_SOURCE" in message
    assert "hotcfg.configure(source=...)" in message
    assert "hotcfg.testing.use_config" in message

