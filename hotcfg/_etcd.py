"""Master side: one etcd v3 key, or every key under a prefix, as a source,
over etcd's JSON gateway.

The client is Python's ``http.client`` speaking to the gateway every etcd
3.4+ member serves under ``/v3/`` (docs/design.md, "etcd: the client"):
``POST /v3/kv/range`` reads the key and the store's revision, ``POST
/v3/watch`` streams newline-separated JSON watch responses; keys and values
are base64. No gRPC, no new dependency.

Following the key:

* read it (``range``), then watch from that revision + 1;
* apply each watch response whole (its last event is the key's state at its
  revision), then hand the change to the publisher's thread;
* on a broken stream, an error (``etcdserver: no leader``: every request
  asks for a leader, so a member cut off from quorum ends the watch) or no
  word for longer than the progress interval: reconnect to the next
  endpoint after a jittered exponential backoff, from the last applied
  revision + 1;
* on compaction or a cancelled watch: read the key again in full and watch
  anew, and log it.

A deleted key, an empty value or an unreachable cluster is a rejection with
its reason (:meth:`EtcdSource.load` raises ``SourceError``): the publisher
keeps the last good generation and ``hotcfg status`` shows why.

A prefix (a source key ending in ``/``, :class:`EtcdPrefixSource`) is
followed the same way over the range ``[prefix, range_end(prefix))``: it
holds every key under the prefix and its value, applies each watch response
(every event of a revision: a txn putting several keys) before the change
is handed on, and ``load()`` parses each value and nests the keys
(``_keytree``). No keys under the prefix is a rejection like a deleted key.

Auth and TLS (``_etcd_access``): every connection is made with the
source's :class:`EtcdAccess` (``https`` with its context when TLS), and
every request and the watch carry its auth token; a token etcd refuses
(expired, or the member restarted) is replaced by authenticating again,
once per request. A refusal (a wrong password, no permission, an untrusted
certificate) is :class:`AccessDenied`: not "unreachable", since the store
answered, so a master does not start from its cache on it.

Fork story: connections live only inside one call (a read) or in the
watcher thread (the stream); the source holds no client object. A worker
forked meanwhile inherits the socket's descriptor, which would keep the
master's stream (and etcd's watch) open after the master closed it: every
socket is listed in ``_forksafe``, whose child closes its copies at once,
and the threads do not exist in a child. A TLS socket is handled the same way: its
``detach()`` is the plain socket's, and CPython sends a TLS close_notify
only from ``unwrap()``, so the child neither closes nor shuts down the
master's TLS session; it also forgets the token (``_etcd_access``).

Must not be imported by the worker's request path; ``_sources`` imports it
only when the source is ``etcd://``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _forksafe, _keytree, _loaders, _validate
from ._errors import ConfigError, SourceError, UnreachableError
from ._etcd_access import EtcdAccess
from ._follower import Follower
from ._settings import EtcdTarget, Settings, parse_etcd
from ._sources import load_document

_logger = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 3.0

# "hasleader" is etcd's require-leader gRPC metadata; the gateway passes
# Grpc-Metadata-* headers on as metadata. A watch made with it is ended with
# "etcdserver: no leader" when the member loses its leader.
_HEADERS = {"Content-Type": "application/json", "Grpc-Metadata-hasleader": "true"}


class Unavailable(Exception):
    """This endpoint cannot be followed now (connection, timeout, etcd error)."""


class AccessDenied(Unavailable):
    """This endpoint answered, and refused us (authentication, permission)
    or we refused it (its certificate): no retry helps until a setting, a
    file or etcd's users change."""


