"""etcd auth and TLS: the etcd source and ``hotcfg push`` against a real
etcd member serving TLS, requiring client certificates, with auth on."""

import gc
import logging
import os
import socket
import ssl

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hotcfg import cli
from hotcfg._errors import ConfigError, SourceError, UnreachableError
from hotcfg._settings import Settings
from hotcfg._sources.etcd.access import EtcdAccess
from hotcfg._sources.etcd.kv import read_key
from hotcfg._sources.select import source_for
from tests.etcd import PROGRESS_MS, running_etcd
from tests.etcd_certs import etcd_certificates
from tests.following import Followed
from tests.waiting import wait_for

KEY = "/app/config.yaml"
USER = "app"
PASSWORD = "s3cret-Pa55-d41d8cd9"


@pytest.fixture
def certs(tmp_path):
    return etcd_certificates(tmp_path / "certs")


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "etcd-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def _secure(tmp_path, certs, **options):
    """A member serving TLS with the trusted CA's server certificate, auth
    on for ``USER`` on ``/app/``."""
    return running_etcd(
        tmp_path / "etcd",
        server_cert=certs.server,
        ca_file=certs.ca_file,
        **options,
    )


def _settings(etcd, password_file, **more):
    return Settings.resolve(
        {},
        source=etcd.source(KEY),
        etcd_progress_ms=PROGRESS_MS,
        etcd_timeout_ms=2000,
        etcd_user=USER,
        etcd_password_file=str(password_file),
        **more,
    )


def _expired(etcd, token):
    """Whether etcd has dropped ``token`` (its log says so; a request made
    to find out would keep it alive, since each use renews a simple token)."""
    return f'"token":"{token}"' in etcd.log_path.read_text()


def test_a_key_is_read_and_watched_with_a_password_over_tls(
    tmp_path, certs, password_file, caplog
):
    caplog.set_level(logging.DEBUG, logger="hotcfg")
    with _secure(tmp_path, certs) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: one\n")
        settings = _settings(etcd, password_file, etcd_ca_file=certs.ca_file)
        followed = Followed(settings, name="auth")
        try:
            assert followed.value() == "one"
            etcd.put(KEY, "value: two\n")
            followed.wait_value("two")
            access = followed.source.access
            token = access.token
            assert token
            # Neither secret in the log, the segment, a repr or the location.
            segment = bytes(followed.segment.buffer)
            for secret in (PASSWORD, token):
                assert secret not in caplog.text
                assert secret.encode() not in segment
                assert secret not in repr(access)
                assert secret not in followed.source.location
            watcher = followed.publisher._watcher
        finally:
            followed.close()
        # Closing wakes the watcher from its read on the TLS stream.
        assert not any(thread.is_alive() for thread in watcher._threads)


