"""The grammar of source strings: what ``HOTCFG_SOURCE`` may name, and how
a name is shown.

* ``etcd://host:port[,host:port...]/key`` (:func:`parse_etcd`): a key, or
  with a trailing ``/`` a prefix (every key under it, as one mapping).
* ``http(s)://`` URLs (:func:`check_http_url`, :func:`http_origin`).
* Anything else is a file path (made absolute by ``_settings``, which knows
  the directory it is relative to).
* Several sources with `` | `` between them (:func:`check_sources`; the
  split itself is ``_content.layers``'), each layer with its own format
  (:func:`layer_format`).
* :func:`redact_url`, the one redaction of a URL's secrets, which every
  name shown of a source goes through.
* ``host:port`` addresses (:func:`parse_address`), of etcd endpoints and of
  the metrics endpoint.

PURE: takes text, returns values or raises. Must not import ``os``,
``socket``, ``mmap``, ``signal``, ``threading`` or ``time``, nor
``_settings`` (which imports this module), ``_master`` or ``_worker``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._content.layers import layer_name, split_sources
from .._content.loaders import format_for
from .._errors import ConfigError

ETCD_SCHEME = "etcd://"
HTTP_SCHEMES = ("http://", "https://")


@dataclass(frozen=True, slots=True)
class EtcdTarget:
    """What an ``etcd://host:port[,host:port...]/key`` source names."""

    endpoints: tuple[tuple[str, int], ...]
    key: str

    @property
    def is_prefix(self) -> bool:
        """The key ends in ``/``: it names every key under it (one mapping)."""
        return self.key.endswith("/")


def parse_etcd(source: str) -> EtcdTarget:
    """``etcd://a:2379,b:2379/app/config.yaml`` -> its endpoints and key.

    A port may be left out (2379); an IPv6 host is written in brackets.

    Raises:
        ConfigError: not that form, naming ``HOTCFG_SOURCE``.
    """
    try:
        return etcd_target(source)
    except ValueError as exc:
        raise ConfigError(
            f"invalid etcd source {redact_url(source)!r}: {exc}",
            source="HOTCFG_SOURCE",
        ) from None


def etcd_target(source: str) -> EtcdTarget:
    """:func:`parse_etcd`, raising ``ValueError`` (a setting's parser's
    error, which ``_settings`` names with its variable)."""
    rest = source[len(ETCD_SCHEME) :] if source.startswith(ETCD_SCHEME) else ""
    hosts, slash, key = rest.partition("/")
    if not slash or not key.strip("/"):
        raise ValueError("expected etcd://host:port[,host:port...]/key")
    if "@" in hosts or "?" in key or "#" in key:
        raise ValueError("credentials and options are not supported yet")
    endpoints = []
    for item in hosts.split(","):
        text = item.strip()
        if text.endswith("]") or (text and not text.rpartition(":")[2].isdigit()):
            text += ":2379"
        if not text or text.startswith(":"):
            raise ValueError(f"endpoint {item!r} has no host")
        endpoints.append(parse_address(text))
    if ("/" + key).startswith("/hotcfg/"):
        # A master following them would change what it follows with every
        # record it puts.
        raise ValueError("keys under /hotcfg/ are hotcfg's own (the fleet records)")
    return EtcdTarget(tuple(endpoints), "/" + key)


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9109"``, ``"[::1]:9109"`` or ``":9109"`` -> (host, port);
    an empty host is 127.0.0.1, never every interface.

    Raises:
        ValueError: not ``host:port`` with a port from 1 to 65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("expected host:port, such as 127.0.0.1:9109")
    return host.strip("[]") or "127.0.0.1", int(port_text)


def is_http(source: str) -> bool:
    """Whether ``source`` is an ``http://`` or ``https://`` URL."""
    return source[:8].lower().startswith(HTTP_SCHEMES)