class TokenRefused(Unavailable):
    """etcd refused the auth token sent (it expired, or the member
    restarted and forgot it); it is forgotten, and authenticating again may
    help."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _endpoint_text(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error_message(body: bytes) -> str:
    try:
        reply = json.loads(body)
        error = reply.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(reply.get("message") or message or "no reason given")
    except (ValueError, AttributeError):
        return "no reason given"


def _last_words(line: bytes) -> str:
    """Why a watch stream ended, from its last line, cut off by the end.

    The gateway ends a stream with etcd's error (``etcdserver: no leader``)
    and no newline after it; anything else there is no message.
    """
    try:
        message = json.loads(line)
    except ValueError:
        return "the watch stream ended"
    if isinstance(message, dict) and "error" in message:
        return _error_message(line)
    return "the watch stream ended"


def _error_code(body: bytes) -> int | None:
    """The gRPC status code of an etcd error answer, if it has one."""
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


# gRPC codes etcd answers with: UNAUTHENTICATED (an invalid or expired
# token), PERMISSION_DENIED (the user's roles do not cover the key).
_UNAUTHENTICATED = 16
_PERMISSION_DENIED = 7

# etcd 3.4.10+ answers this in plain text to a client certificate with a
# CommonName on its JSON gateway while auth is on (CVE-2020-15136).
_GATEWAY_CN = b"CommonName of client sending a request against gateway"

# etcd refuses a token made before any change to its users or roles with
# this (a JWT carries the revision for good): authenticate again, as etcd's
# own client does.
_STALE_AUTH = "revision of auth store is old"


def _refusal(
    where: str, status: int, body: bytes, token: str | None, access: EtcdAccess
) -> Unavailable:
    """The exception for a non-200 answer to a request sent with ``token``
    (forgotten here if etcd refused it)."""
    code = _error_code(body)
    message = _error_message(body)
    if token is not None and (
        status == 401 or code == _UNAUTHENTICATED or _STALE_AUTH in message
    ):
        access.forget(token)
        return TokenRefused(f"{where}: {message}")
    if status == 403 or code == _PERMISSION_DENIED or status == 401:
        if token is not None:  # granted since, maybe: the next try asks anew
            access.forget(token)
        return AccessDenied(f"{where}: {message}")
    if "user name is empty" in message:
        return AccessDenied(
            f"{where}: {message} (auth is enabled: set HOTCFG_ETCD_USER)"
        )
    if body.startswith(_GATEWAY_CN):
        return AccessDenied(
            f"{where}: etcd's JSON gateway refuses a client certificate with a "
            "CommonName while auth is enabled (CVE-2020-15136): use one without"
        )
    return Unavailable(f"{where}: {message}")


def _tls_failure(where: str, exc: ssl.SSLError, access: EtcdAccess) -> Unavailable:
    """A TLS failure. A certificate refused either way (a verification
    failure here, an alert from the member) is a denial; the rest (a member
    going away mid-session) is unavailability. Under TLS 1.3 a member
    refusing a missing client certificate may close before its alert is
    read: both name ``HOTCFG_ETCD_CERT_FILE`` then."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return AccessDenied(
            f"{where}: TLS: certificate verify failed: {exc.verify_message}"
        )
    reason = exc.reason or exc.strerror or type(exc).__name__
    alert = "ALERT" in reason
    if (alert or isinstance(exc, ssl.SSLEOFError)) and not access.client_cert:
        reason += " (no client certificate given: see HOTCFG_ETCD_CERT_FILE)"
    if alert:
        return AccessDenied(f"{where}: TLS: refused by the member: {reason}")
    return Unavailable(f"{where}: TLS: {reason}")


def _connect(
    endpoint: tuple[str, int], timeout_s: float, *, access: EtcdAccess
) -> http.client.HTTPConnection:
    """A connection to ``endpoint``, over TLS when ``access`` says so (the
    handshake done: a refused certificate raises ``ssl.SSLError`` here).

    Raises:
        OSError: no connection.
    """
    sock = _open_socket(endpoint, timeout_s, access)
    # A peer that vanished without a FIN (a host down, a cut network) is
    # found by keepalive probes within about 20 s, whatever the stream does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 2)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    conn = http.client.HTTPConnection(*endpoint, timeout=timeout_s)
    conn.sock = sock
    return conn


def _open_socket(
    endpoint: tuple[str, int], timeout_s: float, access: EtcdAccess
) -> socket.socket:
    """A connected socket (TLS: handshaken), listed in ``_forksafe`` from
    before it connects: a worker forked while it connects or handshakes (Gunicorn
    spawns its workers just as the watcher connects) must close its copy
    too, or it would hold the master's stream open."""
    host, port = endpoint
    last: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = _forksafe.new_socket(family, kind, proto)
        try:
            sock.settimeout(timeout_s)
            sock.connect(address)
            if access.context is None:
                return sock
            return _handshake(sock, host, access.context)
        except BaseException as exc:
            with _forksafe.HANDOVER:  # nothing if wrapped: the TLS socket's now
                _forksafe.close(sock)
            if not isinstance(exc, OSError) or isinstance(exc, ssl.SSLError):
                raise
            last = exc
    raise last or OSError(f"no address for {host}")


def _handshake(
    sock: socket.socket, host: str, context: ssl.SSLContext
) -> ssl.SSLSocket:
    # wrap_socket() moves the descriptor to a new object: fork() must not
    # fall between that and registering it (a few bytecodes, no I/O).
    with _forksafe.HANDOVER:
        tls = context.wrap_socket(
            sock, server_hostname=host, do_handshake_on_connect=False
        )
        _forksafe.OPEN.add(tls)
    try:
        tls.do_handshake()
    except BaseException:
        with _forksafe.HANDOVER:
            _forksafe.close(tls)
        raise
    return tls


def _close(conn: http.client.HTTPConnection) -> None:
    """Close the connection's descriptor now, and forget it in one step a
    fork cannot fall into. ``conn.close()`` alone leaves the descriptor open
    while a response's file object still refers to the socket, unlisted:
    a worker forked then would hold the master's connection."""
    sock = conn.sock
    if sock is not None:
        with _forksafe.HANDOVER:
            _forksafe.close(sock)
    conn.close()


