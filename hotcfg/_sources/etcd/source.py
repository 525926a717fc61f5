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
  asks for a leader, so a member cut off from quorum ends the watch), no
  word for longer than the progress interval, or a member that does not
  answer a probe (``_Probe``: ``GET /version`` once the stream has been
  silent for :data:`PROBE_AFTER_S`, on a connection of its own, within
  :data:`PROBE_DEADLINE_S`; a member frozen or behind a black hole keeps
  its TCP connection open and silent): reconnect to the next endpoint
  after a jittered exponential backoff, from the last applied revision + 1;
* on compaction, a cancelled watch or a response too large to apply (many
  events at once): read the key again in full and watch anew, and log it.

A deleted key, an empty value, a value over ``HOTCFG_MAX_BYTES`` (held as
its size only: ``_etcd_answer``) or an unreachable cluster is a rejection
with its reason (:meth:`EtcdSource.load` raises ``SourceError``): the
publisher keeps the last good generation and ``hotcfg status`` shows why.
Nothing a key holds makes the source ask for the same revision again: what
etcd sends is either applied (and then rejected or published) or is no
etcd answer at all, a fault of the endpoint, retried ever more slowly.
Every request is done within ``HOTCFG_ETCD_TIMEOUT_MS`` as a whole.

A prefix (a source key ending in ``/``, :class:`EtcdPrefixSource`) is
followed the same way over the range ``[prefix, range_end(prefix))``: it
holds every key under the prefix and its value, applies each watch response
(every event of a revision: a txn putting several keys) before the change
is handed on, and ``load()`` parses each value and nests the keys
(``keytree``). No keys under the prefix is a rejection like a deleted key.

Auth and TLS (``_etcd_access``): every connection is made with the
source's :class:`EtcdAccess` (``https`` with its context when TLS), and
every request and the watch carry its auth token; a token etcd refuses
(expired, or the member restarted) is replaced by authenticating again,
once per request. A refusal (a wrong password, no permission, an untrusted
certificate) is :class:`AccessDenied`: not "unreachable", since the store
answered, so a master does not start from its cache on it.

Fork story: connections live only inside one call (a read) or in the
watcher and probing threads (the stream, the probe's); the source holds no
client object. A worker
forked meanwhile inherits the socket's descriptor, which would keep the
master's stream (and etcd's watch) open after the master closed it: every
socket is listed in ``forksafe``, whose child closes its copies at once,
and the threads do not exist in a child. A TLS socket is handled the same way: its
``detach()`` is the plain socket's, and CPython sends a TLS close_notify
only from ``unwrap()``, so the child neither closes nor shuts down the
master's TLS session; it also forgets the token (``_etcd_access``).

Must not be imported by the worker's request path; ``_sources.select``
imports it only when the source is ``etcd://``.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..._content import loaders, validate
from ..._errors import ConfigError, SourceError, UnreachableError
from ..._settings import Settings
from .. import forksafe
from ..base import OneDocument
from ..files import load_document
from ..follower import Follower
from ..locations import EtcdTarget, parse_etcd
from . import keytree
from .access import EtcdAccess
from .answer import (
    MARK,
    Elided,
    Field,
    Garbled,
    LineReader,
    Overflow,
    base64_length,
    decoded,
    header_of,
)

_logger = logging.getLogger(__name__)
T = TypeVar("T")

_CHUNK = 65536  # read at most this much at a time

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 3.0
#: A watch stream silent this long has its member probed (``_Probe``).
PROBE_AFTER_S = 2.0
#: The longest a probe may take (``HOTCFG_ETCD_TIMEOUT_MS`` when shorter).
PROBE_DEADLINE_S = 2.0
#: A stream that fails this soon after its watch was created, with nothing
#: else said, did not recover the watch.
SHAKY_S = 1.0

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
    """A connected socket (TLS: handshaken), listed in ``forksafe`` from
    before it connects: a worker forked while it connects or handshakes (Gunicorn
    spawns its workers just as the watcher connects) must close its copy
    too, or it would hold the master's stream open."""
    host, port = endpoint
    last: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = forksafe.new_socket(family, kind, proto)
        try:
            sock.settimeout(timeout_s)
            sock.connect(address)
            if access.context is None:
                return sock
            return _handshake(sock, host, access.context)
        except BaseException as exc:
            with forksafe.HANDOVER:  # nothing if wrapped: the TLS socket's now
                forksafe.close(sock)
            if not isinstance(exc, OSError) or isinstance(exc, ssl.SSLError):
                raise
            last = exc
    raise last or OSError(f"no address for {host}")


