"""Real Gunicorn masters with several workers on 127.0.0.1, real files."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import ROOT, WORKERS, free_port

pytestmark = pytest.mark.e2e


def test_atomic_and_in_place_changes_reach_every_worker(service):
    service.all_workers_answer("one")
    service.write_atomic("value: two\n")
    service.all_workers_answer("two")
    service.write_in_place("value: three\n")
    service.all_workers_answer("three")


def test_kubernetes_data_symlink_swap(start_service, tmp_path):
    conf = tmp_path / "k8s"
    conf.mkdir()
    (conf / "..v1").mkdir()
    (conf / "..v1" / "config.yaml").write_text("value: k1\n")
    os.symlink("..v1", conf / "..data")
    os.symlink("..data/config.yaml", conf / "config.yaml")
    svc = start_service(
        tmp_path, env_extra={"HOTCFG_SOURCE": str(conf / "config.yaml")}
    )
    svc.all_workers_answer("k1")
    (conf / "..v2").mkdir()
    (conf / "..v2" / "config.yaml").write_text("value: k2\n")
    os.symlink("..v2", conf / "..data_tmp")
    os.replace(conf / "..data_tmp", conf / "..data")
    svc.all_workers_answer("k2")


def test_bad_inputs_keep_last_good_and_recover(service, tmp_path):
    service.write_atomic("value: good\n")
    service.all_workers_answer("good")
    generation = service.get()["generation"]
    for bad, reason in [
        ("value: [\n", "invalid YAML"),
        ("", "empty"),
        ("- a list\n", "top level"),
    ]:
        service.write_atomic(bad)
        service.wait_until(
            lambda r=reason: r in (service.status()[0]["last_error"] or ""), reason
        )
        for _ in range(8):
            answer = service.get()
            assert (answer["value"], answer["generation"]) == ("good", generation)
    service.config.unlink()
    service.wait_until(
        lambda: "not found" in (service.status()[0]["last_error"] or ""),
        "deletion noticed",
    )
    assert service.get()["value"] == "good"
    service.write_atomic("value: back\n")
    service.all_workers_answer("back")
    log = service.log.read_text()
    assert "invalid YAML" in log
    assert "keeping generation" in log


def test_schema_violation_rejected(start_service, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"value": {"type": "string"}}})
    )
    svc = start_service(tmp_path, env_extra={"HOTCFG_SCHEMA": str(schema)})
    svc.all_workers_answer("one")
    svc.write_atomic("value: 5\n")
    svc.wait_until(lambda: "schema" in (svc.status()[0]["last_error"] or ""), "schema")
    assert svc.get()["value"] == "one"
    assert "violates schema rule 'type'" in svc.log.read_text()


def test_one_generation_per_request(service, tmp_path):
    marker = tmp_path / "go"
    result = {}
    t = threading.Thread(
        target=lambda: result.update(service.get(f"/twice?wait={marker}"))
    )
    t.start()
    first_read = tmp_path / "go.read"
    service.wait_until(first_read.exists, "the request's first read")
    service.write_atomic("value: newer\n")
    service.wait_until(lambda: service.get()["value"] == "newer", "publish seen")
    marker.touch()
    t.join(20)
    assert result["first_generation"] == result["second_generation"]
    assert result["first"] == result["second"] == "one"


def test_lost_signal_still_switches(start_service, tmp_path):
    svc = start_service(tmp_path, env_extra={"HOTCFG_SIGNAL": "none"})
    svc.all_workers_answer("one")
    svc.write_atomic("value: unsignalled\n")
    svc.all_workers_answer("unsignalled")


def test_respawned_worker_starts_current(service):
    for i in range(3):
        service.write_atomic(f"value: v{i}\n")
        service.all_workers_answer(f"v{i}")
    victim = min(service.worker_pids())
    os.kill(victim, signal.SIGKILL)
    service.wait_until(
        lambda: (
            victim not in service.worker_pids()
            and len(service.worker_pids()) == WORKERS
        ),
        "respawn",
    )
    service.all_workers_answer("v2")
    os.kill(service.proc.pid, signal.SIGTTIN)
    service.wait_until(lambda: len(service.worker_pids()) == WORKERS + 1, "TTIN")
    service.all_workers_answer("v2")


def test_hup_keeps_working(service):
    service.write_atomic("value: before-hup\n")
    service.all_workers_answer("before-hup")
    generation = service.get()["generation"]
    old = service.worker_pids()
    os.kill(service.proc.pid, signal.SIGHUP)
    service.wait_until(
        lambda: (
            not (service.worker_pids() & old) and len(service.worker_pids()) == WORKERS
        ),
        "HUP",
    )
    assert service.get()["generation"] >= generation
    service.write_atomic("value: after-hup\n")
    service.all_workers_answer("after-hup")


@pytest.mark.parametrize("group", [False, True], ids=["master", "group"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_stop_signals_leave_no_segment(service, sig, group):
    """TERM, INT (Ctrl-C) and QUIT stop the service, sent to the master alone
    or to the whole process group as a terminal's Ctrl-C does."""
    service.write_atomic("value: two\n")
    service.all_workers_answer("two")
    workers = service.worker_pids()
    assert list(service.segments.glob("*.seg"))
    (os.killpg if group else os.kill)(service.proc.pid, sig)
    assert service.proc.wait(15) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    # Nothing but the history and its lock file, kept for the next master.
    left = sorted(p.name for p in service.segments.iterdir())
    assert len(left) == 2, left
    assert re.fullmatch(r"hotcfg-[0-9a-f]{8}\.history", left[0]), left
    assert left[1] == left[0].replace(".history", ".lock"), left


