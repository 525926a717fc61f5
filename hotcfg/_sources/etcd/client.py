"""Master side: a client of etcd's JSON gateway, the one every etcd user in
hotcfg goes through (the source, its watch and probe, the fleet record,
``hotcfg push``).

The gateway is what every etcd 3.4+ member serves under ``/v3/``
(docs/design.md, "etcd: the client"): JSON in, JSON out, keys and values
in base64, spoken with Python's ``http.client``: no gRPC, no new
dependency. This module owns:

* one request (:func:`call`): on a connection of its own
  (``connection``), done within its timeout as a whole, its answer read in
  bounded memory (``answer``: values over the limit kept as their size);
* authentication: every request carries the access's token
  (``access``); a token etcd refuses (expired, or the member restarted) is
  replaced by authenticating again, once per request (:func:`token_for`);
* error translation at the boundary: no answer is :class:`Unavailable`; a
  refusal (a wrong password, no permission, an untrusted certificate) is
  :class:`AccessDenied`, not "unreachable", since the store answered, so a
  master does not start from its cache on it (:func:`refusal`,
  :func:`tls_failure`, :func:`cut_off`);
* trying each endpoint in turn (:func:`first_answer`), with every one's
  reason when none answers.

Fork story: the client holds nothing between calls; a connection lives
only inside one (``connection`` lists its socket in ``forksafe``).

Must not import the source, the watch or anything of the master; never on
a worker's request path.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..._errors import ConfigError, SourceError, UnreachableError
from ..locations import EtcdTarget
from .access import EtcdAccess
from .answer import LineReader, Overflow, base64_length, header_of
from .connection import CHUNK, close, connect, within

T = TypeVar("T")

# (pid, offset): where this process starts in an endpoint list. Chosen once
# per process (a forked child chooses its own), so a fleet whose hosts share
# one list spreads its watches and calls over the members instead of putting
# every one on the first (docs/decisions/0069).
_start: tuple[int, int] | None = None
# HOTCFG_ETCD_ORDER=listed: every process starts at the first endpoint.
_listed = False


def set_listed_order(listed: bool) -> None:
    """Start every endpoint list at its first (``HOTCFG_ETCD_ORDER``), for
    this process: set once its settings are resolved."""
    global _listed
    _listed = listed


def start_offset() -> int:
    """This process's random offset into every endpoint list, chosen at its
    first use and kept: one process always begins at the same member, while
    a fleet of them spreads evenly over the members."""
    global _start
    pid = os.getpid()
    if _start is None or _start[0] != pid:
        _start = (pid, random.SystemRandom().randrange(1 << 30))
    return _start[1]


def in_process_order(endpoints: Sequence[T]) -> list[T]:
    """``endpoints`` rotated to begin at this process's random start, then
    round the list from there (its written order otherwise kept)."""
    items = list(endpoints)
    if not items or _listed:
        return items
    at = start_offset() % len(items)
    return items[at:] + items[:at]


def after_failure(
    endpoints: Sequence[T], failed: int, *, rng: random.Random | None = None
) -> list[T]:
    """The list to go round once a working stream from ``endpoints[failed]``
    broke: that member first, then the others in a random order. Every
    process following that member moves at once, and going on in the
    written order would send all of them to the same next member; a random
    order spreads them over the remaining ones. ``HOTCFG_ETCD_ORDER=listed``
    keeps the written order.
    """
    items = list(endpoints)
    if not items:
        return items
    rotated = items[failed:] + items[:failed]
    if _listed:
        return rotated
    others = rotated[1:]
    (rng or _shuffler).shuffle(others)
    return [rotated[0], *others]


_shuffler = random.SystemRandom()


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


def b64(data: bytes) -> str:
    """``data`` as the gateway takes a key or a value: base64 text."""
    return base64.b64encode(data).decode("ascii")


def endpoint_text(endpoint: tuple[str, int]) -> str:
    """``host:port`` (``[host]:port`` for IPv6), as messages name a member."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def error_message(body: bytes) -> str:
    """The reason an etcd error answer gives."""
    try:
        reply = json.loads(body)
        error = reply.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(reply.get("message") or message or "no reason given")
    except (ValueError, AttributeError):
        return "no reason given"


def last_words(line: bytes) -> str:
    """Why a watch stream ended, from its last line, cut off by the end.

    The gateway ends a stream with etcd's error (``etcdserver: no leader``)
    and no newline after it; anything else there is no message.
    """
    try:
        message = json.loads(line)
    except ValueError:
        return "the watch stream ended"
    if isinstance(message, dict) and "error" in message:
        return error_message(line)
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
STALE_AUTH = "revision of auth store is old"


