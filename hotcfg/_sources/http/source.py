"""Master side: a document at an http(s) URL, polled.

``HOTCFG_SOURCE=https://config.example/app.yaml``. The master GETs the URL
every ``HOTCFG_POLL_INTERVAL_MS`` (``fetch``: one deadline per fetch,
a size cap, verified certificates, at most five redirects), sending the
``ETag`` and ``Last-Modified`` of the last good answer (``If-None-Match``,
``If-Modified-Since``) to the origin that gave them: a 304 costs no parse,
and a 200 with the bytes held already calls nobody (docs/design.md, "HTTP
source").

The source's label and location are the URL with its query values hidden
(``locations.redact_url``): whatever names the source (the segment, the
history, ``status``, logs, errors, the fleet record) never holds a
presigned URL's signature. Only the fetcher has the URL as written.

Every bad answer is a rejection with its reason, naming the URL: the
publisher keeps the last good generation and ``hotcfg status`` shows the
reason. No answer in time, a temporary status (408, 429, 5xx) or a body cut
short is an :class:`UnreachableError` (a master starting meanwhile serves
its cache); anything else the server answered is a :class:`SourceError`.
While fetches fail, polls back off (exponential from the interval to a
minute, jittered, or as Retry-After asks, capped at ten minutes); the first
success resets it.

Proxies: the proxy variables (``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY``, lowercase forms; ``proxies``) are read once, when the master
makes the source, like every setting: a running process's environment
does not change from outside, so reading it at each fetch would only
cost, and one reading at start gives one answer to "which proxy?" for the
master's life (logged once). The proxy is chosen per URL from that reading,
so a redirect to a host in ``NO_PROXY`` goes there directly. A proxy URL
hotcfg cannot use (``https://``, SOCKS, no host) for the configured URL
stops the master at start, naming the variable; a plain-http URL with a
bearer token is refused when it would go through a proxy (the token
would cross it in clear text).

Threads (master only): ``hotcfg-http`` polls and records the newest answer;
``hotcfg-publisher`` calls ``on_change`` with it, so a slow validator never
delays a fetch, and the next publish validates the newest answer.

Fork story: the source holds a body, its validators and the last failure,
never a connection (``attempt`` closes a child's copies of the sockets
of a fetch in flight); the threads do not exist in a child.

Must not be imported by the worker's request path; ``_sources.select``
imports it only when the source is an http(s) URL. Imports ``base``,
``files``, ``locations``, ``follower`` and its own ``fetch``, ``attempt``,
``failures``, ``proxies`` and ``rules`` of ``_sources``; never ``select``,
``_master`` or ``_worker``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..._errors import ConfigError, SourceError, UnreachableError
from ..._settings import Settings
from ..base import OneDocument
from ..files import load_document, warn_if_others_read
from ..follower import Follower
from ..locations import redact_url
from .attempt import Attempt
from .failures import FetchCancelled, FetchFailed
from .fetch import Answer, Fetcher
from .proxies import ProxyEnv, ProxyError
from .rules import next_poll_s

_logger = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Polled:
    """One poll's outcome: whether what :meth:`HttpSource.load` gives (a
    document or a reason) changed, and the failure, if it failed."""

    changed: bool
    failed: FetchFailed | None = None


class HttpSource(OneDocument):
    """A YAML, JSON or TOML document at an http(s) URL.

    It holds the last good answer's body and validators, and the last
    fetch's failure; never a connection.

    Args:
        fetcher: what fetches the URL.
        interval_s: the poll interval.
    """

    def __init__(self, fetcher: Fetcher, *, interval_s: float = 1.0) -> None:
        self.fetcher = fetcher
        self.interval_s = interval_s
        # Every name of the source is made here, redacted: the fetch alone
        # uses the URL as written (a presigned URL's signature, a token in
        # its query).
        self._shown = redact_url(fetcher.url)
        self._lock = threading.Lock()
        self._held: Answer | None = None  # the last good 200: body, validators
        self._problem: tuple[str, bool] | None = None  # reason, temporary
        self._watching = False
        self._started = 0  # polls started, and the last one recorded
        self._recorded = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpSource:
        """The source ``settings`` name (a checked URL, with a format).

        Raises:
            ConfigError: a token for a plain-http URL that is not loopback
                or that goes through a proxy; a CA bundle that cannot be
                loaded; a proxy variable for the URL that names no proxy
                hotcfg can use.
        """
        assert settings.source is not None
        assert settings.format is not None
        url = settings.source
        parts = urlsplit(url)
        proxies = ProxyEnv.from_environ(os.environ)  # once: the module docstring
        try:
            proxy = proxies.for_url(url)
        except ProxyError as exc:
            raise ConfigError(str(exc), source=exc.variable) from None
        if (
            settings.http_token_file
            and proxy is not None
            and parts.scheme.lower() != "https"
        ):
            raise ConfigError(
                f"a bearer token would cross the proxy {proxy.shown} ("
                f"{proxy.variable}) in clear text; use https, or add the host "
                "to NO_PROXY",
                source="HOTCFG_HTTP_TOKEN_FILE",
            )
        if (
            settings.http_token_file
            and parts.scheme.lower() != "https"
            and not _is_loopback(parts.hostname or "")
        ):
            raise ConfigError(
                "a bearer token is sent over https only (or to a loopback "
                "address), never in clear text",
                source="HOTCFG_HTTP_TOKEN_FILE",
            )
        try:
            fetcher = Fetcher(
                url,
                settings.format,
                settings.max_bytes,
                timeout_s=settings.http_timeout_ms / 1000.0,
                token_file=settings.http_token_file,
                ca_file=settings.http_ca_file,
                proxies=proxies,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the CA bundle {settings.http_ca_file}: "
                f"{getattr(exc, 'strerror', None) or exc}",
                source="HOTCFG_HTTP_CA_FILE",
            ) from exc
        if settings.http_token_file:
            warn_if_others_read("HOTCFG_HTTP_TOKEN_FILE", settings.http_token_file)
        if proxy is not None:
            _logger.info(
                "hotcfg: fetching %s through the proxy %s (%s)",
                redact_url(url),
                proxy.shown,
                proxy.variable,
            )
        return cls(fetcher, interval_s=settings.poll_interval_ms / 1000.0)

    @property
    def label(self) -> str:
        return self._shown

    @property
    def location(self) -> str:
        return self._shown

    @property
    def fmt(self) -> str:
        return self.fetcher.fmt

    @property
    def keeps_cache(self) -> bool:
        """Yes: a master must start when the server is down (from its cache)."""
        return True

    def load(self) -> dict[str, Any]:
        """The document: fetched now, or while polling the last answer.

        Raises:
            UnreachableError: no answer in time, a temporary status, a body
                cut short.
            SourceError: any other bad answer (a 404, an HTML page, an empty
                body, a wrong content type, over the size cap).
            ConfigError: the body does not parse.
        """
        if not self._watching:
            self.poll(Attempt(self.fetcher.timeout_s))
        with self._lock:
            problem, held = self._problem, self._held
        if problem is not None:
            reason, temporary = problem
            kind = UnreachableError if temporary else SourceError
            raise kind(reason, source=self.location)
        if held is None or held.body is None:  # pragma: no cover - a poll
            raise SourceError("nothing fetched yet", source=self.location)
        return load_document(held.body, fmt=self.fmt, source=self.location)

    def refresh(self) -> None:
        """Fetch now while polling (``Source.refresh``), beside the poll
        thread: of two fetches in flight, the one started last is kept
        (:meth:`poll`). A failure is recorded as any poll's is."""
        if self._watching:
            self.poll(Attempt(self.fetcher.timeout_s))

    def poll(self, attempt: Attempt) -> Polled:
        """Fetch once (conditionally when a body is held) and record the
        outcome, unless a fetch started after this one recorded its own
        first (a :meth:`refresh` beside the poll thread); closes ``attempt``.

        Raises:
            FetchCancelled: ``attempt`` was cancelled.
        """
        with self._lock:
            self._started += 1
            started = self._started
            held = self._held
        try:
            answer = self.fetcher.fetch(attempt, held=held)
        except FetchFailed as exc:
            problem = (exc.reason, exc.temporary)
            with self._lock:
                if started < self._recorded:
                    return Polled(False)  # a newer fetch's outcome stands
                self._recorded = started
                changed, self._problem = self._problem != problem, problem
            return Polled(changed, exc)
        finally:
            attempt.close()
        with self._lock:
            if started < self._recorded:
                return Polled(False)
            self._recorded = started
            changed, self._problem = self._problem is not None, None
            if answer.body is not None:
                old = self._held.body if self._held is not None else None
                changed = changed or answer.body != old
                self._held = answer
        return Polled(changed)

    def watch(self, on_change: Callable[[], object], settings: Settings) -> HttpPoll:
        """Poll from now on, every ``interval_s`` (longer while it fails)."""
        polling = HttpPoll(self, on_change)
        self._watching = True
        polling.start()
        return polling