def test_kill9_then_restart_does_not_accumulate(start_service, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_service(tmp_path / "a")
    first.all_workers_answer("one")
    first.stop(signal.SIGKILL)
    segs = Path(os.environ["HOTCFG_SEGMENT_DIR"])
    assert len(list(segs.glob("*.seg"))) == 1  # the dead master's
    second = start_service(tmp_path / "b")
    second.all_workers_answer("one")
    assert len(list(segs.glob("*.seg"))) == 1  # the stale one was removed


def test_gthread_workers_switch(start_service, tmp_path):
    svc = start_service(
        tmp_path, extra_args=("--worker-class", "gthread", "--threads", "4")
    )
    svc.all_workers_answer("one")
    svc.write_atomic("value: threaded\n")
    svc.all_workers_answer("threaded")


def test_user_validator_rejects(start_service, tmp_path):
    svc = start_service(
        tmp_path, env_extra={"HOTCFG_VALIDATOR": "tests.apps.validators:no_forbidden"}
    )
    svc.all_workers_answer("one")
    svc.write_atomic("value: forbidden\n")
    svc.wait_until(
        lambda: "may not be" in (svc.status()[0]["last_error"] or ""), "rejection"
    )
    assert svc.get()["value"] == "one"
    svc.write_atomic("value: allowed\n")
    svc.all_workers_answer("allowed")


def test_editor_save_patterns(service):
    """vim/Emacs rename the old file away and write a new one; git deletes and
    recreates; both are seen because the directory is watched."""
    service.all_workers_answer("one")
    backup = service.dir / "config.yaml~"
    os.replace(service.config, backup)  # rename away
    service.config.write_text("value: vim\n")  # write a new file
    backup.unlink()
    service.all_workers_answer("vim")
    service.config.unlink()  # git checkout: delete, then create
    service.config.write_text("value: git\n")
    service.all_workers_answer("git")


def test_hostile_files_never_stall_the_master(service):
    """A FIFO or a device swapped in for the config, or an alias bomb, is
    refused in the master's watcher thread without blocking it: the workers
    keep the last good config, and a later good save still reaches them."""
    service.all_workers_answer("one")
    generation = service.get()["generation"]
    os.mkfifo(service.dir / "fifo")
    os.symlink("/dev/zero", service.dir / "zero")
    bomb = "l0: &l0 [" + ", ".join(["lol"] * 10) + "]\n"
    for i in range(1, 9):
        bomb += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    for install, reason in [
        (lambda: os.replace(service.dir / "fifo", service.config), "regular file"),
        (lambda: service.write_atomic(bomb), "alias bomb"),
        (lambda: os.replace(service.dir / "zero", service.config), "regular file"),
    ]:
        install()
        service.wait_until(
            lambda r=reason: r in (service.status()[0]["last_error"] or ""), reason
        )
        for _ in range(8):
            answer = service.get()
            assert (answer["value"], answer["generation"]) == ("one", generation)
    service.write_atomic("value: after\n")
    service.all_workers_answer("after")


def inotify_instances(pid):
    """How many inotify instances process ``pid`` holds open."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(
        os.readlink(fd) == "anon_inode:inotify"
        for fd in fds.iterdir()
        if fd.is_symlink()
    )


def test_poll_mode_master_uses_no_inotify(start_service, tmp_path):
    svc = start_service(
        tmp_path,
        env_extra={"HOTCFG_WATCH": "poll", "HOTCFG_POLL_INTERVAL_MS": "200"},
    )
    svc.all_workers_answer("one")
    assert inotify_instances(svc.proc.pid) == 0
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")
    svc.write_in_place("value: three\n")
    svc.all_workers_answer("three")


def test_config_directory_deleted_and_recreated(start_service, tmp_path):
    svc = start_service(tmp_path, env_extra={"HOTCFG_POLL_INTERVAL_MS": "200"})
    svc.all_workers_answer("one")
    assert inotify_instances(svc.proc.pid) >= 1
    for entry in svc.dir.iterdir():  # rm -rf conf
        entry.unlink()
    svc.dir.rmdir()
    svc.wait_until(
        lambda: "not found" in (svc.status()[0]["last_error"] or ""), "rejection"
    )
    svc.all_workers_answer("one")  # the last good configuration stays
    svc.dir.mkdir()
    svc.config.write_text("value: back\n")
    svc.all_workers_answer("back")
    svc.write_in_place("value: edited\n")
    svc.all_workers_answer("edited")


def _nice_of(pid, tid=None):
    stat = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_worker_nice_applies_to_every_worker_thread_not_the_master(
    start_service, tmp_path, worker
):
    svc = start_service(
        tmp_path,
        env_extra={"HOTCFG_WORKER_NICE": "7"},
        extra_args=("-k", worker, "--threads", "3"),
    )
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")  # gthread has started its request threads
    master = svc.proc.pid
    ours = os.getpriority(os.PRIO_PROCESS, 0)  # what the master inherited
    assert all(
        _nice_of(master, int(tid)) == ours for tid in os.listdir(f"/proc/{master}/task")
    )
    for pid in svc.worker_pids():
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        assert len(tids) > (1 if worker == "gthread" else 0)
        assert {_nice_of(pid, tid) for tid in tids} == {7}


def test_worker_nice_out_of_range_stops_the_master_naming_it(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"),
         "-b", f"127.0.0.1:{free_port()}", "--no-control-socket",
         "tests.apps.probe_app:app"],
        env=dict(os.environ, HOTCFG_SOURCE=str(config), HOTCFG_WORKER_NICE="30",
                 PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "HOTCFG_WORKER_NICE" in out.stdout + out.stderr


GUNICORN_LINE = r"^\[[^\]]+\] \[{pid}\] \[{level}\] hotcfg: {text}"


def _lines(text, pid, level, message):
    pattern = GUNICORN_LINE.format(pid=pid, level=level, text=message)
    return re.findall(pattern, text, flags=re.MULTILINE)


def test_hotcfg_logs_in_gunicorns_format_once(service):
    service.write_atomic("value: [unclosed\n")
    service.wait_until(lambda: service.status()[0]["last_error"], "rejection")
    service.write_atomic("value: two\n")
    service.all_workers_answer("two")
    log = service.log.read_text()
    master = service.proc.pid
    assert len(_lines(log, master, "ERROR", r"rejected .*invalid YAML")) == 1
    assert len(_lines(log, master, "INFO", r"published generation \d+")) >= 2
    assert log.count("hotcfg: rejected") == 1  # nothing else printed it


def test_hotcfg_logs_follow_error_logfile_and_log_level(start_service, tmp_path):
    errors = tmp_path / "errors.log"
    svc = start_service(
        tmp_path,
        extra_args=("--error-logfile", str(errors), "--log-level", "warning"),
    )
    svc.write_atomic("value: [unclosed\n")
    svc.wait_until(lambda: svc.status()[0]["last_error"], "rejection")
    svc.wait_until(lambda: "hotcfg: rejected" in errors.read_text(), "logged")
    text = errors.read_text()
    assert len(_lines(text, svc.proc.pid, "ERROR", r"rejected .*invalid YAML")) == 1
    assert "hotcfg: published" not in text  # INFO is below --log-level warning
    assert "hotcfg" not in svc.log.read_text()  # stdout/stderr got nothing


def _large_config(marker):
    """YAML over the size where big top-level sections are decoded lazily."""
    lines = ["value: small", "big:", f"  marker: {marker}", "  filler:"]
    lines += [f"    key{i:05d}: {'x' * 40}" for i in range(7000)]
    return "\n".join(lines) + "\n"


def test_workers_serve_a_lazily_decoded_section_after_a_change(start_service, tmp_path):
    svc = start_service(tmp_path, config=_large_config("one"))
    svc.all_workers_answer("one", path="/?key=big.marker")
    svc.write_atomic(_large_config("two"))
    svc.all_workers_answer("two", path="/?key=big.marker")
    answer = svc.get("/?key=big.filler.key06999")
    assert answer["value"] == "x" * 40
    assert answer["generation"] == svc.status()[0]["generation"]
    assert svc.get()["value"] == "small"