def test_a_member_requiring_client_certificates_is_followed_with_one(
    tmp_path, certs, password_file, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg")
    with _secure(
        tmp_path,
        certs,
        client_cert=certs.client,
        client_cert_auth=True,
        progress_ms=None,  # etcd's own: a quiet watch is silent, and probed
    ) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: one\n")
        settings = _settings(
            etcd,
            password_file,
            etcd_ca_file=certs.ca_file,
            etcd_cert_file=certs.client.cert,
            etcd_key_file=certs.client.key,
        )
        # etcd's progress interval and the stream's read timeout: 10 minutes.
        quiet = settings.updated(etcd_progress_ms="600000")
        followed = Followed(quiet, name="auth")
        try:
            etcd.put(KEY, "value: two\n")
            followed.wait_value("two")
            # Quiet: the member is probed over TLS with the certificate, it
            # answers, and the watch is kept.
            watcher = followed.publisher._watcher
            wait_for(lambda: watcher.probes >= 2, "two probes answered")
            etcd.put(KEY, "value: three\n")
            followed.wait_value("three")
            assert "lost the etcd watch" not in caplog.text
            assert followed.error() == ""
        finally:
            followed.close()

        # Without a client certificate the member ends the session: with an
        # alert, or (TLS 1.3) closing before the alert is read.
        without = settings.updated(etcd_cert_file="", etcd_key_file="")
        assert without.etcd_cert_file is None
        with pytest.raises(SourceError, match=r"TLS: .*HOTCFG_ETCD_CERT_FILE"):
            source_for(without).load()
        # With one naming a CommonName, etcd's gateway refuses it while auth
        # is on (CVE-2020-15136), and the reason says so.
        with_cn = settings.updated(
            etcd_cert_file=certs.client_with_cn.cert,
            etcd_key_file=certs.client_with_cn.key,
        )
        with pytest.raises(SourceError, match="certificate with a CommonName"):
            source_for(with_cn).load()


def test_the_watch_outlives_its_token_and_authenticates_again(
    tmp_path, certs, password_file, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg")
    with _secure(
        tmp_path, certs, extra_args=("--auth-token=simple", "--auth-token-ttl=2")
    ) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: one\n")
        settings = _settings(etcd, password_file, etcd_ca_file=certs.ca_file)
        followed = Followed(settings, name="auth")
        try:
            access = followed.source.access
            first = access.token
            wait_for(lambda: _expired(etcd, first), "the first token expired")
            # The open stream does not need the token any more.
            etcd.put(KEY, "value: two\n")
            followed.wait_value("two")
            # A read with the expired token authenticates again, once.
            target = followed.source.target
            state = read_key(target, access=access, timeout_s=2, max_bytes=4096)
            assert state.value == b"value: two\n"
            second = access.token
            assert second not in (None, first)

            # A new watch, created with an expired token, too.
            wait_for(lambda: _expired(etcd, second), "the second token expired")
            stream = followed.publisher._watcher._stream
            stream.sock.shutdown(socket.SHUT_RDWR)  # the network cut it
            etcd.put(KEY, "value: three\n")
            followed.wait_value("three")
            assert access.token not in (None, first, second)
            assert "refused the auth token" in caplog.text
            assert "cancelled the watch" not in caplog.text
            assert followed.error() == ""
        finally:
            followed.close()


def test_a_wrong_password_refuses_the_start_and_a_fixed_file_is_read_again(
    tmp_path, certs, password_file, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg")
    with _secure(tmp_path, certs) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: cached\n")
        settings = _settings(etcd, password_file, etcd_ca_file=certs.ca_file)
        first = Followed(settings, name="auth", keep_history=True)  # writes the cache
        first.close()

        password_file.write_text("wrong-password-x9\n")
        # The store answered: not "unreachable", so no start from the cache.
        with pytest.raises(SourceError) as refused:
            Followed(settings, name="auth", keep_history=True)
        assert not isinstance(refused.value, UnreachableError)
        reason = (
            f"etcd {etcd.endpoint}: authentication failed for user 'app' "
            "(etcdserver: authentication failed, invalid user ID or password)"
        )
        assert reason in str(refused.value)

        followed = Followed(settings, name="auth", start_empty=True, keep_history=True)
        try:
            assert followed.value() is None
            assert reason in followed.error()
            # Rotated: the next authentication reads the file again.
            password_file.write_text(PASSWORD + "\n")
            followed.wait_value("cached")
            wait_for(lambda: followed.error() == "", "the reason cleared")
        finally:
            followed.close()
        for secret in (PASSWORD, "wrong-password-x9"):
            assert secret not in caplog.text
            assert secret not in str(refused.value)


def test_a_server_certificate_from_another_ca_is_refused(
    tmp_path, certs, password_file
):
    with running_etcd(
        tmp_path / "etcd",
        server_cert=certs.untrusted_server,
        ca_file=certs.untrusted_ca_file,
    ) as etcd:
        etcd.put(KEY, "value: impostor\n")
        settings = _settings(etcd, password_file, etcd_ca_file=certs.ca_file)
        with pytest.raises(SourceError) as refused:
            source_for(settings).load()
        assert not isinstance(refused.value, UnreachableError)
        assert f"etcd {etcd.endpoint}: TLS: certificate verify failed: " in str(
            refused.value
        )

        followed = Followed(settings, name="auth", start_empty=True)
        try:
            etcd.put(KEY, "value: still-impostor\n")
            wait_for(lambda: "certificate verify failed" in followed.error(), "why")
            assert followed.value() is None
            assert followed.publisher.generation == 0
        finally:
            followed.close()


def test_a_forked_child_closes_the_tls_stream_without_ending_it(
    tmp_path, certs, password_file
):
    with _secure(tmp_path, certs) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: one\n")
        followed = Followed(
            _settings(etcd, password_file, etcd_ca_file=certs.ca_file), name="auth"
        )
        try:
            watcher = followed.publisher._watcher
            wait_for(lambda: watcher._stream is not None, "the stream open")
            stream = watcher._stream
            assert isinstance(stream.sock, ssl.SSLSocket)
            fd = stream.sock.fileno()
            access = followed.source.access
            assert access.token
            pid = os.fork()
            if pid == 0:  # the child, as a Gunicorn worker would be
                code = 0
                try:
                    os.fstat(fd)
                    code = 1  # the child still holds the master's stream
                except OSError:
                    pass
                if access.token is not None:
                    code |= 2
                del stream
                gc.collect()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            # The master's TLS session is the same one, and still follows.
            etcd.put(KEY, "value: after-fork\n")
            followed.wait_value("after-fork")
            assert watcher._stream is stream
        finally:
            followed.close()


def test_incomplete_or_unusable_settings_are_refused_naming_the_variable(
    tmp_path, certs, password_file, caplog
):
    def refused(**values):
        settings = Settings.resolve({}, source="etcd://127.0.0.1:1/k.yaml", **values)
        with pytest.raises(ConfigError) as error:
            EtcdAccess.from_settings(settings)
        return str(error.value)

    assert refused(etcd_user=USER).startswith("HOTCFG_ETCD_PASSWORD_FILE: ")
    assert refused(etcd_password_file=password_file).startswith("HOTCFG_ETCD_USER: ")
    assert refused(etcd_cert_file=certs.client.cert).startswith(
        "HOTCFG_ETCD_KEY_FILE: "
    )
    assert refused(etcd_key_file=certs.client.key).startswith("HOTCFG_ETCD_CERT_FILE: ")
    missing = str(tmp_path / "missing")
    assert refused(etcd_ca_file=missing).startswith("HOTCFG_ETCD_CA_FILE: ")
    assert refused(etcd_user=USER, etcd_password_file=missing).startswith(
        "HOTCFG_ETCD_PASSWORD_FILE: "
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "is empty" in refused(etcd_user=USER, etcd_password_file=empty)
    assert refused(etcd_ca_file=password_file).startswith("HOTCFG_ETCD_CA_FILE: ")

    caplog.set_level(logging.WARNING, logger="hotcfg")
    password_file.chmod(0o644)
    settings = Settings.resolve(
        {},
        source="etcd://127.0.0.1:1/k.yaml",
        etcd_user=USER,
        etcd_password_file=password_file,
    )
    access = EtcdAccess.from_settings(settings)
    assert access.context is None
    assert "HOTCFG_ETCD_PASSWORD_FILE" in caplog.text
    assert "readable by other users" in caplog.text
    assert PASSWORD not in caplog.text


def test_push_with_a_password_over_tls_and_with_a_wrong_one(
    tmp_path, certs, password_file, monkeypatch, capsys
):
    with _secure(tmp_path, certs) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: one\n")
        monkeypatch.setenv("HOTCFG_ETCD_USER", USER)
        monkeypatch.setenv("HOTCFG_ETCD_PASSWORD_FILE", str(password_file))
        monkeypatch.setenv("HOTCFG_ETCD_CA_FILE", certs.ca_file)
        new = tmp_path / "new.yaml"
        new.write_text("value: pushed\n")

        assert cli.main(["push", str(new), etcd.source(KEY)]) == 0
        pushed = capsys.readouterr()
        assert f"revision {etcd.revision()}" in pushed.out
        # The user may not read /hotcfg/fleet/: pushed as before the
        # masters said what they read, with a note.
        assert "cannot read the fleet records" in pushed.err
        assert "permission denied" in pushed.err
        assert etcd.ctl("get", "--print-value-only", KEY) == "value: pushed\n\n"

        password_file.write_text("wrong-password-x9\n")
        new.write_text("value: refused\n")
        assert cli.main(["push", str(new), etcd.source(KEY)]) == 77
        out = capsys.readouterr()
        reason = f"etcd {etcd.endpoint}: authentication failed for user 'app'"
        assert f"hotcfg: {etcd.source(KEY)}: {reason}" in out.err
        for secret in (PASSWORD, "wrong-password-x9"):
            assert secret not in out.out + out.err
            assert secret not in pushed.out + pushed.err
        assert etcd.ctl("get", "--print-value-only", KEY) == "value: pushed\n\n"


def test_a_prefix_refused_access_is_a_refusal_not_unreachable(
    tmp_path, certs, password_file
):
    """As for one key: a wrong password on a prefix (alone, or as a layer)
    must not send the master to its cache."""
    with _secure(tmp_path, certs) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put("/app/conf/value", "one")
        password_file.write_text("wrong-password-x9\n")
        base = tmp_path / "base.yaml"
        base.write_text("other: 1\n")
        for source in (
            etcd.source("/app/conf/"),
            f"{base} | {etcd.source('/app/conf/')}",
        ):
            settings = _settings(
                etcd, password_file, etcd_ca_file=certs.ca_file
            ).updated(source=source)
            with pytest.raises(SourceError) as refused:
                source_for(settings, environ={}).load()
            assert not isinstance(refused.value, UnreachableError), source
            assert "authentication failed for user 'app'" in str(refused.value)
            assert "wrong-password-x9" not in str(refused.value)


def test_a_token_older_than_a_change_of_users_is_replaced(
    tmp_path, certs, password_file
):
    """Any change to etcd's users or roles makes older tokens stale
    ("revision of auth store is old"): the next request authenticates again
    instead of failing until a restart."""
    # JWT tokens carry the auth revision; simple tokens take the current one.
    private, public = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    jwt = f"--auth-token=jwt,pub-key={public},priv-key={private},sign-method=RS256"
    with _secure(tmp_path, certs, extra_args=[jwt]) as etcd:
        etcd.enable_auth(USER, PASSWORD, "/app/")
        etcd.put(KEY, "value: one\n")
        settings = _settings(etcd, password_file, etcd_ca_file=certs.ca_file)
        access = EtcdAccess.from_settings(settings)
        target = source_for(settings).target
        assert read_key(target, access=access, timeout_s=2, max_bytes=4096).value
        etcd.ctl("user", "add", "someone-else:pw-x1", "--interactive=false")
        etcd.put(KEY, "value: two\n")
        state = read_key(target, access=access, timeout_s=2, max_bytes=4096)
        assert state.value == b"value: two\n"