def _headers(token: str | None) -> dict[str, str]:
    return _HEADERS if token is None else {**_HEADERS, "Authorization": token}


def _post(
    endpoint: tuple[str, int],
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    access: EtcdAccess,
    timeout_s: float,
    cap: int,
) -> tuple[int, bytes]:
    """One POST on a connection of its own: the status, and at most
    ``cap + 1`` bytes of the answer.

    Raises:
        Unavailable: no answer (:class:`AccessDenied`: a certificate refused).
    """
    where = _endpoint_text(endpoint)
    try:
        conn = _connect(endpoint, timeout_s, access=access)
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            return response.status, response.read(cap + 1)
        finally:
            _close(conn)
    except ssl.SSLError as exc:
        raise _tls_failure(where, exc, access) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise Unavailable(f"{where}: {_cut_off(exc, access)}") from exc


def _cut_off(exc: BaseException, access: EtcdAccess) -> str:
    """Why a connection failed, noting the likely cause when a TLS member
    drops it right after the handshake: under TLS 1.3 the client's
    handshake ends before the member checks the client certificate, so a
    refused (or missing) one shows as a broken pipe or a closed connection
    on the first request."""
    text = str(exc) or type(exc).__name__
    dropped = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)
    if (
        access.context is not None
        and not access.client_cert
        and isinstance(exc, dropped)
    ):
        text += (
            " (TLS: the member may require a client certificate: see "
            "HOTCFG_ETCD_CERT_FILE)"
        )
    return text


