"""History and rollback under real Gunicorn (4 workers), through the CLI."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT, free_port

NOBODY = 65534

pytestmark = pytest.mark.e2e


def hotcfg_cli(service, *args, code=0):
    out = service.hotcfg(*args)
    assert out.returncode == code, out.stderr
    return out.stdout


def history(service):
    return json.loads(hotcfg_cli(service, "history", "--json"))


def own(service, *args):
    """A command for this service's master alone (several run)."""
    return hotcfg_cli(service, *args, "--pid", str(service.proc.pid))


def generations(service):
    entries = json.loads(own(service, "history", "--json"))
    return [e["generation"] for e in entries]


def both_answer(service, value, who):
    service.all_workers_answer(value)
    service.all_workers_answer(who, path="/?key=who")


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
    diff = hotcfg_cli(service, "diff", code=1)  # differences, as diff(1)
    assert diff.splitlines()[2:] == ["~ value"]
    shown = hotcfg_cli(service, "diff", "--from", "1", "--values", code=1)
    assert "s3cret" not in shown

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

    # The same service started again: same source, same segment directory,
    # same address.
    (tmp_path / "b").mkdir()
    first.config.write_text("value: three\n")
    second = start_service(
        tmp_path / "b", env_extra={"HOTCFG_SOURCE": str(first.config)}, port=first.port
    )
    second.all_workers_answer("three")
    after = history(second)
    assert [e["generation"] for e in after] == [1, 2, 3]
    assert [e["hash"] for e in after[:2]] == [e["hash"] for e in before]
    assert second.get()["generation"] == 3  # numbering continues
    out = hotcfg_cli(second, "rollback", "--to", "2")
    assert "content of generation 2" in out
    second.all_workers_answer("two")


def a_then_b(start_service, tmp_path, **options):
    """Service A on its file, changed once; then service B on A's file. They
    differ by an override (``who``)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_service(tmp_path / "a", env_extra={"HOTCFG_SET__WHO": "a"}, **options)
    a.write_atomic("value: two\n")
    both_answer(a, "two", "a")
    b = start_service(
        tmp_path / "b",
        env_extra={"HOTCFG_SOURCE": str(a.config), "HOTCFG_SET__WHO": "b"},
        **options,
    )
    both_answer(b, "two", "b")
    return a, b


def each_lists_and_rolls_back_to_its_own(a, b):
    a.write_atomic("value: three\n")
    both_answer(a, "three", "a")
    both_answer(b, "three", "b")
    assert generations(a) == [1, 2, 3]
    assert generations(b) == [1, 2]
    assert "content of generation 1" in own(b, "rollback", "--to", "1")
    both_answer(b, "two", "b")
    both_answer(a, "three", "a")


def test_two_services_on_one_source_keep_their_own_history(start_service, tmp_path):
    """Two services on one host, default HOTCFG_NAME and directory, one
    source, differing by an override (and by their address, as two services
    on one host do): each lists its own generations and rolls back to its
    own content."""
    a, b = a_then_b(start_service, tmp_path)
    assert generations(b) == [1]
    each_lists_and_rolls_back_to_its_own(a, b)
    assert "keeps its own history" not in a.log.read_text() + b.log.read_text()


def test_two_identical_masters_get_their_own_files_and_a_warning(
    start_service, tmp_path
):
    """Alike in all hotcfg can see (name, source, proc_name, one address
    shared with SO_REUSEPORT), but the second runs with an override: it gets
    files of its own, and a WARNING names the setting to give."""
    a, b = a_then_b(
        start_service, tmp_path, extra_args=["--reuse-port"], port=free_port()
    )
    log = b.log.read_text()
    assert f"another running master (pid {a.proc.pid})" in log
    assert "Give each service its own HOTCFG_NAME (or Gunicorn proc_name)" in log
    histories = {p.name for p in a.segments.glob("*.history")}
    first = min(histories, key=len)
    assert histories == {first, first.replace(".history", "-2.history")}
    each_lists_and_rolls_back_to_its_own(a, b)


REFUSED = textwrap.dedent(
    """
    import os, sys
    from hotcfg import cli
    from hotcfg.cli import control, parser  # the command's modules load lazily
    # Everything imported while the interpreter's own files are readable
    # (under /root they are not, for nobody): argparse loads gettext and
    # locale only when it first builds a parser.
    parser.build_parser().format_help()
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
    assert out.returncode == 77
    assert "Permission denied" in out.stderr
    assert hotcfg_cli(service, "history")  # its own uid is served
