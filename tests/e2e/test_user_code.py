"""User code in the master (validators, model checks) and in the workers
(change callbacks) can fail in any way, ``SystemExit`` and hangs included;
publishing goes on, under real Gunicorn."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, free_port

pytestmark = pytest.mark.e2e

MISBEHAVING = {"HOTCFG_VALIDATOR": "tests.apps.validators:misbehaving"}


def rejected_with(svc, *words):
    def check():
        error = svc.status()[0]["last_error"] or ""
        return all(word in error for word in words)

    return check


@pytest.mark.parametrize(
    ("value", "raised"),
    [("exit", "SystemExit"), ("interrupt", "Interrupted"), ("ctrl-c", "Keyboard")],
)
def test_a_validator_that_exits_is_a_rejection_and_later_changes_publish(
    start_service, tmp_path, value, raised
):
    svc = start_service(tmp_path, env_extra=MISBEHAVING)
    svc.all_workers_answer("one")
    svc.write_atomic(f"value: {value}\n")
    svc.wait_until(
        rejected_with(svc, raised, "validator tests.apps.validators:misbehaving"),
        f"the {raised} recorded as a rejection",
    )
    svc.all_workers_answer("one")
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")
    assert svc.status()[0]["last_error"] is None


def test_a_model_whose_check_exits_is_a_rejection(start_service, tmp_path):
    svc = start_service(
        tmp_path, env_extra={"HOTCFG_MODEL": "tests.apps.models:Exiting"}
    )
    svc.all_workers_answer("one")
    svc.write_atomic("value: exit\n")
    svc.wait_until(rejected_with(svc, "SystemExit"), "the model's exit rejected")
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")


def test_a_hanging_validator_is_reported_and_the_newest_content_goes_next(
    start_service, tmp_path
):
    gate = tmp_path / "release"
    validated = tmp_path / "validated.log"
    svc = start_service(
        tmp_path,
        env_extra={
            **MISBEHAVING,
            "HANG_GATE": str(gate),
            "VALIDATED_LOG": str(validated),
            "HOTCFG_VALIDATOR_WARN_MS": "300",
        },
    )
    svc.all_workers_answer("one")
    svc.write_atomic("value: hang\n")
    svc.wait_until(
        lambda: svc.log.read_text().count("validating ") >= 2,
        "the monitor's repeated 'validating since' line",
    )
    log = svc.log.read_text()
    assert "in validator tests.apps.validators:misbehaving" in log
    validating = svc.status()[0]["validating"]
    assert validating["validator"] == "validator tests.apps.validators:misbehaving"
    assert validating["since"].endswith("+00:00")  # ISO 8601, UTC
    # Saves while it hangs: the last one is what gets validated next.
    svc.write_atomic("value: meanwhile\n")
    svc.write_atomic("value: newest\n")
    # The arbiter does not wait for the validator: HUP, then a new worker.
    os.kill(svc.proc.pid, signal.SIGHUP)
    os.kill(svc.proc.pid, signal.SIGTTIN)
    svc.wait_until(lambda: len(svc.worker_pids()) == svc.workers + 1, "TTIN served")
    svc.all_workers_answer("one")
    gate.touch()
    svc.all_workers_answer("newest")
    after_hang = validated.read_text().split("hang\n", 1)[1].split()
    assert after_hang[0] == "newest", validated.read_text()
    assert "meanwhile" not in after_hang
    assert svc.status()[0]["validating"] is None
    assert "returned after" in svc.log.read_text()


def test_a_change_callback_that_exits_leaves_the_worker_serving(
    start_service, tmp_path
):
    svc = start_service(tmp_path, app="tests.apps.user_code_app:app")
    first = svc.all_workers_answer("one")
    svc.write_atomic("value: exit\n")
    svc.all_workers_answer("exit")
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")
    assert svc.worker_pids() == set(first)  # no worker died of it
    assert "change callback" in svc.log.read_text()


def test_a_relative_source_survives_a_preloaded_app_that_changes_directory(
    start_service, tmp_path
):
    svc = start_service(
        tmp_path,
        env_extra={"HOTCFG_SOURCE": "conf/config.yaml"},
        extra_args=("--preload",),
        app="tests.apps.chdir_app:app",
        cwd=tmp_path,
    )
    svc.all_workers_answer("one")
    assert f"hotcfg: source {tmp_path / 'conf' / 'config.yaml'} (yaml)" in (
        svc.log.read_text()
    )
    svc.write_atomic("value: two\n")
    svc.all_workers_answer("two")


def test_ctrl_c_stops_a_master_whose_first_validation_hangs(tmp_path):
    """KeyboardInterrupt in the main thread is the one thing let through: a
    master stuck in its first validation still stops on Ctrl-C, showing the
    validator in ``status`` meanwhile and leaving no segment behind."""
    config = tmp_path / "config.yaml"
    config.write_text("value: hang\n")
    segments = Path(os.environ["HOTCFG_SEGMENT_DIR"])
    log = tmp_path / "gunicorn.log"
    env = dict(
        os.environ,
        **MISBEHAVING,
        HOTCFG_SOURCE=str(config),
        HANG_GATE=str(tmp_path / "never"),
        HOTCFG_VALIDATOR_WARN_MS="200",
        PYTHONPATH=str(ROOT),
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"),
             "-w", "2", "-b", f"127.0.0.1:{free_port()}", "--no-control-socket",
             "tests.apps.probe_app:app"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while "validating " not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            status = subprocess.run(
                [sys.executable, "-m", "hotcfg", "status", "--dir", str(segments)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert "in validator tests.apps.validators:misbehaving" in status.stdout
            os.kill(proc.pid, signal.SIGINT)
            assert proc.wait(10) != 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # Nothing but the lock that keeps another live master off its files.
    assert [p.suffix for p in segments.iterdir()] in ([], [".lock"])