def refusal(
    where: str, status: int, body: bytes, token: str | None, access: EtcdAccess
) -> Unavailable:
    """The exception for a non-200 answer to a request sent with ``token``
    (forgotten here if etcd refused it)."""
    code = _error_code(body)
    message = error_message(body)
    if token is not None and (
        status == 401 or code == _UNAUTHENTICATED or STALE_AUTH in message
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


def tls_failure(where: str, exc: ssl.SSLError, access: EtcdAccess) -> Unavailable:
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


def request_headers(token: str | None) -> dict[str, str]:
    """The headers of a request (the watch's too) sent with ``token``."""
    return _HEADERS if token is None else {**_HEADERS, "Authorization": token}


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
        within(conn, deadline)
        chunk = response.read1(CHUNK)
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
    where = endpoint_text(endpoint)
    deadline = time.monotonic() + timeout_s
    reader = LineReader(string_limit=string_limit or budget, budget=budget)
    try:
        conn = connect(endpoint, timeout_s, access=access)
        try:
            within(conn, deadline)
            conn.request("POST", path, body, headers)
            within(conn, deadline)
            response = conn.getresponse()
            return response.status, _read_answer(response, conn, deadline, reader)
        finally:
            close(conn)
    except ssl.SSLError as exc:
        raise tls_failure(where, exc, access) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise Unavailable(f"{where}: {cut_off(exc, access)}") from exc


def cut_off(exc: BaseException, access: EtcdAccess) -> str:
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
    where = endpoint_text(endpoint)
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
    message = error_message(raw)
    if "authentication is not enabled" in message:
        return None  # anyone may read: go on without a token
    if "authentication failed" in message:
        raise AccessDenied(
            f"{where}: authentication failed for user {access.user!r} ({message})"
        )
    raise refusal(where, status, raw, None, access)


def token_for(
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


def string_limit_for(max_bytes: int) -> int:
    """The longest string kept in an answer read for values of up to
    ``max_bytes``: longer ones are left out (only their size is kept).
    Never below 4 KB, so no message of etcd's is ever left out."""
    return max(base64_length(max_bytes), 4096)


def call(
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
    where = endpoint_text(endpoint)
    budget = max_bytes * 4 // 3 + 65536  # base64 and the JSON around it
    limit = string_limit_for(max_bytes if value_bytes is None else value_bytes)
    body = json.dumps(request).encode()
    for last_try in (False, True):
        token = token_for(endpoint, access, timeout_s)
        status, answer = _post(
            endpoint,
            path,
            body,
            request_headers(token),
            access=access,
            timeout_s=timeout_s,
            budget=budget,
            string_limit=limit,
        )
        if status == 200:
            break
        refused = refusal(where, status, _text_of(answer), token, access)
        if last_try or not isinstance(refused, TokenRefused):
            raise refused
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


def not_etcd(endpoint: tuple[str, int]) -> Unavailable:
    """The failure of an endpoint whose answer is not what etcd sends."""
    return Unavailable(f"{endpoint_text(endpoint)}: not an etcd v3 answer")


def summary(failures: list[Unavailable]) -> tuple[str, bool]:
    """Every endpoint's failure in one reason, and whether one of them
    refused (the store answered: not "unreachable")."""
    denied = any(isinstance(failure, AccessDenied) for failure in failures)
    return "; ".join(str(failure) for failure in failures), denied


def problem_text(reason: str, *, denied: bool) -> str:
    """A source's problem, from every endpoint's failure (:func:`summary`)."""
    return f"etcd {reason}" if denied else f"etcd unreachable: {reason}"


def first_answer(
    target: EtcdTarget,
    attempt: Callable[[tuple[str, int]], T],
    *,
    first: tuple[str, int] | None = None,
) -> T:
    """``attempt`` on each endpoint in turn until one answers, from ``first``
    (one that answered last time) when given, else from this process's
    random start (:func:`in_process_order`), then round the list.

    Raises:
        UnreachableError: none answered (every endpoint's reason).
        SourceError: none answered, and one refused (auth, TLS).
    """
    endpoints = in_process_order(target.endpoints)
    if first in endpoints:
        at = endpoints.index(first)
        endpoints = endpoints[at:] + endpoints[:at]
    failures = []
    for endpoint in endpoints:
        try:
            return attempt(endpoint)
        except Unavailable as exc:
            failures.append(exc)
    reason, denied = summary(failures)
    if denied:
        raise SourceError(problem_text(reason, denied=True), source=target.key)
    raise UnreachableError(problem_text(reason, denied=False), source=target.key)