class HttpPoll(Follower):
    """Two threads (``_sources.follower``): one polls the server, one calls
    ``on_change`` with the newest answer."""

    def __init__(self, source: HttpSource, on_change: Callable[[], object]) -> None:
        super().__init__(source.location, on_change)
        self.source = source
        self._reload = False  # poll at once, then call on_change (a HUP)
        self._attempt: Attempt | None = None
        self._failures = 0  # in a row

    def start(self) -> None:
        self._start(self._poll, "hotcfg-http")
        _logger.info(
            "hotcfg: polling %s every %.0f ms",
            self.source.location,
            self.source.interval_s * 1000,
        )

    def notice(self) -> None:
        with self._cond:
            self._reload = True
            self._cond.notify_all()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            attempt = self._attempt
            self._cond.notify_all()
        if attempt is not None:
            attempt.cancel()  # a fetch in flight returns at once
        self._join(timeout_s)
        self.source._watching = False

    def _poll(self) -> None:
        delay = self.source.interval_s
        while True:
            with self._cond:
                wake = time.monotonic() + delay
                while not (self._stopping or self._reload):
                    left = wake - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._stopping:
                    return
                reload, self._reload = self._reload, False
                attempt = self._attempt = Attempt(self.source.fetcher.timeout_s)
            try:
                polled = self.source.poll(attempt)
            except FetchCancelled:
                return
            except Exception:
                _logger.exception("hotcfg: error polling %s", self.source.location)
                polled = Polled(False, FetchFailed("unexpected error", temporary=True))
            finally:
                with self._cond:
                    self._attempt = None
            delay = self._next_delay(polled)
            if polled.changed or reload:
                with self._cond:
                    self._pending = True
                    self._cond.notify_all()

    def _next_delay(self, polled: Polled) -> float:
        interval = self.source.interval_s
        if polled.failed is None:
            if self._failures:
                _logger.info("hotcfg: %s answers again", self.source.location)
            self._failures = 0
            return interval
        self._failures += 1
        retry = polled.failed.retry_after_s
        delay = next_poll_s(
            interval_s=interval,
            failures=self._failures,
            retry_after_s=retry,
            jitter=random.uniform(0.5, 1.0),
        )
        if self._failures == 1:  # once per outage; the publisher logs the reason
            _logger.info(
                "hotcfg: polling %s again in %.1f s (%s)",
                self.source.location,
                delay,
                "as its Retry-After asked"
                if retry is not None
                else "backing off while it fails",
            )
        return delay
