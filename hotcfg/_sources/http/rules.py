"""PURE: what an HTTP answer means to the HTTP source (``source``).

No sockets, no clock, no threads: the time (``now``) and the randomness
(``jitter``) come in as arguments, so every rule is tested alone
(``tests/unit/test_http_rules.py``). The rules (docs/design.md, "HTTP
source"):

* **Content type.** The types that fit the format are accepted, and
  ``text/plain``; so are ``application/octet-stream`` and no
  ``Content-Type`` at all, the default of servers and object stores for a
  suffix they do not know (``.toml`` and ``.yaml`` in older ``mime.types``),
  where the parser decides. ``text/html`` is always refused, and so is a
  body that starts like an HTML document whatever its type: the classic
  error page served with 200.
* **Temporary statuses** (408, 429, 5xx) say the server cannot answer now:
  like no answer at all, they let a master starting meanwhile serve its
  cache. Every other refusal (404, an HTML page, a redirect loop) is the
  server's answer, and a master refuses to start on it.
* **Retry-After** (delta-seconds or an HTTP date) is honoured on those,
  capped at :data:`RETRY_AFTER_MAX_S`; otherwise failures back off
  exponentially from the poll interval to :data:`BACKOFF_MAX_S`, jittered.
* **Redirects**: at most :data:`MAX_REDIRECTS`, never a loop, never from
  https to plain http, only to http(s).

Imports nothing from hotcfg.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable, Sequence
from http import HTTPStatus
from urllib.parse import urldefrag, urljoin, urlsplit

MAX_REDIRECTS = 5
RETRY_AFTER_MAX_S = 600.0
BACKOFF_MAX_S = 60.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# The media types that fit each format, besides text/plain and the untyped
# ones (application/octet-stream, no Content-Type) that fit all of them.
_TYPES = {
    "yaml": ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"),
    "json": ("application/json",),
    "toml": ("application/toml",),
}
# Structured syntax suffixes (RFC 6839, RFC 9512): application/vnd.x+json.
_SUFFIXES = {"yaml": "+yaml", "json": "+json"}
_ANY_FORMAT = ("text/plain", "application/octet-stream")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")
_UTF8 = ("utf-8", "utf8", "us-ascii", "ascii")


def shown(text: str, limit: int = 80) -> str:
    """A server's text (a media type, a URL) made safe to put in a reason:
    printable ASCII only, at most ``limit`` characters."""
    clean = "".join(c if " " <= c < "\x7f" else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def content_type_problem(value: str | None, fmt: str) -> str | None:
    """Why an answer with this ``Content-Type`` is not a ``fmt`` document,
    or None when its type fits (the body still has to parse)."""
    if value is None or not value.strip():
        return None  # untyped: the parser decides (and the HTML sniff)
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media in _HTML_TYPES:
        return f"an HTML page, not a {fmt.upper()} document"
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        charset = charset.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in _UTF8:
            return f"charset {shown(charset)}: hotcfg reads UTF-8 only"
    suffix = _SUFFIXES.get(fmt)
    if (
        media in _TYPES[fmt]
        or media in _ANY_FORMAT
        or (suffix is not None and media.endswith(suffix))
    ):
        return None
    accepted = ", ".join((*_TYPES[fmt], *_ANY_FORMAT))
    return (
        f"content type {shown(media)} is not a {fmt.upper()} document "
        f"(accepted: {accepted})"
    )


def accept_header(fmt: str) -> str:
    """The ``Accept`` header asking for a ``fmt`` document."""
    return ", ".join((*_TYPES[fmt], "text/plain;q=0.5", "*/*;q=0.1"))


def looks_like_html(body: bytes) -> bool:
    """Whether ``body`` starts like an HTML document (after a BOM and
    blank space): no YAML, JSON or TOML config does."""
    head = body[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith(_HTML_STARTS)


def is_temporary(status: int) -> bool:
    """Whether ``status`` says the server cannot answer now (408 Request
    Timeout, 429 Too Many Requests, any 5xx), rather than answering no."""
    return status in (408, 429) or 500 <= status <= 599


def status_text(status: int) -> str:
    """``HTTP 404 Not Found``: the status and its standard phrase (never the
    server's own reason phrase, which is arbitrary text)."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def retry_after_s(value: str | None, *, now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait, at most
    :data:`RETRY_AFTER_MAX_S`; None when absent or not understood.

    Args:
        value: the header: delta-seconds (``120``) or an HTTP date
            (``Wed, 21 Oct 2015 07:28:00 GMT``).
        now: the Unix time now, for a date.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Past the cap whatever it says (and no 4300-digit int conversion).
        seconds = float(text) if len(text) < 12 else RETRY_AFTER_MAX_S
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP dates are GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def next_poll_s(
    *,
    interval_s: float,
    failures: int,
    retry_after_s: float | None = None,
    jitter: float = 1.0,
) -> float:
    """Seconds until the next fetch.

    Args:
        interval_s: the poll interval (``HOTCFG_POLL_INTERVAL_MS``).
        failures: fetches failed in a row (0: the last one succeeded).
        retry_after_s: what the last failure's ``Retry-After`` asked.
        jitter: a random number from 0.5 to 1.0, so masters that failed
            together do not come back together.

    Returns:
        The interval after a success. After a failure: at least what
        Retry-After asked (and at least the interval), spread by up to half
        an interval; else ``interval_s * 2**failures``, jittered to 50-100 %,
        capped at :data:`BACKOFF_MAX_S` (or the interval, if longer), never
        below the interval.
    """
    if failures <= 0:
        return interval_s
    if retry_after_s is not None:
        return max(interval_s, retry_after_s) + (1.0 - jitter) * interval_s
    cap = max(BACKOFF_MAX_S, interval_s)
    return max(interval_s, min(cap, interval_s * 2.0 ** min(failures, 32)) * jitter)


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs have the same scheme, host and port (a bearer token
    is sent only to the origin of the configured URL)."""
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}
    return (
        pa.scheme.lower() == pb.scheme.lower()
        and (pa.hostname or "") == (pb.hostname or "")
        and (pa.port or default.get(pa.scheme.lower()))
        == (pb.port or default.get(pb.scheme.lower()))
    )


def redirect_target(
    chain: Sequence[str], location: str, *, show: Callable[[str], str] = shown
) -> str:
    """Where a redirect leads, the URLs fetched so far being ``chain`` (the
    configured one first).

    Args:
        show: how a reason writes a URL (the source's hides query values:
            a redirect to a presigned URL carries its signature there).

    Raises:
        ValueError: with the reason: a loop (naming the URLs), more than
            :data:`MAX_REDIRECTS`, from https to http, credentials, or not
            an http(s) URL.
    """
    here = chain[-1]
    text = location.strip()
    if not text.isascii() or any(c <= " " or c == "\x7f" for c in text):
        raise ValueError("a redirect to an invalid URL")
    try:
        target = urldefrag(urljoin(here, text)).url
        parts = urlsplit(target)
        port = parts.port  # raises for a port that is not a number
    except ValueError:
        raise ValueError("a redirect to an invalid URL") from None
    if port == 0:
        raise ValueError("a redirect to an invalid URL")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a redirect to a URL that is not http(s): {show(target)}")
    if "@" in parts.netloc:
        raise ValueError("a redirect to a URL with credentials in it")
    if urlsplit(here).scheme.lower() == "https" and parts.scheme.lower() == "http":
        raise ValueError(f"a redirect from https to plain http: {show(target)}")
    if target in chain:
        loop = " -> ".join(show(url) for url in (*chain, target))
        raise ValueError(f"redirect loop: {loop}")
    if len(chain) > MAX_REDIRECTS:
        raise ValueError(
            f"more than {MAX_REDIRECTS} redirects (the next to {show(target)})"
        )
    return target
