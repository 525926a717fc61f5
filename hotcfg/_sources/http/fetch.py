"""Master side: one bounded, capped, checked GET of a URL, for ``source``.

Each fetch is bounded as a whole: every connect, read and write of its
sockets gets the time left until one deadline (``HOTCFG_HTTP_TIMEOUT_MS``,
for connecting, TLS, every redirect, the headers and the body), so a server
trickling one byte at a time is cut at the deadline, not kept alive by
per-read timeouts (``http.client`` reads a header line or a buffer with as
many ``recv`` calls as it takes). ``http.client`` speaks HTTP/1.1 over those
sockets; certificates and host names are verified (``HOTCFG_HTTP_CA_FILE``
or the system's store); bodies are capped at ``HOTCFG_MAX_BYTES`` and never
taken in part (one shorter or longer than its ``Content-Length`` is
refused); at most five redirects are followed, and neither the token nor
the validators of the body held go to an origin other than their own; a
URL a reason names has its query values hidden. What an answer means
(content types, temporary statuses, Retry-After, redirects) is
``rules``, pure; the translation of transport errors into reasons is
here, at the boundary.

Fork story: no connection outlives one fetch (:class:`Attempt` closes its
sockets when the fetch ends). A worker forked during a fetch inherits the
socket's descriptor, which would keep the connection open after the master
closed it: the child closes its copies at once (``forksafe``). For that,
every descriptor is listed there from its creation to its close, also
across the TLS wrap (which moves it to a new socket object): creating and
listing, wrapping and listing the TLS socket, unlisting and closing are
each one step under ``forksafe.HANDOVER``, which fork() takes too. The
handshake itself runs after the wrap, outside the lock, on the listed TLS
socket: a fork may fall into it, and :meth:`Attempt.cancel` cuts it.

Name resolution is bounded by the system resolver's own timeouts only
(``getaddrinfo`` cannot be interrupted).

Proxies (``proxies`` chooses one per URL, from the environment): an http
URL is asked of the proxy in absolute form (``GET http://host/path``); an
https one goes through a tunnel (``CONNECT host:port``, then TLS with the
origin, verified against the origin's name, so the proxy sees neither the
token nor the body). The proxy's connect and the CONNECT exchange share
the fetch's deadline. A proxy that cannot be reached or refuses (407, 502,
...) makes the fetch fail as temporary, as a server that cannot be reached
does: the reason names the proxy, its credentials hidden.

Imports ``files``, ``locations``, ``forksafe`` and ``rules`` and
``proxies`` of ``_sources``; never a source, ``_master`` or ``_worker``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import threading
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ..._errors import SourceError
from ..._version import __version__
from .. import forksafe
from ..files import read_capped
from ..locations import redact_url
from .proxies import (
    CONNECT_HEAD_MAX_BYTES,
    Proxy,
    ProxyEnv,
    ProxyError,
    authority,
    connect_request,
    connect_status,
)
from .rules import (
    REDIRECT_STATUSES,
    accept_header,
    content_type_problem,
    is_temporary,
    looks_like_html,
    redirect_target,
    retry_after_s,
    same_origin,
    shown,
    status_text,
)

_TOKEN_MAX_BYTES = 16384


class FetchFailed(Exception):
    """A fetch gave no document the source accepts.

    Attributes:
        reason: why, naming no secret.
        temporary: no answer in time, or the server cannot answer now (the
            source raises :class:`UnreachableError`, not :class:`SourceError`).
        retry_after_s: what the server's Retry-After asked (capped).
    """

    def __init__(
        self, reason: str, *, temporary: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.retry_after_s = retry_after_s


class FetchCancelled(Exception):
    """The fetch was cut from another thread: the poll is stopping."""


class Attempt:
    """One fetch's deadline and the sockets it opened.

    :meth:`cancel` may be called from another thread (stopping the poll);
    sockets are shut down and closed only under the attempt's lock, so a
    descriptor number reused after a close is never shut down by mistake.
    Sockets are created, wrapped and closed under ``forksafe.HANDOVER`` (taken
    first), so a fork never falls between a descriptor's change and its
    listing (the module docstring).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.cancelled = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []

    def left(self) -> float:
        """Seconds left for this fetch.

        Raises:
            TimeoutError: none left.
            FetchCancelled: cancelled.
        """
        if self.cancelled:
            raise FetchCancelled
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the fetch's deadline passed")
        return left

    def new_socket(self, family: int, kind: int, proto: int) -> socket.socket:
        """A new socket, closed with this attempt (and in a forked child).

        Raises:
            FetchCancelled: cancelled.
        """
        with forksafe.HANDOVER, self._lock:  # a fork never falls between
            if self.cancelled:
                raise FetchCancelled
            sock = socket.socket(family, kind, proto)
            self._socks.append(sock)
            forksafe.OPEN.add(sock)
        return sock

    def wrap(
        self, sock: socket.socket, context: ssl.SSLContext, host: str
    ) -> ssl.SSLSocket:
        """``sock`` (one of this attempt's) wrapped in TLS, not yet
        handshaken; the TLS socket takes its place in the lists.

        ``wrap_socket`` moves the descriptor to a new object: a fork must not
        fall between that and listing it, and the handshake must happen on a
        listed socket that :meth:`cancel` can shut down.

        Raises:
            FetchCancelled: cancelled.
        """
        with forksafe.HANDOVER, self._lock:
            if self.cancelled:
                raise FetchCancelled
            tls = context.wrap_socket(
                sock, server_hostname=host, do_handshake_on_connect=False
            )
            self._socks[self._socks.index(sock)] = tls
            forksafe.OPEN.discard(sock)
            forksafe.OPEN.add(tls)
        return tls

    def forget(self, sock: socket.socket) -> None:
        """Close one of this attempt's sockets now (a connect that failed)."""
        with forksafe.HANDOVER, self._lock:
            if sock in self._socks:
                self._socks.remove(sock)
                forksafe.close(sock)

    def cancel(self) -> None:
        """Cut the fetch: its blocked connect, handshake, read or write
        returns at once."""
        with self._lock:
            self.cancelled = True
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown, also under TLS: it wakes
                    # the fetch's thread without touching the TLS object
                    # that thread is using (SSLSocket.shutdown drops it).
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the sockets (idempotent); the fetch is over."""
        with forksafe.HANDOVER, self._lock:
            socks, self._socks = self._socks, []
            for sock in socks:
                forksafe.close(sock)


class _BoundedReader(io.RawIOBase):
    """A socket's reads, each bounded by the time left to the attempt."""

    def __init__(self, sock: socket.socket, attempt: Attempt) -> None:
        super().__init__()
        self._sock = sock
        self._attempt = attempt

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._attempt.left())
        return self._sock.recv_into(buffer)


