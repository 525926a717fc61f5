"""A real Gunicorn following a key on a real etcd that serves TLS and
requires a password; the password stays out of every output."""

import os
import signal
import subprocess
import sys

import pytest

from tests.etcd import running_etcd
from tests.etcd_certs import etcd_certificates

from .test_etcd import assert_only_the_master_holds_etcd

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"
USER = "app"
PASSWORD = "s3cret-Pa55-d41d8cd9"
WRONG = "wrong-password-x9"


@pytest.fixture
def secure_etcd(tmp_path):
    """A member over TLS with auth on for ``USER`` on ``/app/``, and its CA."""
    certs = etcd_certificates(tmp_path / "certs")
    with running_etcd(
        tmp_path / "etcd", server_cert=certs.server, ca_file=certs.ca_file
    ) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        yield etcd


def _env(etcd, password_file, **more):
    return {
        "HOTCFG_SOURCE": etcd.source(KEY),
        "HOTCFG_ETCD_PROGRESS_MS": "500",
        "HOTCFG_ETCD_USER": USER,
        "HOTCFG_ETCD_PASSWORD_FILE": str(password_file),
        "HOTCFG_ETCD_CA_FILE": etcd.ca_file,
        **more,
    }


def _password_file(directory, text):
    directory.mkdir(exist_ok=True)
    path = directory / "etcd-password"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _status_text(service):
    done = subprocess.run(
        [sys.executable, "-m", "hotcfg", "status", "--dir", str(service.segments)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def test_a_put_reaches_every_worker_over_tls_with_a_password(
    secure_etcd, start_service, tmp_path
):
    etcd = secure_etcd
    etcd.put(KEY, "value: one\n")
    password_file = _password_file(tmp_path / "secrets", PASSWORD)
    service = start_service(tmp_path, env_extra=_env(etcd, password_file))
    service.all_workers_answer("one")
    etcd.put(KEY, "value: two\n")
    service.all_workers_answer("two")

    # The master's TLS stream was open when the workers forked.
    assert_only_the_master_holds_etcd(service, etcd.client_port)
    assert PASSWORD not in service.log.read_text()
    assert PASSWORD not in _status_text(service)


def test_a_wrong_password_refuses_the_start_with_the_reason_never_the_password(
    secure_etcd, start_service, tmp_path
):
    etcd = secure_etcd
    etcd.put(KEY, "value: one\n")
    reason = f"etcd {etcd.endpoint}: authentication failed for user 'app'"
    password_file = _password_file(tmp_path / "secrets", WRONG)
    for name in ("refused", "empty"):
        (tmp_path / name).mkdir()

    refused = start_service(
        tmp_path / "refused", env_extra=_env(etcd, password_file), wait=False
    )
    refused.wait_until(lambda: refused.proc.poll() is not None, "Gunicorn to exit")
    assert refused.proc.returncode != 0
    log = refused.log.read_text()
    assert reason in log
    assert refused.worker_pids() == set()

    # Allowed to start empty, it serves nothing wrong, says why, and picks
    # up the rotated password at its next authentication.
    service = start_service(
        tmp_path / "empty",
        env_extra=_env(etcd, password_file, HOTCFG_START_EMPTY="true"),
    )
    service.all_workers_answer(None)
    status = _status_text(service)
    assert reason in status
    password_file.write_text(PASSWORD + "\n")
    service.all_workers_answer("one")

    for text in (log, status, service.log.read_text(), _status_text(service)):
        assert PASSWORD not in text
        assert WRONG not in text


def test_each_new_reason_etcd_fails_for_is_logged_once_and_shown_in_status(
    secure_etcd, start_service, tmp_path
):
    etcd = secure_etcd
    etcd.put(KEY, "value: one\n")
    password_file = _password_file(tmp_path / "secrets", PASSWORD)
    service = start_service(tmp_path, env_extra=_env(etcd, password_file), workers=3)
    service.all_workers_answer("one")

    etcd.stop()
    service.wait_until(
        lambda: "etcd unreachable" in _status_text(service), "the outage in status"
    )
    # etcd may replay the master's login from its log when it starts again,
    # and bring its token back to life: the master would then never log in
    # again. Held still while etcd starts, the master finds its token ended
    # by a password change (to the same password), as a token is in use
    # when a member loses its memory of it.
    os.kill(service.proc.pid, signal.SIGSTOP)
    try:
        password_file.write_text(WRONG + "\n")
        logins_before = _failed_logins(etcd)
        etcd.start()
        etcd.ctl("user", "passwd", USER, "--interactive=false", stdin=PASSWORD + "\n")
    finally:
        os.kill(service.proc.pid, signal.SIGCONT)
    denied = f"etcd {etcd.endpoint}: authentication failed for user 'app'"
    service.wait_until(
        lambda: denied in _status_text(service), "the new reason in status"
    )
    assert "etcd unreachable" not in _status_text(service)
    # etcd refuses the master's login again and again; the master said so once.
    service.wait_until(
        lambda: _failed_logins(etcd) >= logins_before + 3, "three refused logins"
    )
    said = [line for line in service.log.read_text().splitlines() if denied in line]
    assert len([line for line in said if "rejected" in line]) == 1, said
    # The fleet record's thread, with its own retries, says it once too.
    assert len(said) <= 2, said
    service.all_workers_answer("one")

    password_file.write_text(PASSWORD + "\n")
    etcd.put(KEY, "value: two\n")
    service.all_workers_answer("two")
    service.wait_until(lambda: denied not in _status_text(service), "cleared")
    for text in (service.log.read_text(), _status_text(service)):
        assert PASSWORD not in text
        assert WRONG not in text


def _failed_logins(etcd):
    """The logins etcd has refused, from its log."""
    return etcd.log_path.read_text().count("invalid password")