def check_http_url(source: str) -> None:
    """Refuse an HTTP source that cannot be fetched as it is written.

    The reasons never quote the URL: one with credentials in it would put
    them in the error, and the error goes to the log.

    Raises:
        ValueError: not http(s), no host, a bad port, credentials, a
            fragment, spaces, control or non-ASCII characters.
    """
    if any(c <= " " or c == "\x7f" for c in source):
        raise ValueError("the URL holds spaces or control characters")
    if not source.isascii():
        raise ValueError(
            "the URL holds non-ASCII characters; percent-encode them (and "
            "write the host in punycode)"
        )
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("expected an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError(
            "credentials in the URL are refused (they would show in logs and "
            "status); put a bearer token in HOTCFG_HTTP_TOKEN_FILE"
        )
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = 0
    if port == 0:
        raise ValueError("the URL's port is not a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.fragment or source.endswith("#"):
        raise ValueError("a fragment (#...) is never sent to the server; remove it")


def http_origin(url: str) -> str:
    """An http(s) URL's origin as it is written in a message:
    ``https://config.example``, with the port unless it is the scheme's.
    Two URLs have the same origin when these are equal (scheme and host in
    lower case, the scheme's port filled in: ``http.rules.same_origin``'s
    rule)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def check_source(text: str) -> None:
    """Refuse an etcd or HTTP source that cannot be read as it is written,
    at startup rather than at the first read (a file may appear later).

    Raises:
        ValueError: why, never quoting a URL.
    """
    if text.startswith(ETCD_SCHEME):
        etcd_target(text)
    elif is_http(text):
        check_http_url(text)


def check_sources(text: str) -> None:
    """``a | b | c``: each layer checked as one source is
    (:func:`check_source`), a failure naming its layer.

    Raises:
        ValueError: why, naming the layer when there are several.
    """
    parts = split_sources(text)
    for number, part in enumerate(parts, 1):
        try:
            check_source(part)
        except ValueError as exc:
            if len(parts) == 1:
                raise
            where = layer_name(number, len(parts), redact_url(part))
            raise ValueError(f"{where}: {exc}") from exc


def format_name(source: str) -> str:
    """The name a source's format is guessed from: an etcd source's key, a
    URL's path, a file's path."""
    if source.startswith(ETCD_SCHEME):
        return parse_etcd(source).key
    if is_http(source):
        return urlsplit(source).path
    return source


def format_of(source: str, name: str) -> str:
    """The format of a source given without ``HOTCFG_FORMAT``: its name's
    suffix, or YAML for an etcd prefix, whose values are small documents
    (``5``, ``on``, ``{a: 1}``) and whose name has no suffix.

    Raises:
        ConfigError: no known suffix.
    """
    if source.startswith(ETCD_SCHEME) and name.endswith("/"):
        return "yaml"
    return format_for(name)


def layer_format(source: str, name: str, fmt: str | None) -> str:
    """A layer's format: its suffix's, else ``fmt`` (``HOTCFG_FORMAT``),
    else YAML for an etcd prefix.

    Raises:
        ConfigError: none of those.
    """
    try:
        return format_for(name)
    except ConfigError:
        if fmt is not None:
            return fmt
        return format_of(source, name)


def redact_url(text: str) -> str:
    """``text`` with what a URL in it may hold of a secret replaced by
    ``***``: the credentials of ``scheme://user:pass@host``, and every query
    value (``?X-Amz-Signature=***&X-Amz-Date=***``; names are kept, and a
    query item without ``=`` is hidden whole). ``text`` is one source or a
    layered one (``a | b``), optionally after a tag (``cache:``): a URL in
    it runs to the next space or ``|``, so redact a URL before putting it
    in a sentence.

    The one redaction: a source's label and location are made with it, so
    the segment, ``status``, the history, the cache, the fleet record, logs
    and errors never hold a presigned URL's signature or a token passed as
    a query value; only the fetch uses the URL as written.
    """
    return _URL.sub(_redacted, text)


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s|]*")
# Up to the last "@" before the first "/": a password may hold "?", "#" or
# "@" (urlsplit, and so every client, takes the host after the last "@").
_CREDENTIALS = re.compile(r"^([^:]*://)[^/]*@")


def _redacted(match: re.Match[str]) -> str:
    url = _CREDENTIALS.sub(r"\1***@", match.group(0))
    head, mark, query = url.partition("?")
    if not mark:
        return head
    return f"{head}?{'&'.join(_redacted_item(item) for item in query.split('&'))}"


def _redacted_item(item: str) -> str:
    """``name=***`` (an empty value stays empty); an item without ``=`` may be
    a token itself: hidden whole."""
    name, equals, value = item.partition("=")
    if not equals:
        return "***" if item else ""
    return f"{name}=***" if value else item