class _BoundedSocket:
    """What ``http.client`` uses of its socket (``sendall``, ``makefile``,
    ``close``), every call bounded by the time left to the attempt.

    ``http.client`` reads headers with ``readline`` and bodies with buffered
    reads, each of which may take many ``recv`` calls: a socket timeout
    alone bounds each of them, not the fetch.
    """

    def __init__(self, sock: socket.socket, attempt: Attempt) -> None:
        self._sock = sock
        self._attempt = attempt

    def sendall(self, data: bytes) -> None:
        # One timeout for the whole call (CPython >= 3.5), not per send.
        self._sock.settimeout(self._attempt.left())
        self._sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_BoundedReader(self._sock, self._attempt))

    def close(self) -> None:
        # http.client closes the connection as soon as it has the headers of
        # an answer that ends it, while the body is still to be read: the
        # attempt closes the socket when the whole fetch is done.
        pass


def _open_socket(host: str, port: int, attempt: Attempt) -> socket.socket:
    """Connect to the first address of ``host`` that accepts, each try
    bounded by the time left (``socket.create_connection`` gives every
    address the whole timeout). Name resolution is bounded by the system
    resolver only."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = attempt.new_socket(family, kind, proto)
        try:
            sock.settimeout(attempt.left())
            sock.connect(address)
            return sock
        except TimeoutError:
            raise
        except OSError as exc:
            attempt.forget(sock)
            error = exc
    raise error or OSError(f"no address for {host}")


class _AtProxy(Exception):
    """A transport error while connecting to a proxy or asking it for a
    tunnel (``error``); :class:`Fetcher` names the proxy in the reason."""

    def __init__(self, error: Exception, proxy: Proxy) -> None:
        super().__init__(str(error))
        self.error = error
        self.proxy = proxy


def _proxy_refusal(proxy: Proxy, status: int, phrase: str) -> str:
    """Why a proxy's refusal failed the fetch, with what 407 means here
    (and 401, which some proxies answer to wrong credentials: tinyproxy)."""
    reason = f"proxy {proxy.shown}: HTTP {status} {phrase}".rstrip()
    if status in (401, 407):
        reason += (
            " (the proxy refused the credentials in its URL)"
            if proxy.authorization is not None
            else " (the proxy asks for credentials: http://user:password@host:port)"
        )
    return reason


def _tunnel(
    sock: socket.socket, host: str, port: int, proxy: Proxy, attempt: Attempt
) -> None:
    """Ask ``proxy`` (connected on ``sock``) for a tunnel to ``host:port``,
    within the attempt's deadline.

    Raises:
        FetchFailed: the proxy refused (temporary, naming it).
    """
    sock.settimeout(attempt.left())
    sock.sendall(connect_request(host, port, proxy, f"hotcfg/{__version__}"))
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > CONNECT_HEAD_MAX_BYTES:
            raise FetchFailed(
                f"proxy {proxy.shown}: its answer to CONNECT is over "
                f"{CONNECT_HEAD_MAX_BYTES} bytes",
                temporary=True,
            )
        sock.settimeout(attempt.left())
        # The origin speaks only after the ClientHello: nothing but the
        # proxy's answer can arrive before it is sent.
        part = sock.recv(4096)
        if not part:
            raise FetchFailed(
                f"proxy {proxy.shown}: closed the connection before answering CONNECT",
                temporary=True,
            )
        head += part
    try:
        status, phrase = connect_status(head)
    except ValueError as exc:
        raise FetchFailed(f"proxy {proxy.shown}: {exc}", temporary=True) from None
    if status != 200:
        reason = _proxy_refusal(proxy, status, phrase)
        if status not in (401, 407):
            reason += f" to CONNECT {authority(host, port)}"
        raise FetchFailed(reason, temporary=True)
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise FetchFailed(
            f"proxy {proxy.shown}: bytes after its answer to CONNECT", temporary=True
        )


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection whose socket is bounded by one attempt,
    directly or through ``proxy``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        attempt: Attempt,
        context: ssl.SSLContext | None,
        proxy: Proxy | None = None,
    ) -> None:
        super().__init__(host, port)
        self._attempt = attempt
        self._context = context
        self._proxy = proxy
        # The Host header names the port only when it is not the scheme's.
        self.default_port = 443 if context is not None else 80

    def connect(self) -> None:
        attempt = self._attempt
        proxy = self._proxy
        if proxy is None:
            sock = _open_socket(self.host, self.port, attempt)
        else:
            try:
                sock = _open_socket(proxy.host, proxy.port, attempt)
                if self._context is not None:
                    _tunnel(sock, self.host, self.port, proxy, attempt)
            except (FetchCancelled, FetchFailed):
                raise
            except Exception as exc:
                raise _AtProxy(exc, proxy) from exc
        if self._context is not None:
            sock = attempt.wrap(sock, self._context, self.host)
            # The whole handshake is bounded by the socket's timeout (one
            # deadline in CPython's do_handshake): the time left.
            sock.settimeout(attempt.left())
            sock.do_handshake()
        # http.client uses only sendall, makefile and close (_BoundedSocket).
        self.sock = _BoundedSocket(sock, attempt)


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer the source accepted: a new body (None: 304, the body held
    is current), its validators, for the next conditional request, and the
    URL that gave them (after redirects): the validators go back to that
    URL's origin only."""

    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    url: str = ""