def _authenticate(
    endpoint: tuple[str, int], access: EtcdAccess, timeout_s: float
) -> str | None:
    """A new token from ``endpoint`` (``/v3/auth/authenticate``), with the
    password file read now; None when the cluster has auth disabled.

    Raises:
        AccessDenied: a wrong user or password, or no password to send.
        Unavailable: no answer.
    """
    where = _endpoint_text(endpoint)
    try:
        password = access.password()
    except ConfigError as exc:
        raise AccessDenied(f"{where}: {exc}") from None
    body = json.dumps({"name": access.user, "password": password}).encode()
    status, raw = _post(
        endpoint,
        "/v3/auth/authenticate",
        body,
        _HEADERS,
        access=access,
        timeout_s=timeout_s,
        cap=65536,
    )
    if status == 200:
        try:
            token = json.loads(raw).get("token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise Unavailable(f"{where}: not an etcd v3 answer")
        return token
    message = _error_message(raw)
    if "authentication is not enabled" in message:
        return None  # anyone may read: go on without a token
    if "authentication failed" in message:
        raise AccessDenied(
            f"{where}: authentication failed for user {access.user!r} ({message})"
        )
    raise _refusal(where, status, raw, None, access)


def _token_for(
    endpoint: tuple[str, int], access: EtcdAccess, timeout_s: float
) -> str | None:
    """The token to send: the one held, or a new one (None: no user, or
    auth disabled on the cluster)."""
    if access.user is None:
        return None
    token = access.token
    if token is None:
        token = _authenticate(endpoint, access, timeout_s)
        if token is not None:
            access.remember(token)
    return token


def _call(
    endpoint: tuple[str, int],
    path: str,
    request: dict[str, Any],
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
) -> dict[str, Any]:
    """One unary gateway call (``/v3/kv/range``, ``/v3/kv/txn``): its JSON
    answer. Sent with the access's token; a token etcd refuses is replaced
    once by authenticating again.

    Raises:
        Unavailable: no answer, an error from etcd, or not an etcd answer
            (:class:`AccessDenied`: refused).
    """
    where = _endpoint_text(endpoint)
    cap = max_bytes * 4 // 3 + 65536  # base64 and the JSON around it
    body = json.dumps(request).encode()
    for last_try in (False, True):
        token = _token_for(endpoint, access, timeout_s)
        status, raw = _post(
            endpoint,
            path,
            body,
            _headers(token),
            access=access,
            timeout_s=timeout_s,
            cap=cap,
        )
        if status == 200:
            break
        refusal = _refusal(where, status, raw, token, access)
        if last_try or not isinstance(refusal, TokenRefused):
            raise refusal
    if len(raw) > cap:
        raise Unavailable(f"{where}: value over the limit")
    try:
        reply = json.loads(raw)
    except ValueError as exc:
        raise Unavailable(f"{where}: not an etcd v3 answer") from exc
    if not isinstance(reply, dict):
        raise Unavailable(f"{where}: not an etcd v3 answer")
    return reply


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as read: its value (None: no such key), the revision it was
    last written at (0: no such key) and the store's revision."""

    value: bytes | None
    mod_revision: int
    revision: int


def read_key_from(
    endpoint: tuple[str, int],
    key: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
) -> KeyState:
    """Read ``key`` from ``endpoint`` (``/v3/kv/range``).

    Raises:
        Unavailable: no answer, or an error from etcd.
    """
    reply = _call(
        endpoint,
        "/v3/kv/range",
        {"key": _b64(key.encode())},
        access=access,
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )
    try:
        revision = int(reply["header"]["revision"])
        kvs = reply.get("kvs") or []
        if not kvs:
            return KeyState(None, 0, revision)
        value = base64.b64decode(kvs[0].get("value", ""))
        return KeyState(value, int(kvs[0]["mod_revision"]), revision)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unavailable(f"{_endpoint_text(endpoint)}: not an etcd v3 answer") from exc


@dataclass(frozen=True, slots=True)
class PrefixState:
    """The keys under a prefix as read (whole key -> value), the store's
    revision, and the newest key's ``mod_revision`` (0: no keys)."""

    values: dict[str, bytes]
    revision: int
    changed_at: int = 0


def _key_text(encoded: str) -> str:
    """A base64 key from the gateway as text; bytes that are not UTF-8 stay
    as surrogates, for ``_keytree`` to refuse by name."""
    return base64.b64decode(encoded).decode("utf-8", "surrogateescape")


def read_prefix_from(
    endpoint: tuple[str, int],
    prefix: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
) -> PrefixState:
    """Read every key under ``prefix`` from ``endpoint`` (``/v3/kv/range``
    with etcd's prefix ``range_end``).

    Raises:
        Unavailable: no answer, or an error from etcd.
    """
    start = prefix.encode()
    reply = _call(
        endpoint,
        "/v3/kv/range",
        {"key": _b64(start), "range_end": _b64(_keytree.range_end(start))},
        access=access,
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )
    try:
        revision = int(reply["header"]["revision"])
        kvs = reply.get("kvs") or []
        values = {
            _key_text(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in kvs
        }
        changed_at = max((int(kv["mod_revision"]) for kv in kvs), default=0)
        return PrefixState(values, revision, changed_at)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unavailable(f"{_endpoint_text(endpoint)}: not an etcd v3 answer") from exc


def _summary(failures: list[Unavailable]) -> tuple[str, bool]:
    """Every endpoint's failure in one reason, and whether one of them
    refused (the store answered: not "unreachable")."""
    denied = any(isinstance(failure, AccessDenied) for failure in failures)
    return "; ".join(str(failure) for failure in failures), denied


def _problem_text(reason: str, *, denied: bool) -> str:
    return f"etcd {reason}" if denied else f"etcd unreachable: {reason}"


def _first_answer(target: EtcdTarget, call: Callable[[tuple[str, int]], T]) -> T:
    """``call`` on each endpoint in turn until one answers.

    Raises:
        UnreachableError: none answered (every endpoint's reason).
        SourceError: none answered, and one refused (auth, TLS).
    """
    failures = []
    for endpoint in target.endpoints:
        try:
            return call(endpoint)
        except Unavailable as exc:
            failures.append(exc)
    reason, denied = _summary(failures)
    if denied:
        raise SourceError(_problem_text(reason, denied=True), source=target.key)
    raise UnreachableError(_problem_text(reason, denied=False), source=target.key)


def read_key(
    target: EtcdTarget, *, access: EtcdAccess, timeout_s: float, max_bytes: int
) -> KeyState:
    """Read the target's key from the first endpoint that answers.

    Raises:
        UnreachableError: no endpoint answered.
        SourceError: no endpoint answered, and one refused (auth, TLS).
    """
    return _first_answer(
        target,
        lambda endpoint: read_key_from(
            endpoint,
            target.key,
            access=access,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
        ),
    )


@dataclass(frozen=True, slots=True)
class PutResult:
    """A compare-and-swap's outcome: ``written``, and the key's revision now
    (the new one, or the one that was there instead of the expected one);
    ``already``: not written because the key holds these very bytes."""

    written: bool
    mod_revision: int
    already: bool = False


def put_if(
    target: EtcdTarget,
    value: bytes,
    *,
    access: EtcdAccess,
    mod_revision: int,
    timeout_s: float,
) -> PutResult:
    """Write ``value`` at the key only if it was last written at
    ``mod_revision`` (0: only if the key does not exist), in one
    ``/v3/kv/txn``, tried on the next endpoint when one fails. A key that
    already holds ``value`` is no conflict (``already``): nothing anyone
    wrote is lost, and a member that timed out after the write landed makes
    the retry find its own write there, never a second write.

    Raises:
        UnreachableError: no endpoint answered.
        SourceError: no endpoint answered, and one refused (auth, TLS).
    """
    key = _b64(target.key.encode())
    request = {
        "compare": [
            {
                "target": "MOD",
                "result": "EQUAL",
                "key": key,
                "mod_revision": str(mod_revision),
            }
        ],
        "success": [{"request_put": {"key": key, "value": _b64(value)}}],
        "failure": [{"request_range": {"key": key}}],
    }

    def txn(endpoint: tuple[str, int]) -> PutResult:
        reply = _call(
            endpoint,
            "/v3/kv/txn",
            request,
            access=access,
            timeout_s=timeout_s,
            max_bytes=len(value) * 2 + 65536,
        )
        try:
            if reply.get("succeeded"):
                return PutResult(True, int(reply["header"]["revision"]))
            responses = reply.get("responses") or [{}]
            kvs = responses[0].get("response_range", {}).get("kvs") or []
            if not kvs:
                return PutResult(False, 0)
            there = base64.b64decode(kvs[0].get("value", ""))
            return PutResult(False, int(kvs[0]["mod_revision"]), there == value)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            where = _endpoint_text(endpoint)
            raise Unavailable(f"{where}: not an etcd v3 answer") from exc

    return _first_answer(target, txn)


class EtcdSource:
    """One etcd key holding a YAML, JSON or TOML document.

    Args:
        target: the endpoints and the key.
        fmt: the document's format.
        max_bytes: largest value accepted.
        timeout_s: connecting, and each request but the watch stream.
        progress_s: the cluster's progress-notification interval; a watch
            stream silent for longer (plus ``timeout_s``) is reconnected.
        access: TLS, the user and its token (default: plain, anonymous).
    """

    def __init__(
        self,
        target: EtcdTarget,
        fmt: str,
        max_bytes: int,
        *,
        timeout_s: float = 5.0,
        progress_s: float = 600.0,
        access: EtcdAccess | None = None,
    ) -> None:
        self.target = target
        self.access = access if access is not None else EtcdAccess()
        self._fmt = fmt
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.progress_s = progress_s
        self._lock = threading.Lock()
        self._revision = 0  # last applied; 0: never read
        self._changed_at = 0  # the revision of the last change held
        self._value: bytes | None = None  # None: no such key
        self._deleted_at = 0
        self._problem: str | None = None  # why etcd cannot be followed now
        self._denied = False  # the problem is a refusal, not unreachability
        self._watching = False

    @classmethod
    def from_settings(cls, settings: Settings) -> EtcdSource:
        """The key or the prefix (:class:`EtcdPrefixSource`) ``settings``
        name, with its access checked now.

        Raises:
            ConfigError: an etcd auth or TLS setting is incomplete or its
                file unusable, naming the variable.
        """
        assert settings.source is not None
        assert settings.format is not None
        target = parse_etcd(settings.source)
        kind = EtcdPrefixSource if target.is_prefix else cls
        return kind(
            target,
            settings.format,
            settings.max_bytes,
            timeout_s=settings.etcd_timeout_ms / 1000.0,
            progress_s=settings.etcd_progress_ms / 1000.0,
            access=EtcdAccess.from_settings(settings),
        )

    @property
    def label(self) -> str:
        return self.location

    @property
    def location(self) -> str:
        hosts = ",".join(_endpoint_text(e) for e in self.target.endpoints)
        return f"etcd://{hosts}{self.target.key}"

    @property
    def fmt(self) -> str:
        return self._fmt

    @property
    def revision(self) -> int:
        """The etcd revision of the key's state held now (0: never read)."""
        return self._revision

    @property
    def changed_at(self) -> int:
        """The revision of the last change to what is held: the key's (or,
        for a prefix, the newest key's) ``mod_revision``, or a deletion's;
        progress notifications leave it (0: nothing held yet). The fleet
        record shows it, so a quiet store changes no record."""
        return self._changed_at

    @property
    def answer_bytes(self) -> int:
        """The most a read or one watch response may carry, before base64."""
        return self.max_bytes

    def watched(self) -> dict[str, str]:
        """The key (and range) a watch's ``create_request`` names."""
        return {"key": _b64(self.target.key.encode())}

    def load(self) -> dict[str, Any]:
        """The key's document: read now, or while watching the last applied.

        Raises:
            UnreachableError: no endpoint answers.
            SourceError: etcd refused access (or its certificate was
                refused), the key absent or deleted, the value empty or too
                large.
            ConfigError: the value does not parse.
        """
        if not self._watching:
            self.read()
        with self._lock:
            problem, value, deleted_at = self._problem, self._value, self._deleted_at
            denied = self._denied
        self._raise_problem(problem, denied=denied)
        key = self.target.key
        if value is None:
            if deleted_at:
                raise SourceError(
                    f"key {key} was deleted at revision {deleted_at}",
                    source=self.location,
                )
            raise SourceError(f"key {key} does not exist", source=self.location)
        if not value.strip():
            raise SourceError(f"key {key} holds an empty value", source=self.location)
        if len(value) > self.max_bytes:
            raise SourceError(
                f"value is {len(value)} bytes, over the {self.max_bytes}-byte limit",
                source=self.location,
            )
        return load_document(value, fmt=self._fmt, source=self.location)

    def _raise_problem(self, problem: str | None, *, denied: bool) -> None:
        """Why etcd cannot be followed now, raised: a refusal (the store
        answered: no cache fallback) or unreachability; nothing if none."""
        if problem is None:
            return
        if denied:
            raise SourceError(problem, source=self.location)
        raise UnreachableError(problem, source=self.location)

    def refresh(self) -> None:
        """Read the store now while watching (``Source.refresh``); the
        newer of this read and the watch's state stays (:meth:`read_from`,
        :meth:`apply`). A failure is raised, not recorded: the watch's own
        view of the store, and its problem, stay as they are.

        Raises:
            UnreachableError: no endpoint answers.
            SourceError: etcd refused access.
        """
        if not self._watching:
            return  # load() reads now
        try:
            _first_answer(self.target, self.read_from)
        except SourceError as exc:
            denied = not isinstance(exc, UnreachableError)
            self._raise_problem(exc.reason, denied=denied)

    def read(self) -> None:
        """Read the key from the first endpoint that answers, recording the
        failure of all of them as the source's problem."""
        failures = []
        for endpoint in self.target.endpoints:
            try:
                self.read_from(endpoint)
                return
            except Unavailable as exc:
                failures.append(exc)
        reason, denied = _summary(failures)
        self.fail(reason, denied=denied)

    def read_from(self, endpoint: tuple[str, int]) -> None:
        """Read the key's value and the store's revision from ``endpoint``.

        Raises:
            Unavailable: no answer, or an error from etcd.
        """
        state = read_key_from(
            endpoint,
            self.target.key,
            access=self.access,
            timeout_s=self.timeout_s,
            max_bytes=self.max_bytes,
        )
        with self._lock:
            if state.revision < self._revision:
                return  # the watch applied newer changes meanwhile
            self._read(state.revision, state.mod_revision)
            self._value = state.value
            self._deleted_at = 0

    def _read(self, revision: int, changed_at: int) -> None:
        """A full read succeeded (the caller holds the lock): its revisions,
        and no problem any more."""
        self._revision = revision
        self._changed_at = changed_at
        self._problem = None
        self._denied = False

    def fail(self, reason: str, *, denied: bool = False) -> None:
        """Record why etcd cannot be followed now; ``denied``: it refused
        us, or we refused its certificate."""
        with self._lock:
            self._problem = _problem_text(reason, denied=denied)
            self._denied = denied

    def recovered(self) -> bool:
        """Forget the problem; whether there was one."""
        with self._lock:
            had, self._problem = self._problem is not None, None
            self._denied = False
        return had

    def _unseen(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events after the revision held (the caller holds the lock): a
        read made meanwhile (:meth:`refresh`) holds the others already."""
        return [
            event
            for event in events
            if int(event.get("kv", {}).get("mod_revision", 0)) > self._revision
        ]

    def apply(self, result: dict[str, Any]) -> bool:
        """Apply one watch response whole; whether the key changed.

        Several events of one response (a watch catching up) leave the key
        as its last one says; a response with none is a progress
        notification: everything up to its revision has been sent.
        """
        events = result.get("events") or []
        with self._lock:
            if not events:
                revision = int(result.get("header", {}).get("revision", 0))
                self._revision = max(self._revision, revision)
                return False
            events = self._unseen(events)
            if not events:
                return False
            last = events[-1]
            kv = last.get("kv", {})
            self._revision = int(kv.get("mod_revision", self._revision))
            self._changed_at = self._revision
            if last.get("type") == "DELETE":
                self._value, self._deleted_at = None, self._revision
            else:
                self._value = base64.b64decode(kv.get("value", ""))
                self._deleted_at = 0
            return True

    def watch(self, on_change: Callable[[], object], settings: Settings) -> EtcdWatch:
        """Follow the key from the revision read last (or read it first)."""
        watching = EtcdWatch(self, on_change)
        self._watching = True
        watching.start()
        return watching


class EtcdPrefixSource(EtcdSource):
    """Every key under a prefix (``target.key`` ends in ``/``), each value one
    document, nested into one mapping: ``/app/config/db/timeout`` is
    ``{"db": {"timeout": ...}}`` (docs/design.md, "etcd: a prefix as a
    mapping").

    ``max_bytes`` caps the sum of the values.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The arguments of :class:`EtcdSource`."""
        super().__init__(*args, **kwargs)
        # Replaced whole, never changed in place: load() uses it unlocked.
        self._values: dict[str, bytes] = {}
        self._emptied_at = 0  # the revision that deleted the last key

    @property
    def answer_bytes(self) -> int:
        # Keys and etcd's fields around each value come on top of the
        # values' own bytes; the values' sum is checked against
        # max_bytes in load(), where the reason can be given.
        return 2 * self.max_bytes

    def watched(self) -> dict[str, str]:
        start = self.target.key.encode()
        return {"key": _b64(start), "range_end": _b64(_keytree.range_end(start))}

    def load(self) -> dict[str, Any]:
        """The keys under the prefix as one mapping: read now, or while
        watching the last applied state.

        Raises:
            SourceError: etcd unreachable, no keys under the prefix, a key
                with an empty value or without a place in the mapping, or
                the values together too large.
            ConfigError: a value does not parse.
        """
        if not self._watching:
            self.read()
        with self._lock:
            problem, values = self._problem, self._values
            emptied_at, denied = self._emptied_at, self._denied
        self._raise_problem(problem, denied=denied)
        prefix = self.target.key
        if not values:
            since = f" (the last was deleted at revision {emptied_at})"
            raise SourceError(
                f"no keys under {prefix}{since if emptied_at else ''}",
                source=self.location,
            )
        total = sum(len(value) for value in values.values())
        if total > self.max_bytes:
            raise SourceError(
                f"the values under {prefix} are {total} bytes together, over "
                f"the {self.max_bytes}-byte limit",
                source=self.location,
            )
        parsed: dict[str, Any] = {}
        for key, value in sorted(values.items()):
            where = self.location[: -len(prefix)] + key  # etcd://hosts/key
            if not value.strip():
                raise SourceError(f"key {key} holds an empty value", source=where)
            parsed[key] = _loaders.parse(value, fmt=self._fmt, source=where)
        data = _keytree.nest(parsed, prefix=prefix, source=self.location)
        return _validate.check_document(data, source=self.location)

    def read_from(self, endpoint: tuple[str, int]) -> None:
        """Read every key under the prefix and the store's revision from
        ``endpoint``; what was held before is replaced, not merged (a key
        deleted meanwhile is gone).

        Raises:
            Unavailable: no answer, or an error from etcd.
        """
        state = read_prefix_from(
            endpoint,
            self.target.key,
            access=self.access,
            timeout_s=self.timeout_s,
            max_bytes=self.answer_bytes,
        )
        with self._lock:
            if state.revision < self._revision:
                return  # the watch applied newer changes meanwhile
            self._read(state.revision, state.changed_at)
            self._values = state.values
            self._emptied_at = 0

    def apply(self, result: dict[str, Any]) -> bool:
        """Apply one watch response whole; whether a key changed.

        etcd never splits one revision's events across responses, so every
        key a txn wrote is applied here before the change is handed on: the
        publisher sees all of them or none.
        """
        events = result.get("events") or []
        with self._lock:
            if not events:
                revision = int(result.get("header", {}).get("revision", 0))
                self._revision = max(self._revision, revision)
                return False
            events = self._unseen(events)
            if not events:
                return False
            values = dict(self._values)
            for event in events:
                kv = event.get("kv", {})
                key = _key_text(kv.get("key", ""))
                if event.get("type") == "DELETE":
                    values.pop(key, None)
                else:
                    values[key] = base64.b64decode(kv.get("value", ""))
                self._revision = int(kv.get("mod_revision", self._revision))
            self._values = values
            self._changed_at = self._revision
            self._emptied_at = 0 if values else self._revision
            return True


class EtcdWatch(Follower):
    """Two threads (``_follower``): one follows etcd, one calls
    ``on_change`` with the newest state, so a slow publish never stalls the
    stream."""

    def __init__(self, source: EtcdSource, on_change: Callable[[], object]) -> None:
        super().__init__(source.location, on_change)
        self.source = source
        self._stream: http.client.HTTPConnection | None = None
        self._failures = 0  # in a row, since the last watch was created

    def start(self) -> None:
        self._start(self._follow, "hotcfg-etcd")
        _logger.info(
            "hotcfg: watching %s from revision %d",
            self.source.location,
            self.source.revision + 1,
        )

    def notice(self) -> None:
        with self._cond:
            self._pending = True
            self._cond.notify_all()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            stream, self._stream = self._stream, None
            self._cond.notify_all()
        # Read once: the watcher's own close may clear it meanwhile.
        sock = stream.sock if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes the watcher from its read
                sock.shutdown(socket.SHUT_RDWR)
        self._join(timeout_s)
        self.source._watching = False

    def _follow(self) -> None:
        source = self.source
        endpoints = source.target.endpoints
        index = 0
        reread = source.revision == 0
        reasons: list[str] = []  # of the failures in a row, one per endpoint
        denied = False  # one of them was a refusal (the store answered)
        while not self._stopping:
            endpoint = endpoints[index]
            try:
                if reread:
                    source.read_from(endpoint)
                    reread = False
                    _logger.info(
                        "hotcfg: read %s in full at revision %d",
                        source.location,
                        source.revision,
                    )
                    self._failures = 0
                    self.notice()
                self._watch(endpoint)
                reread = True  # compacted or cancelled: read in full at once
            except Unavailable as exc:
                if self._stopping:
                    return
                self._failures += 1
                failures = self._failures
                if failures == 1:
                    reasons.clear()
                    denied = False
                reasons.append(str(exc))
                denied = denied or isinstance(exc, AccessDenied)
                index = (index + 1) % len(endpoints)
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(failures, 16))
                delay *= random.uniform(0.5, 1.0)
                if failures == 1:
                    _logger.warning(
                        "hotcfg: lost the etcd watch of %s (%s); reconnecting to "
                        "%s from revision %d",
                        source.location,
                        exc,
                        _endpoint_text(endpoints[index]),
                        source.revision + 1,
                    )
                if failures == len(endpoints):
                    # Every endpoint failed in a row: say so in status, with
                    # each one's reason (the first is why the watch was left).
                    source.fail("; ".join(reasons), denied=denied)
                    self.notice()
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(delay)
            except Exception:
                _logger.exception("hotcfg: error following %s", source.location)
                with self._cond:
                    self._cond.wait(BACKOFF_MAX_S)

    def _watch(self, endpoint: tuple[str, int]) -> None:
        """Stream watch responses from ``endpoint`` until compaction or
        cancellation (returns) or a failure (raises :class:`Unavailable`).
        A token refused when the watch is created (it expired while the
        last stream was open, or the member restarted) is replaced by
        authenticating again, once."""
        try:
            self._watch_once(endpoint)
        except TokenRefused as exc:
            if self._stopping:
                return
            _logger.info(
                "hotcfg: etcd refused the auth token (%s); authenticating again", exc
            )
            self._watch_once(endpoint)

    def _watch_once(self, endpoint: tuple[str, int]) -> None:
        source = self.source
        access = source.access
        where = _endpoint_text(endpoint)
        request = {
            "create_request": {
                **source.watched(),
                "start_revision": source.revision + 1,
                "progress_notify": True,
            }
        }
        cap = source.answer_bytes * 4 // 3 + 65536
        silence_s = source.timeout_s  # until the stream has begun
        token = _token_for(endpoint, access, source.timeout_s)
        try:
            conn = _connect(endpoint, source.timeout_s, access=access)
        except ssl.SSLError as exc:
            raise _tls_failure(where, exc, access) from exc
        except OSError as exc:
            raise Unavailable(f"{where}: {exc.strerror or exc}") from exc
        with self._cond:
            if self._stopping:
                _close(conn)
                return
            self._stream = conn
        try:
            body = json.dumps(request).encode()
            conn.request("POST", "/v3/watch", body, _headers(token))
            response = conn.getresponse()
            if response.status != 200:
                answer = response.read(65536)
                raise _refusal(where, response.status, answer, token, access)
            assert conn.sock is not None
            # Longer than the progress interval: a silent stream is a dead one.
            silence_s = source.progress_s * 1.5 + source.timeout_s
            conn.sock.settimeout(silence_s)
            while True:
                line = response.readline(cap)
                if not line:
                    raise Unavailable(f"{where}: the watch stream ended")
                if not line.endswith(b"\n"):
                    if len(line) >= cap:
                        raise Unavailable(f"{where}: a watch response over the limit")
                    raise Unavailable(f"{where}: {_last_words(line)}")
                if self._handle(json.loads(line), where, token):
                    return
        except TimeoutError as exc:
            raise Unavailable(f"{where}: no word for {silence_s:.1f} s") from exc
        except ssl.SSLError as exc:
            raise _tls_failure(where, exc, access) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(f"{where}: {exc or type(exc).__name__}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Unavailable(f"{where}: not an etcd v3 watch response") from exc
        finally:
            with self._cond:
                if self._stream is conn:
                    self._stream = None
            _close(conn)

    def _handle(self, message: dict[str, Any], where: str, token: str | None) -> bool:
        """One watch response; True when the key must be read in full again.

        Raises:
            TokenRefused: the watch was not created: ``token`` expired.
            AccessDenied: the watch was not created: the user may not read.
        """
        source = self.source
        if "error" in message:
            raise Unavailable(
                f"{where}: {_error_message(json.dumps(message).encode())}"
            )
        result = message["result"]
        compacted = int(result.get("compact_revision") or 0)
        if compacted:
            _logger.warning(
                "hotcfg: etcd compacted %s past revision %d (to %d); reading it "
                "in full again",
                source.location,
                source.revision,
                compacted,
            )
            return True
        if result.get("canceled"):
            reason = str(result.get("cancel_reason") or "")
            # A refused watch is answered "created" and "canceled" at once.
            if token is not None and (
                "invalid auth token" in reason or _STALE_AUTH in reason
            ):
                source.access.forget(token)
                raise TokenRefused(f"{where}: {reason}")
            if "permission denied" in reason:
                if token is not None:  # granted since, maybe: ask anew
                    source.access.forget(token)
                raise AccessDenied(f"{where}: {reason}")
            _logger.warning(
                "hotcfg: etcd cancelled the watch of %s (%s); reading it in full again",
                source.location,
                result.get("cancel_reason") or "no reason given",
            )
            return True
        if result.get("created"):
            self._failures = 0
            if source.recovered():
                _logger.info(
                    "hotcfg: following %s again at %s from revision %d",
                    source.location,
                    where,
                    source.revision + 1,
                )
                self.notice()
            return False
        if source.apply(result):
            _logger.debug(
                "hotcfg: %s changed at revision %d", source.location, source.revision
            )
            self.notice()
        return False
