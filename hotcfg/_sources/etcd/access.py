"""Master side: how hotcfg may reach etcd: TLS, the user, the auth token.

One :class:`EtcdAccess` per etcd client (the etcd source, ``hotcfg push``),
built from the settings once, at startup, where a half-given pair is
refused naming the variable that is missing (docs/design.md, "etcd: auth
and TLS"). It holds:

* the ``ssl.SSLContext`` (None: plain HTTP), made once, used for every
  endpoint: TLS as soon as a CA bundle (``HOTCFG_ETCD_CA_FILE``) or a
  client certificate (``HOTCFG_ETCD_CERT_FILE`` and ``HOTCFG_ETCD_KEY_FILE``)
  is given, the system's CAs when only the certificate is;
* the user and the *path* of the password file: the password is read at
  each authentication, so a rotated file is used at the next one without a
  restart, and it is kept nowhere;
* the current auth token, under a lock; ``client`` authenticates, sends
  it with every request and the watch, and forgets it when etcd refuses it.

The password and the token appear in no message, log line or repr. Fork
story: a forked child (a Gunicorn worker) forgets every token at once and
gets a new lock (the watcher thread may hold the old one); workers never
speak to etcd.

Only the etcd client and its users (this package, the fleet record,
``cli``) import this module; never the worker's request path.
"""

from __future__ import annotations

import os
import ssl
import threading
import weakref

from ..._errors import ConfigError, SourceError
from ..._settings import Settings
from ..files import read_capped, warn_if_others_read

PASSWORD_MAX_BYTES = 4096

_USER = "HOTCFG_ETCD_USER"
_PASSWORD_FILE = "HOTCFG_ETCD_PASSWORD_FILE"
_CA_FILE = "HOTCFG_ETCD_CA_FILE"
_CERT_FILE = "HOTCFG_ETCD_CERT_FILE"
_KEY_FILE = "HOTCFG_ETCD_KEY_FILE"

# Every access alive in this process, whose tokens a forked child forgets.
_ACCESSES: weakref.WeakSet[EtcdAccess] = weakref.WeakSet()


class EtcdAccess:
    """TLS, credentials and the auth token for one etcd client.

    Args:
        context: TLS for every endpoint (None: plain HTTP).
        user: the etcd user (None: no authentication).
        password_file: the file holding ``user``'s password.
        client_cert: whether ``context`` presents a client certificate
            (only to explain a member's refusal).
    """

    def __init__(
        self,
        *,
        context: ssl.SSLContext | None = None,
        user: str | None = None,
        password_file: str | None = None,
        client_cert: bool = False,
    ) -> None:
        if (user is None) != (password_file is None):
            raise ValueError("a user and a password file go together")
        self.context = context
        self.user = user
        self.password_file = password_file
        self.client_cert = client_cert
        self._lock = threading.Lock()
        self._token: str | None = None
        _ACCESSES.add(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> EtcdAccess:
        """The access ``HOTCFG_ETCD_*`` describe, checked now: the files
        exist and can be used, and the password file can be read.

        Raises:
            ConfigError: a setting missing its pair, or a file that cannot
                be read or used, naming the variable.
        """
        user, password_file = settings.etcd_user, settings.etcd_password_file
        cert, key = settings.etcd_cert_file, settings.etcd_key_file
        for given, missing, why in (
            (user and not password_file, _PASSWORD_FILE, f"{_USER} needs it"),
            (password_file and not user, _USER, f"{_PASSWORD_FILE} is set"),
            (cert and not key, _KEY_FILE, f"{_CERT_FILE} needs its private key"),
            (key and not cert, _CERT_FILE, f"{_KEY_FILE} is set"),
        ):
            if given:
                raise ConfigError(f"not set, but {why}", source=missing)
        context = None
        if settings.etcd_ca_file or cert:
            context = _tls_context(settings.etcd_ca_file, cert, key)
        access = cls(
            context=context,
            user=user,
            password_file=password_file,
            client_cert=cert is not None,
        )
        if password_file is not None:
            access.password()  # refused now, not at the first connection
            warn_if_others_read(_PASSWORD_FILE, password_file)
        if key is not None:
            warn_if_others_read(_KEY_FILE, key)
        return access

    def __repr__(self) -> str:
        return f"EtcdAccess(tls={self.context is not None}, user={self.user!r})"

    @property
    def scheme(self) -> str:
        return "https" if self.context is not None else "http"

    def password(self) -> str:
        """The password file's content now, without its trailing newline.

        Raises:
            ConfigError: no user, or the file is missing, unreadable, too
                large, not UTF-8 or empty (naming the variable, never the
                content).
        """
        path = self.password_file
        if path is None:
            raise ConfigError("not set", source=_PASSWORD_FILE)
        try:
            raw = read_capped(path, max_bytes=PASSWORD_MAX_BYTES)
            text = raw.decode("utf-8").rstrip("\r\n")
        except SourceError as exc:
            raise ConfigError(f"{path}: {exc.reason}", source=_PASSWORD_FILE) from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"{path}: not UTF-8 text", source=_PASSWORD_FILE
            ) from None
        if not text:
            raise ConfigError(f"{path} is empty", source=_PASSWORD_FILE)
        return text

    @property
    def token(self) -> str | None:
        """The auth token held now (None: none yet, or no user)."""
        with self._lock:
            return self._token

    def remember(self, token: str) -> None:
        with self._lock:
            self._token = token

    def forget(self, token: str) -> None:
        """Drop ``token`` if it is still the one held: another thread may
        have authenticated again meanwhile."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _forget_in_child(self) -> None:
        self._lock = threading.Lock()  # the watcher may have held the old one
        self._token = None


def _tls_context(
    ca_file: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext:
    """A verifying client context: ``ca_file`` (else the system's CAs) and
    the client certificate, if any.

    Raises:
        ConfigError: a file cannot be read or used, naming its variable.
    """
    if ca_file is not None:
        _check_readable(_CA_FILE, ca_file)
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{ca_file}: not a PEM CA bundle ({exc.reason or exc})", source=_CA_FILE
        ) from None
    if cert is not None and key is not None:
        _check_readable(_CERT_FILE, cert)
        _check_readable(_KEY_FILE, key)

        def encrypted() -> str:
            # Without a callback OpenSSL would prompt on the terminal.
            raise ConfigError(
                f"{key} is encrypted: give an unencrypted key (mode 0600)",
                source=_KEY_FILE,
            )

        try:
            context.load_cert_chain(cert, key, password=encrypted)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"cannot use {cert} with {key} ({exc.reason or exc})",
                source=f"{_CERT_FILE}, {_KEY_FILE}",
            ) from None
    return context


def _check_readable(variable: str, path: str) -> None:
    try:
        read_capped(path, max_bytes=1 << 20)
    except SourceError as exc:
        raise ConfigError(f"{path}: {exc.reason}", source=variable) from None


def _after_fork_in_child() -> None:
    for access in list(_ACCESSES):
        access._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