_NO_ANSWER = Answer(None)  # no validators


def _shown_url(url: str) -> str:
    """A URL as a reason writes it: its query values and credentials hidden
    (``locations.redact_url``), then made printable and short."""
    return shown(redact_url(url))


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that verifies certificates and host names, trusting
    ``ca_file`` (PEM) or the system's store."""
    return ssl.create_default_context(cafile=ca_file)


class Fetcher:
    """GETs one URL, bounded, capped and checked (see the module docstring).

    Args:
        url: the configured URL.
        fmt: the document's format (which content types fit).
        max_bytes: largest body accepted.
        timeout_s: each fetch's deadline, redirects and body included.
        token_file: a file holding a bearer token, read at each fetch (a
            rotated token is used at the next poll); sent only to the
            configured URL's origin.
        ca_file: CA bundle (PEM) for https; default: the system's.
        proxies: the proxy variables, taken when the source was made
            (default: none, every URL directly).
    """

    def __init__(
        self,
        url: str,
        fmt: str,
        max_bytes: int,
        *,
        timeout_s: float,
        token_file: str | None = None,
        ca_file: str | None = None,
        proxies: ProxyEnv | None = None,
    ) -> None:
        self.url = url
        self.proxies = proxies or ProxyEnv()
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.token_file = token_file
        self.ca_file = ca_file
        self._context: ssl.SSLContext | None = None
        if ca_file is not None:
            self._context = tls_context(ca_file)  # a bad bundle fails now

    def fetch(self, attempt: Attempt, *, held: Answer | None = None) -> Answer:
        """GET the URL, following redirects; conditional when given the
        answer whose body is held (and which has validators).

        What belongs to an origin stays with it: the token goes to the
        configured URL's origin only, and the held answer's validators to
        the origin that gave them only (its ``ETag`` means nothing to
        another server, and tells it what this one serves).

        Raises:
            FetchFailed: with the reason (the URL is added by the source).
            FetchCancelled: the attempt was cancelled.
        """
        token = self._token()
        chain = [self.url]
        while True:
            url = chain[-1]
            where = "" if url == self.url else f" (at {_shown_url(url)})"
            validators = (
                held if held is not None and same_origin(url, held.url) else _NO_ANSWER
            )
            try:
                hop = self._get(
                    url,
                    attempt,
                    token=token if same_origin(url, self.url) else None,
                    etag=validators.etag,
                    last_modified=validators.last_modified,
                )
            except FetchFailed as exc:
                exc.reason += where
                raise
            except FetchCancelled:
                raise
            except _AtProxy as exc:
                if attempt.cancelled:
                    raise FetchCancelled from None
                failed = self._failure(exc.error, exc.proxy.host)
                failed.reason = f"proxy {exc.proxy.shown}: {failed.reason}{where}"
                failed.temporary = True  # the proxy, not the origin, failed
                raise failed from None
            except Exception as exc:
                if attempt.cancelled:
                    raise FetchCancelled from None
                failed = self._failure(exc, urlsplit(url).hostname or "")
                failed.reason += self._through(url) + where
                raise failed from None
            if isinstance(hop, Answer):
                return hop if hop.body is None else replace(hop, url=url)
            try:
                chain.append(redirect_target(chain, hop, show=_shown_url))
            except ValueError as exc:
                raise FetchFailed(str(exc), temporary=False) from None

    def _through(self, url: str) -> str:
        """`` (through the proxy ...)`` when ``url`` is fetched through one."""
        try:
            proxy = self.proxies.for_url(url)
        except ProxyError:
            return ""
        return "" if proxy is None else f" (through the proxy {proxy.shown})"

    def _failure(self, exc: Exception, host: str) -> FetchFailed:
        """What a transport error means (translated here, at the boundary)."""
        if isinstance(exc, TimeoutError):
            reason = f"no complete answer within {self.timeout_s * 1000:.0f} ms"
            return FetchFailed(reason, temporary=True)
        if isinstance(exc, ssl.SSLCertVerificationError):
            # Not "unreachable": a master must not start from its cache
            # because someone answered with the wrong certificate.
            reason = f"certificate not trusted: {exc.verify_message or exc.reason}"
            return FetchFailed(reason, temporary=False)
        if isinstance(exc, ssl.SSLError):
            return FetchFailed(f"TLS failed: {exc.reason or exc}", temporary=True)
        if isinstance(exc, socket.gaierror):
            return FetchFailed(f"cannot resolve {host}: {exc.strerror}", temporary=True)
        if isinstance(exc, ConnectionRefusedError):
            return FetchFailed("connection refused", temporary=True)
        if isinstance(exc, http.client.IncompleteRead):
            return FetchFailed(
                "the body was cut short (the chunked stream broke off or is malformed)",
                temporary=True,
            )
        if isinstance(exc, http.client.RemoteDisconnected):
            return FetchFailed("the server closed the connection", temporary=True)
        if isinstance(exc, http.client.HTTPException):
            what = shown(str(exc)) or type(exc).__name__
            return FetchFailed(f"not an HTTP answer ({what})", temporary=True)
        if isinstance(exc, OSError):
            return FetchFailed(shown(exc.strerror or str(exc)), temporary=True)
        raise exc

    def _token(self) -> str | None:
        """The bearer token, read now; the reasons never quote it.

        Raises:
            FetchFailed: unreadable, empty or not one header-safe word.
        """
        if self.token_file is None:
            return None
        try:
            raw = read_capped(self.token_file, max_bytes=_TOKEN_MAX_BYTES)
        except SourceError as exc:
            raise FetchFailed(
                f"HOTCFG_HTTP_TOKEN_FILE: {exc}", temporary=False
            ) from None
        token = raw.strip()
        if not token:
            raise FetchFailed(
                f"HOTCFG_HTTP_TOKEN_FILE: {self.token_file}: the token file is empty",
                temporary=False,
            )
        if any(not 0x21 <= byte <= 0x7E for byte in token):
            raise FetchFailed(
                f"HOTCFG_HTTP_TOKEN_FILE: {self.token_file}: the token holds "
                "spaces, control or non-ASCII characters",
                temporary=False,
            )
        return token.decode("ascii")

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = tls_context(None)
        return self._context

    def _get(
        self,
        url: str,
        attempt: Attempt,
        *,
        token: str | None,
        etag: str | None,
        last_modified: str | None,
    ) -> Answer | str:
        """One request: the answer, or a redirect's ``Location``."""
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        try:
            proxy = self.proxies.for_url(url)
        except ProxyError as exc:  # a redirect to a scheme whose proxy is bad
            raise FetchFailed(f"{exc.variable}: {exc}", temporary=False) from None
        conn = _Connection(
            parts.hostname or "",
            parts.port or (443 if https else 80),
            attempt=attempt,
            context=self._tls() if https else None,
            proxy=proxy,
        )
        headers = {
            "User-Agent": f"hotcfg/{__version__}",
            "Accept": accept_header(self.fmt),
            "Accept-Encoding": "identity",
            "Connection": "close",
        }
        if etag is not None:
            headers["If-None-Match"] = etag
        if last_modified is not None:
            headers["If-Modified-Since"] = last_modified
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if proxy is not None and not https:
            # Absolute form, which http.client also takes the Host header
            # from; a plain-http proxy reads the whole request anyway.
            netloc = parts.netloc.rpartition("@")[2]
            target = f"{parts.scheme.lower()}://{netloc}{target}"
            if proxy.authorization is not None:
                headers["Proxy-Authorization"] = proxy.authorization
        try:
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
            if proxy is not None and response.status == 407:
                reason = _proxy_refusal(proxy, 407, response.reason)
                raise FetchFailed(reason, temporary=True)
            return self._answer(
                response, conditional=etag is not None or last_modified is not None
            )
        except FetchFailed as exc:
            if proxy is not None and not exc.reason.startswith("proxy "):
                exc.reason += f" (through the proxy {proxy.shown})"
            raise
        finally:
            conn.close()

    def _answer(
        self, response: http.client.HTTPResponse, *, conditional: bool
    ) -> Answer | str:
        status = response.status
        if status in REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                reason = f"{status_text(status)} without a Location"
                raise FetchFailed(reason, temporary=False)
            return location
        if status == 304:
            if not conditional:
                reason = f"{status_text(status)} to a request that was not conditional"
                raise FetchFailed(reason, temporary=False)
            return Answer(None)
        if status != 200:
            temporary = is_temporary(status)
            retry = (
                retry_after_s(response.getheader("Retry-After"), now=time.time())
                if temporary
                else None
            )
            raise FetchFailed(
                status_text(status), temporary=temporary, retry_after_s=retry
            )
        encoding = (response.getheader("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchFailed(
                f"a compressed answer (Content-Encoding {shown(encoding)}), though "
                "hotcfg asks for none",
                temporary=False,
            )
        problem = content_type_problem(response.getheader("Content-Type"), self.fmt)
        if problem is not None:
            raise FetchFailed(problem, temporary=False)
        declared = response.length  # Content-Length; None when chunked or absent
        if declared is not None and declared > self.max_bytes:
            raise FetchFailed(
                f"the answer is {declared} bytes (Content-Length), over the "
                f"{self.max_bytes}-byte limit",
                temporary=False,
            )
        if declared is not None and response.will_close:
            # http.client stops at Content-Length and drops what follows. A
            # server that ends the connection after its answer (hotcfg asks
            # it to) says where the body ends by closing: read to there, so
            # a body longer than declared is seen, not cut to a prefix.
            response.length = None
        body = self._read_body(response, declared)
        if declared is not None and len(body) < declared:
            # http.client's read(n) returns what came before the end of the
            # stream without complaint: count.
            raise FetchFailed(
                f"the body was cut short: {len(body)} of {declared} bytes "
                "(Content-Length)",
                temporary=True,
            )
        if not body.strip():
            raise FetchFailed("the answer's body is empty", temporary=False)
        if looks_like_html(body):
            reason = f"an HTML page, not a {self.fmt.upper()} document"
            raise FetchFailed(reason, temporary=False)
        return Answer(
            body,
            etag=response.getheader("ETag"),
            last_modified=response.getheader("Last-Modified"),
        )

    def _read_body(
        self, response: http.client.HTTPResponse, declared: int | None
    ) -> bytes:
        """The body, refused as soon as it grows past the cap, or past the
        ``declared`` Content-Length: never a prefix of what was sent."""
        cap = self.max_bytes if declared is None else declared
        chunks: list[bytes] = []
        total = 0
        while True:
            part = response.read(min(1 << 16, cap + 1 - total))
            if not part:
                return b"".join(chunks)
            chunks.append(part)
            total += len(part)
            if total > cap and declared is not None:
                raise FetchFailed(
                    f"the body is longer than the {declared} bytes its "
                    "Content-Length declares; no part of it is taken",
                    temporary=False,
                )
            if total > cap:
                raise FetchFailed(
                    f"the answer is over the {self.max_bytes}-byte limit",
                    temporary=False,
                )