def _handshake(
    sock: socket.socket, host: str, context: ssl.SSLContext
) -> ssl.SSLSocket:
    # wrap_socket() moves the descriptor to a new object: fork() must not
    # fall between that and registering it (a few bytecodes, no I/O).
    with forksafe.HANDOVER:
        tls = context.wrap_socket(
            sock, server_hostname=host, do_handshake_on_connect=False
        )
        forksafe.OPEN.add(tls)
    try:
        tls.do_handshake()
    except BaseException:
        with forksafe.HANDOVER:
            forksafe.close(tls)
        raise
    return tls


def _close(conn: http.client.HTTPConnection) -> None:
    """Close the connection's descriptor now, and forget it in one step a
    fork cannot fall into. ``conn.close()`` alone leaves the descriptor open
    while a response's file object still refers to the socket, unlisted:
    a worker forked then would hold the master's connection."""
    sock = conn.sock
    if sock is not None:
        with forksafe.HANDOVER:
            forksafe.close(sock)
    conn.close()


def _headers(token: str | None) -> dict[str, str]:
    return _HEADERS if token is None else {**_HEADERS, "Authorization": token}


def _within(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Give the connection's next operation what is left until
    ``deadline`` (monotonic): a request's timeout is for the whole of it,
    so a member that answers a byte at a time cannot hold it longer.

    Raises:
        TimeoutError: the deadline has passed.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    if conn.sock is not None:
        conn.sock.settimeout(left)


def _read_answer(
    response: http.client.HTTPResponse,
    conn: http.client.HTTPConnection,
    deadline: float,
    reader: LineReader,
) -> bytes | Overflow:
    """A unary answer's body through ``reader``: its text with long strings
    left out, or :class:`Overflow` when even that is over the budget."""
    kept: list[bytes] = []
    total = 0
    while True:
        _within(conn, deadline)
        chunk = response.read1(_CHUNK)
        parts = reader.feed(chunk) if chunk else [reader.end()]
        for part in parts:
            if isinstance(part, Overflow):
                return part
            if part is not None:  # JSON may span lines; none of etcd's does
                kept.append(part)
                total += len(part)
        if total > reader.budget:
            return Overflow(total, b"\n".join(kept)[: reader.budget])
        if not chunk:
            return b"\n".join(kept)


def _post(
    endpoint: tuple[str, int],
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    access: EtcdAccess,
    timeout_s: float,
    budget: int,
    string_limit: int = 0,
) -> tuple[int, bytes | Overflow]:
    """One POST on a connection of its own, done within ``timeout_s``: the
    status, and the answer with every string over ``string_limit``
    characters left out (default: the budget), or :class:`Overflow` when
    it is still over ``budget`` bytes.

    Raises:
        Unavailable: no answer (:class:`AccessDenied`: a certificate refused).
    """
    where = _endpoint_text(endpoint)
    deadline = time.monotonic() + timeout_s
    reader = LineReader(string_limit=string_limit or budget, budget=budget)
    try:
        conn = _connect(endpoint, timeout_s, access=access)
        try:
            _within(conn, deadline)
            conn.request("POST", path, body, headers)
            _within(conn, deadline)
            response = conn.getresponse()
            return response.status, _read_answer(response, conn, deadline, reader)
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
    status, answer = _post(
        endpoint,
        "/v3/auth/authenticate",
        body,
        _HEADERS,
        access=access,
        timeout_s=timeout_s,
        budget=65536,
    )
    raw = _text_of(answer)
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


def _text_of(answer: bytes | Overflow) -> bytes:
    """An answer's text; an overflowing one's head (an error's reason is
    never that long: it is then no etcd answer)."""
    return answer if isinstance(answer, bytes) else answer.head


class TooLarge(Unavailable):
    """An answer over its budget even with every long value left out (the
    keys under a prefix, many and long): its size, and the store's
    revision it was read at (0: none found in it)."""

    def __init__(self, message: str, *, size: int, revision: int) -> None:
        super().__init__(message)
        self.size = size
        self.revision = revision


def _string_limit(max_bytes: int) -> int:
    """The longest string kept in an answer read for values of up to
    ``max_bytes``: longer ones are left out (only their size is kept).
    Never below 4 KB, so no message of etcd's is ever left out."""
    return max(base64_length(max_bytes), 4096)


def _call(
    endpoint: tuple[str, int],
    path: str,
    request: dict[str, Any],
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
    value_bytes: int | None = None,
) -> dict[str, Any]:
    """One unary gateway call (``/v3/kv/range``, ``/v3/kv/txn``), done within
    ``timeout_s``: its JSON answer. Sent with the access's token; a token
    etcd refuses is replaced once by authenticating again.

    Args:
        max_bytes: the most the answer's keys and values may take, before
            base64.
        value_bytes: the largest value kept (default: ``max_bytes``); a
            longer one is in the answer as a marker that :func:`decoded`
            turns into :class:`Elided`, its size.

    Raises:
        TooLarge: an answer over ``max_bytes`` even with long values left out.
        Unavailable: no answer, an error from etcd, or not an etcd answer
            (:class:`AccessDenied`: refused).
    """
    where = _endpoint_text(endpoint)
    budget = max_bytes * 4 // 3 + 65536  # base64 and the JSON around it
    limit = _string_limit(max_bytes if value_bytes is None else value_bytes)
    body = json.dumps(request).encode()
    for last_try in (False, True):
        token = _token_for(endpoint, access, timeout_s)
        status, answer = _post(
            endpoint,
            path,
            body,
            _headers(token),
            access=access,
            timeout_s=timeout_s,
            budget=budget,
            string_limit=limit,
        )
        if status == 200:
            break
        refusal = _refusal(where, status, _text_of(answer), token, access)
        if last_try or not isinstance(refusal, TokenRefused):
            raise refusal
    if isinstance(answer, Overflow):
        header = header_of(answer.head) or {}
        raise TooLarge(
            f"{where}: an answer over {budget} bytes",
            size=answer.size,
            revision=_revision_in(header),
        )
    try:
        reply = json.loads(answer)
    except ValueError as exc:
        raise Unavailable(f"{where}: not an etcd v3 answer") from exc
    if not isinstance(reply, dict):
        raise Unavailable(f"{where}: not an etcd v3 answer")
    return reply


def _revision_in(header: dict[str, Any]) -> int:
    try:
        return int(header.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as read: its value (None: no such key; :class:`Elided`: one
    too large to hold, by its size), the revision it was last written at
    (0: no such key) and the store's revision."""

    value: Field | None
    mod_revision: int
    revision: int


def _not_etcd(endpoint: tuple[str, int]) -> Unavailable:
    return Unavailable(f"{_endpoint_text(endpoint)}: not an etcd v3 answer")


def read_key_from(
    endpoint: tuple[str, int],
    key: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
) -> KeyState:
    """Read ``key`` from ``endpoint`` (``/v3/kv/range``); a value over
    ``max_bytes`` is not held, only its size (:class:`Elided`).

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
        value = decoded(kvs[0].get("value", ""))
        return KeyState(value, int(kvs[0]["mod_revision"]), revision)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _not_etcd(endpoint) from exc


@dataclass(frozen=True, slots=True)
class PrefixState:
    """The keys under a prefix as read (whole key -> value, or
    :class:`Elided` for one too large to hold), the store's revision, and
    the newest key's ``mod_revision`` (0: no keys). ``too_large``: the
    answer's size when it was over its budget even so, and nothing is held."""

    values: dict[str, Field]
    revision: int
    changed_at: int = 0
    too_large: int = 0


def _key_text(encoded: object) -> str:
    """A base64 key from the gateway as text; bytes that are not UTF-8 stay
    as surrogates, for ``keytree`` to refuse by name. A key too long to
    hold, or not base64, is a name starting with :data:`MARK` (its size or
    none, and its digest: two never collide) for ``load()`` to refuse."""
    key = decoded(encoded)
    if isinstance(key, Elided):
        return f"{MARK}{key.size}/{key.digest}"
    if isinstance(key, Garbled):
        return f"{MARK}/{key.digest}"
    return key.decode("utf-8", "surrogateescape")


def _unheld(value: Field, max_bytes: int) -> str | None:
    """Why ``value`` cannot be published whatever it holds (over the
    limit, or not base64), or None."""
    if isinstance(value, Garbled):
        return "etcd sent it as no base64"
    size = value.size if isinstance(value, Elided) else len(value)
    if size > max_bytes:
        return f"{size} bytes, over the {max_bytes}-byte limit (HOTCFG_MAX_BYTES)"
    return None


def read_prefix_from(
    endpoint: tuple[str, int],
    prefix: str,
    *,
    access: EtcdAccess,
    timeout_s: float,
    max_bytes: int,
    value_bytes: int,
) -> PrefixState:
    """Read every key under ``prefix`` from ``endpoint`` (``/v3/kv/range``
    with etcd's prefix ``range_end``); a value over ``value_bytes`` is not
    held, only its size, and an answer over ``max_bytes`` even so holds
    nothing but its size and revision (``too_large``).

    Raises:
        Unavailable: no answer, or an error from etcd.
    """
    start = prefix.encode()
    try:
        reply = _call(
            endpoint,
            "/v3/kv/range",
            {"key": _b64(start), "range_end": _b64(keytree.range_end(start))},
            access=access,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            value_bytes=value_bytes,
        )
    except TooLarge as exc:
        if not exc.revision:
            raise _not_etcd(endpoint) from exc
        return PrefixState({}, exc.revision, exc.revision, too_large=exc.size)
    try:
        revision = int(reply["header"]["revision"])
        kvs = reply.get("kvs") or []
        values = {_key_text(kv["key"]): decoded(kv.get("value", "")) for kv in kvs}
        changed_at = max((int(kv["mod_revision"]) for kv in kvs), default=0)
        return PrefixState(values, revision, changed_at)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _not_etcd(endpoint) from exc


def _summary(failures: list[Unavailable]) -> tuple[str, bool]:
    """Every endpoint's failure in one reason, and whether one of them
    refused (the store answered: not "unreachable")."""
    denied = any(isinstance(failure, AccessDenied) for failure in failures)
    return "; ".join(str(failure) for failure in failures), denied


def _problem_text(reason: str, *, denied: bool) -> str:
    return f"etcd {reason}" if denied else f"etcd unreachable: {reason}"


def _first_answer(
    target: EtcdTarget,
    call: Callable[[tuple[str, int]], T],
    *,
    first: tuple[str, int] | None = None,
) -> T:
    """``call`` on each endpoint in turn until one answers, from ``first``
    (one that answered last time) when given, then on in the list's order.

    Raises:
        UnreachableError: none answered (every endpoint's reason).
        SourceError: none answered, and one refused (auth, TLS).
    """
    endpoints = list(target.endpoints)
    if first in endpoints:
        at = endpoints.index(first)
        endpoints = endpoints[at:] + endpoints[:at]
    failures = []
    for endpoint in endpoints:
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


class EtcdSource(OneDocument):
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
        self._value: Field | None = None  # None: no such key
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
    def keeps_cache(self) -> bool:
        """Yes: a master must start when etcd is down (from its cache)."""
        return True

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
        """The most a read or one watch response may carry, before base64,
        with every value over ``max_bytes`` left out (only its size is
        held): a longer watch response is not applied, the state is read
        in full instead."""
        return self.max_bytes

    @property
    def string_limit(self) -> int:
        """The longest string of an answer kept: a value over ``max_bytes``
        is held as its size only, and rejected by it."""
        return _string_limit(self.max_bytes)

    def watched(self) -> dict[str, str]:
        """The key (and range) a watch's ``create_request`` names."""
        return {"key": _b64(self.target.key.encode())}

    def needs_read(self) -> bool:
        """Whether a change can be applied only by reading in full (what is
        held is not the whole state)."""
        return False

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
            denied, changed_at = self._denied, self._changed_at
        self._raise_problem(problem, denied=denied)
        key = self.target.key
        if value is None:
            if deleted_at:
                raise SourceError(
                    f"key {key} was deleted at revision {deleted_at}",
                    source=self.location,
                )
            raise SourceError(f"key {key} does not exist", source=self.location)
        unheld = _unheld(value, self.max_bytes)
        if unheld is not None:
            raise SourceError(
                f"key {key} at revision {changed_at}: {unheld}", source=self.location
            )
        assert isinstance(value, bytes)  # what else is unheld
        if not value.strip():
            raise SourceError(f"key {key} holds an empty value", source=self.location)
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
            value = (
                None if last.get("type") == "DELETE" else decoded(kv.get("value", ""))
            )
            self._revision = int(kv.get("mod_revision", self._revision))
            self._changed_at = self._revision
            self._value = value
            self._deleted_at = self._revision if value is None else 0
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
        self._values: dict[str, Field] = {}
        self._emptied_at = 0  # the revision that deleted the last key
        self._too_large = 0  # the last read's size, when it was too large to hold

    @property
    def answer_bytes(self) -> int:
        # Keys and etcd's fields around each value come on top of the
        # values' own bytes; the values' sum is checked against
        # max_bytes in load(), where the reason can be given.
        return 2 * self.max_bytes

    def watched(self) -> dict[str, str]:
        start = self.target.key.encode()
        return {"key": _b64(start), "range_end": _b64(keytree.range_end(start))}

    def needs_read(self) -> bool:
        return self._too_large > 0

    def load(self) -> dict[str, Any]:
        """The keys under the prefix as one mapping: read now, or while
        watching the last applied state.

        Raises:
            SourceError: etcd unreachable, no keys under the prefix, a key
                with an empty value or without a place in the mapping, or
                the keys or the values together too large.
            ConfigError: a value does not parse.
        """
        if not self._watching:
            self.read()
        with self._lock:
            problem, values = self._problem, self._values
            emptied_at, denied = self._emptied_at, self._denied
            too_large, changed_at = self._too_large, self._changed_at
        self._raise_problem(problem, denied=denied)
        prefix = self.target.key
        if too_large:
            raise SourceError(
                f"the keys under {prefix} at revision {changed_at} take "
                f"{too_large} bytes to read, keys and values together, over "
                f"what the {self.max_bytes}-byte limit allows (HOTCFG_MAX_BYTES)",
                source=self.location,
            )
        if not values:
            since = f" (the last was deleted at revision {emptied_at})"
            raise SourceError(
                f"no keys under {prefix}{since if emptied_at else ''}",
                source=self.location,
            )
        self._check_sizes(values, changed_at)
        parsed: dict[str, Any] = {}
        for key, value in sorted(values.items()):
            where = self.location[: -len(prefix)] + key  # etcd://hosts/key
            assert isinstance(value, bytes)  # only values over the limit are elided
            if not value.strip():
                raise SourceError(f"key {key} holds an empty value", source=where)
            parsed[key] = loaders.parse(value, fmt=self._fmt, source=where)
        data = keytree.nest(parsed, prefix=prefix, source=self.location)
        return validate.check_document(data, source=self.location)

    def _check_sizes(self, values: dict[str, Field], changed_at: int) -> None:
        """Refuse a key or a value that cannot be held (too long, not
        base64), and values over the limit together (naming the largest,
        the one to look at first).

        Raises:
            SourceError: any of them.
        """
        prefix = self.target.key
        for key, value in sorted(values.items()):
            if key.startswith(MARK):
                size = key[1:].split("/")[0]
                why = (
                    f"is {size} bytes long, over the {self.max_bytes}-byte limit"
                    if size
                    else "was sent by etcd as no base64"
                )
                raise SourceError(
                    f"a key under {prefix} at revision {changed_at} {why}",
                    source=self.location,
                )
            if isinstance(value, Garbled):
                unheld = _unheld(value, self.max_bytes)
                raise SourceError(
                    f"key {key} at revision {changed_at}: {unheld}",
                    source=self.location,
                )
        sizes = {
            key: value.size if isinstance(value, Elided) else len(value)
            for key, value in values.items()
            if not isinstance(value, Garbled)
        }
        total = sum(sizes.values())
        if total > self.max_bytes:
            largest = max(sorted(sizes), key=sizes.__getitem__)
            raise SourceError(
                f"the values under {prefix} at revision {changed_at} are {total} "
                f"bytes together, over the {self.max_bytes}-byte limit "
                f"(HOTCFG_MAX_BYTES; the largest: {largest}, {sizes[largest]} bytes)",
                source=self.location,
            )

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
            value_bytes=self.max_bytes,
        )
        with self._lock:
            if state.revision < self._revision:
                return  # the watch applied newer changes meanwhile
            self._read(state.revision, state.changed_at)
            self._values = state.values
            self._emptied_at = 0
            self._too_large = state.too_large

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
                    values[key] = decoded(kv.get("value", ""))
                self._revision = int(kv.get("mod_revision", self._revision))
            self._values = values
            self._changed_at = self._revision
            self._emptied_at = 0 if values else self._revision
            return True


def _shutdown(conn: http.client.HTTPConnection) -> None:
    """Wake a thread blocked reading ``conn``'s stream (it then reads the
    end). The caller holds the watch's lock, under which the watcher
    unlists its stream before closing it: so the descriptor shut down is
    still this connection's, never a number reused meanwhile."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Probe:
    """Asks a member whether it answers at all: ``GET /version``, which the
    member serves itself (no auth, no raft, no gRPC call behind it), on a
    connection kept open between probes, so a quiet watch costs one small
    request every :data:`PROBE_AFTER_S` and no new connection or TLS
    handshake. Lives in the probing thread only; its socket is listed in
    ``forksafe`` like every other."""

    def __init__(self, access: EtcdAccess) -> None:
        self._access = access
        self._conn: http.client.HTTPConnection | None = None
        self._endpoint: tuple[str, int] | None = None

    def ask(self, endpoint: tuple[str, int], deadline_s: float) -> None:
        """Return once ``endpoint`` has answered, within ``deadline_s``.

        Raises:
            Unavailable: no answer in time (or none at all).
        """
        deadline = time.monotonic() + deadline_s
        if self._endpoint != endpoint or (self._conn and self._conn.sock is None):
            self.close()
        while True:
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = _connect(endpoint, deadline_s, access=self._access)
                    self._endpoint = endpoint
                conn = self._conn
                _within(conn, deadline)
                conn.request("GET", "/version")
                _within(conn, deadline)
                response = conn.getresponse()
                response.read(_CHUNK)
                if response.will_close or not response.isclosed():
                    self.close()
                return
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A kept-open connection the member closed while idle
                # fails at once: once more, on a new one.
                if reused and not isinstance(exc, TimeoutError):
                    continue
                raise Unavailable(
                    f"{_endpoint_text(endpoint)}: {_cut_off(exc, self._access)}"
                ) from exc

    def close(self) -> None:
        conn, self._conn, self._endpoint = self._conn, None, None
        if conn is not None:
            _close(conn)


class EtcdWatch(Follower):
    """Three threads: one follows etcd; one (``_follower``) calls
    ``on_change`` with the newest state, so a slow publish never stalls the
    stream; one probes the followed member while the stream is silent, so a
    member frozen or cut off without a FIN is left within seconds, whatever
    the cluster's progress-notification interval."""

    def __init__(self, source: EtcdSource, on_change: Callable[[], object]) -> None:
        super().__init__(source.location, on_change)
        self.source = source
        # Under self._cond: the stream open now, its member, why the
        # probing thread cut it.
        self._stream: http.client.HTTPConnection | None = None
        self._stream_at: tuple[str, int] = source.target.endpoints[0]
        self._cut: str | None = None
        # monotonic: the stream's last word, or its member's last answer to
        # a probe. Written without the lock: a late read only delays a probe.
        self._heard = 0.0
        # Also under self._cond (the probing thread may find the watch works):
        self._failures = 0  # in a row, since the watch last worked
        self._reasons: list[Unavailable] = []  # this round's, one per endpoint
        self._reported: tuple[str, bool] | None = None  # the problem recorded
        self._created_at = 0.0  # monotonic: this stream's watch was created
        self._answered = False  # this stream brought more than "created"
        self._shaky = False  # the last stream ended right after "created"
        self._fault: str | None = None  # the last unexpected error logged
        self.probes = 0  # answered (the probing thread's)

    def start(self) -> None:
        self._start(self._follow, "hotcfg-etcd")
        probing = threading.Thread(
            target=self._probe_loop, name="hotcfg-etcd-probe", daemon=True
        )
        self._threads.append(probing)
        probing.start()
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
            if stream is not None:
                _shutdown(stream)  # wakes the watcher from its read
            self._cond.notify_all()
        self._join(timeout_s)
        self.source._watching = False

    def _follow(self) -> None:
        source = self.source
        endpoints = source.target.endpoints
        index = 0
        reread = source.revision == 0
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
                    with self._cond:
                        self._recovered(_endpoint_text(endpoint))
                    self.notice()
                self._watch(endpoint)
                reread = True  # compacted or cancelled: read in full at once
            except Unavailable as exc:
                if self._stopping:
                    return
                index = (index + 1) % len(endpoints)
                with self._cond:
                    delay = self._failed(exc, endpoints[index])
                    if not self._stopping:
                        self._cond.wait(delay)
            except Exception as exc:
                # A fault of ours: logged once per kind, never a flood.
                fault = f"{type(exc).__name__}: {exc}"
                if fault != self._fault:
                    self._fault = fault
                    _logger.exception("hotcfg: error following %s", source.location)
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(BACKOFF_MAX_S)

    def _failed(self, exc: Unavailable, next_endpoint: tuple[str, int]) -> float:
        """Count a failure (the caller holds ``_cond``); how long to wait
        before trying ``next_endpoint``.

        The first failure in a row is logged. Each round of them (every
        endpoint once) is recorded as the source's problem, with each one's
        reason (the first is why the watch was left), whenever the round's
        reasons differ from those recorded: the publisher logs each new one
        once, and status shows the reason of now, not the first one's.
        """
        source = self.source
        rounds = len(source.target.endpoints)
        self._ended()
        self._failures += 1
        failures = self._failures
        if (failures - 1) % rounds == 0:  # a round begins
            self._reasons.clear()
        self._reasons.append(exc)
        if failures == 1:
            _logger.warning(
                "hotcfg: lost the etcd watch of %s (%s); reconnecting to "
                "%s from revision %d",
                source.location,
                exc,
                _endpoint_text(next_endpoint),
                source.revision + 1,
            )
        if failures % rounds == 0:
            reason, denied = _summary(self._reasons)
            if self._reported != (reason, denied):
                self._reported = (reason, denied)
                source.fail(reason, denied=denied)
                self.notice()
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(failures, 16))
        return delay * random.uniform(0.5, 1.0)

    def _ended(self) -> None:
        """The last stream failed (the caller holds ``_cond``). One that
        failed right after etcd created its watch, with nothing else said,
        was no recovery: the next creation does not clear the problem or the
        backoff (a member or a proxy that answers every watch with something
        unreadable is retried ever more slowly, and logged once); a response
        after it does, or an answer to a probe once it has been quiet."""
        if self._created_at and not self._answered:
            self._shaky = time.monotonic() - self._created_at < SHAKY_S
        self._created_at = 0.0

    def _recovered(self, where: str) -> None:
        """The watch works again (the caller holds ``_cond``): forget the
        failures and the problem."""
        self._shaky, self._fault = False, None
        self._failures, self._reported = 0, None
        if self.source.recovered():
            _logger.info(
                "hotcfg: following %s again at %s from revision %d",
                self.source.location,
                where,
                self.source.revision + 1,
            )
            self.notice()

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
            self._stream, self._stream_at, self._cut = conn, endpoint, None
            self._heard = time.monotonic()
            self._cond.notify_all()  # the probing thread waits for a stream
        try:
            self._stream_from(conn, where, token)
        except Unavailable as exc:
            with self._cond:
                cut, self._cut = self._cut, None
            if cut is not None:  # the probing thread ended it: say why
                raise Unavailable(cut) from exc
            raise
        finally:
            with self._cond:
                if self._stream is conn:
                    self._stream = None
            _close(conn)

    def _stream_from(
        self, conn: http.client.HTTPConnection, where: str, token: str | None
    ) -> None:
        """Create the watch on ``conn`` and handle what it streams, until
        a response asks for a full read (returns) or the stream fails."""
        source = self.source
        access = source.access
        request = {
            "create_request": {
                **source.watched(),
                "start_revision": source.revision + 1,
                "progress_notify": True,
            }
        }
        silence_s = source.timeout_s  # until the stream has begun
        try:
            body = json.dumps(request).encode()
            conn.request("POST", "/v3/watch", body, _headers(token))
            response = conn.getresponse()
            if response.status != 200:
                answer = response.read(65536)
                raise _refusal(where, response.status, answer, token, access)
            assert conn.sock is not None
            # Longer than the progress interval: a silent stream is a dead
            # one (the probes find a silent member sooner).
            silence_s = source.progress_s * 1.5 + source.timeout_s
            conn.sock.settimeout(silence_s)
            # Every value over the limit is left out (its size kept); a
            # response over this even so is not applied: read in full.
            budget = source.answer_bytes * 4 // 3 + 65536
            reader = LineReader(string_limit=source.string_limit, budget=budget)
            while True:
                chunk = response.read1(_CHUNK)
                self._heard = time.monotonic()
                if not chunk:
                    last = reader.end()
                    words = (
                        _last_words(last)
                        if isinstance(last, bytes)
                        else "the watch stream ended"
                    )
                    raise Unavailable(f"{where}: {words}")
                for line in reader.feed(chunk):
                    if self._handle(line, where, token):
                        return
        except TimeoutError as exc:
            raise Unavailable(f"{where}: no word for {silence_s:.1f} s") from exc
        except ssl.SSLError as exc:
            raise _tls_failure(where, exc, access) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(f"{where}: {exc or type(exc).__name__}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Unavailable(f"{where}: not an etcd v3 watch response") from exc

    def _handle(self, line: bytes | Overflow, where: str, token: str | None) -> bool:
        """One watch response; True when the key must be read in full again.

        Raises:
            TokenRefused: the watch was not created: ``token`` expired.
            AccessDenied: the watch was not created: the user may not read.
            ValueError: not JSON.
        """
        source = self.source
        if isinstance(line, Overflow):
            # Many events at once (a watch catching up), or many keys under
            # a prefix: what they leave is read in full instead.
            _logger.info(
                "hotcfg: a watch response for %s of %d bytes is over what "
                "HOTCFG_MAX_BYTES allows; reading it in full",
                source.location,
                line.size,
            )
            with self._cond:
                self._answered = True
            return True
        message = json.loads(line)
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
            with self._cond:
                self._created_at, self._answered = time.monotonic(), False
                if not self._shaky:
                    self._recovered(where)
            return False
        if source.needs_read() and result.get("events"):
            _logger.info(
                "hotcfg: %s changed at revision %s; reading it in full (what "
                "it held was too large to follow change by change)",
                source.location,
                result.get("header", {}).get("revision", "?"),
            )
            return True
        changed = source.apply(result)
        if not self._answered:
            with self._cond:
                self._answered = True
                if self._failures:  # after a shaky creation: this one works
                    self._recovered(where)
        if changed:
            _logger.debug(
                "hotcfg: %s changed at revision %d", source.location, source.revision
            )
            self.notice()
        return False

    def _probe_loop(self) -> None:
        """While a stream is open and silent for :data:`PROBE_AFTER_S`, ask
        its member whether it answers at all; if not within the deadline,
        cut the stream, which the watcher then leaves for the next endpoint
        from the last revision + 1, losing nothing. TCP says nothing of a
        member frozen (a GC pause, a stalled disk, a paused VM: its kernel
        still acknowledges) or behind a black hole until keepalive gives up,
        and etcd's progress notifications come every 10 minutes unless the
        cluster says otherwise."""
        probe = _Probe(self.source.access)
        deadline_s = min(self.source.timeout_s, PROBE_DEADLINE_S)
        try:
            while True:
                with self._cond:
                    due = self._probe_due()
                if due is None:
                    return
                stream, endpoint = due
                try:
                    probe.ask(endpoint, deadline_s)
                except Unavailable:
                    self._cut_stream(
                        stream,
                        f"{_endpoint_text(endpoint)}: the watch was silent and a "
                        f"probe had no answer within {deadline_s:g} s",
                    )
                    continue
                self.probes += 1
                with self._cond:
                    if self._stream is stream:
                        self._heard = time.monotonic()
                        if self._created_at and self._failures:
                            # Quiet since a shaky creation, and its member
                            # answers: the watch works.
                            self._recovered(_endpoint_text(endpoint))
        except Exception:  # never out of the thread; the stream goes on unprobed
            _logger.exception("hotcfg: error probing %s", self.source.location)
        finally:
            probe.close()

    def _probe_due(self) -> tuple[http.client.HTTPConnection, tuple[str, int]] | None:
        """Wait (holding ``_cond``) until the open stream has been silent
        for :data:`PROBE_AFTER_S`: it and its member; None when stopping."""
        while not self._stopping:
            stream = self._stream
            if stream is None:
                self._cond.wait()
                continue
            left = self._heard + PROBE_AFTER_S - time.monotonic()
            if left <= 0:
                return stream, self._stream_at
            self._cond.wait(left)
        return None

    def _cut_stream(self, stream: http.client.HTTPConnection, reason: str) -> None:
        with self._cond:
            if self._stream is stream and not self._stopping:
                self._cut = reason
                _shutdown(stream)
