"""History and rollback under real Gunicorn (4 workers), through the CLI."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT

NOBODY = 65534

pytestmark = pytest.mark.e2e


def hotcfg_cli(service, *args):
    out = service.hotcfg(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def history(service):
    return json.loads(hotcfg_cli(service, "history", "--json"))


def test_a_rollback_is_served_by_every_worker_and_the_next_edit_wins(
    start_service, tmp_path
):
    service = start_service(
        tmp_path,
        config="value: one\nsecret: s3cret\n",
        env_extra={"HOTCFG_POLL_INTERVAL_MS": "100"},
    )
    service.all_workers_answer("one")
    service.write_atomic("value: two\nsecret: s3cret\n")
    service.all_workers_answer("two")
    diff = hotcfg_cli(service, "diff")
    assert diff.splitlines()[2:] == ["~ value"]
    assert "s3cret" not in hotcfg_cli(service, "diff", "--from", "1", "--values")

    # Right after the save: the watcher's next stat tick reads the file once
    # more, and must not undo the rollback.
    out = hotcfg_cli(service, "rollback")
    assert "generation 3 is live: the content of generation 1" in out
    assert "still holds the newer content" in out
    service.all_workers_answer("one")
    assert {w["generation"] for w in service.status()[0]["workers"]} == {3}
    entries = history(service)
    assert [e["generation"] for e in entries] == [1, 2, 3]
    assert entries[2]["hash"] == entries[0]["hash"]
    assert entries[2]["live"]

    # The next edit wins, and is the next generation: nothing republished
    # "two" in between.
    service.write_atomic("value: three\nsecret: s3cret\n")
    service.all_workers_answer("three")
    assert [e["generation"] for e in history(service)] == [1, 2, 3, 4]
    # A HUP publishes what the file holds, as a reload does.
    assert hotcfg_cli(service, "rollback").startswith("generation 5 is live")
    service.all_workers_answer("one")
    os.kill(service.proc.pid, signal.SIGHUP)
    service.all_workers_answer("three")


def test_history_survives_a_master_restart(start_service, tmp_path):
    (tmp_path / "a").mkdir()
    first = start_service(tmp_path / "a", config="value: one\n")
    first.write_atomic("value: two\n")
    first.all_workers_answer("two")
    before = history(first)
    first.stop()

    # The same service started again: same source, same segment directory.
    (tmp_path / "b").mkdir()
    first.config.write_text("value: three\n")
    second = start_service(
        tmp_path / "b", env_extra={"HOTCFG_SOURCE": str(first.config)}
    )
    second.all_workers_answer("three")
    after = history(second)
    assert [e["generation"] for e in after] == [1, 2, 3]
    assert [e["hash"] for e in after[:2]] == [e["hash"] for e in before]
    assert second.get()["generation"] == 3  # numbering continues
    out = hotcfg_cli(second, "rollback", "--to", "2")
    assert "content of generation 2" in out
    second.all_workers_answer("two")


REFUSED = textwrap.dedent(
    """
    import os, sys
    from hotcfg import cli
    # Everything imported while the interpreter's own files are readable
    # (under /root they are not, for nobody): argparse loads gettext and
    # locale only when it first builds a parser.
    cli._parser().format_help()
    os.setgroups([])
    os.setgid(%(uid)d)
    os.setuid(%(uid)d)
    sys.exit(cli.main(["history", "--dir", sys.argv[1]]))
    """
) % {"uid": NOBODY}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")
def test_another_uid_cannot_use_the_control_socket(service):
    out = subprocess.run(
        [sys.executable, "-c", REFUSED, str(service.segments)],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert out.returncode == 2
    assert "Permission denied" in out.stderr
    assert hotcfg_cli(service, "history")  # its own uid is served
