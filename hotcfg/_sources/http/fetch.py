"""Master side: one bounded, capped, checked GET of a URL, for ``source``.

Every connect, read and write of a fetch gets the time left until one
deadline (``HOTCFG_HTTP_TIMEOUT_MS``, for connecting, TLS, every redirect,
the headers and the body): ``attempt`` holds that deadline and the fetch's
fork-safe sockets. ``http.client`` speaks HTTP/1.1 over those sockets;
certificates and host names are verified (``HOTCFG_HTTP_CA_FILE`` or the
system's store); bodies are capped at ``HOTCFG_MAX_BYTES`` and never taken
in part (one shorter or longer than its ``Content-Length`` is refused); at
most five redirects are followed, and neither the token nor the validators
of the body held go to an origin other than their own; a URL a reason
names has its query values hidden. What an answer means (content types,
temporary statuses, Retry-After, redirects) is ``rules``, pure; the
translation of transport errors into reasons is here, at the boundary.

Proxies (``proxies`` chooses one per URL, from the environment): an http
URL is asked of the proxy in absolute form (``GET http://host/path``); an
https one goes through a tunnel (``tunnel``). The proxy's connect and the
CONNECT exchange share the fetch's deadline. A proxy that cannot be
reached or refuses (407, 502, ...) makes the fetch fail as temporary, as a
server that cannot be reached does: the reason names the proxy, its
credentials hidden.

Imports ``files`` and ``locations`` of ``_sources``, and ``attempt``,
``failures``, ``tunnel``, ``rules`` and ``proxies``; never a source,
``_master`` or ``_worker``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..._errors import SourceError
from ..._version import __version__
from ..files import read_capped
from ..locations import redact_url
from .attempt import Attempt, BoundedSocket, open_socket
from .failures import FetchCancelled, FetchFailed
from .proxies import Proxy, ProxyEnv, ProxyError
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
from .tunnel import AtProxy, proxy_refusal, tunnel

_TOKEN_MAX_BYTES = 16384


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
            sock = open_socket(self.host, self.port, attempt)
        else:
            try:
                sock = open_socket(proxy.host, proxy.port, attempt)
                if self._context is not None:
                    tunnel(sock, self.host, self.port, proxy, attempt)
            except (FetchCancelled, FetchFailed):
                raise
            except Exception as exc:
                raise AtProxy(exc, proxy) from exc
        if self._context is not None:
            sock = attempt.wrap(sock, self._context, self.host)
            # The whole handshake is bounded by the socket's timeout (one
            # deadline in CPython's do_handshake): the time left.
            sock.settimeout(attempt.left())
            sock.do_handshake()
        # http.client uses only sendall, makefile and close (BoundedSocket).
        self.sock = BoundedSocket(sock, attempt)


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
            except AtProxy as exc:
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
                reason = proxy_refusal(proxy, 407, response.reason)
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
