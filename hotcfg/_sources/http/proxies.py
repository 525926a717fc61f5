"""PURE: which proxy, if any, a fetch of a URL goes through, from the
proxy variables of the environment (``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY``), and the words of the ``CONNECT`` exchange.

Corporate networks often reach the outside through an HTTP proxy only,
and say so in those variables; every HTTP client the operators know
(curl, urllib, requests) honours them, so the HTTP source does too.

The environment (docs/guide/proxies.md, decision 0062):

* **Precedence** is urllib's (``urllib.request.getproxies_environment``):
  a lowercase variable wins over its uppercase form, and a lowercase one
  set to the empty string turns the proxy off even when the uppercase one
  is set. When ``REQUEST_METHOD`` is set (a CGI process), the uppercase
  ``HTTP_PROXY`` is ignored: a web server sets ``HTTP_PROXY`` from a
  client's ``Proxy:`` header ("httpoxy"), which would let any client choose
  the proxy.
* **The proxy URL** is ``http://[user:password@]host[:port]`` (the scheme
  may be left out; the port defaults to 80, as urllib's). The user and
  password, percent-decoded, go to the proxy in ``Proxy-Authorization:
  Basic``. An ``https://`` proxy (TLS to the proxy itself) or a SOCKS one
  is refused with the reason: hotcfg speaks plain HTTP to the proxy, and
  TLS end to end through ``CONNECT`` for https URLs.
* **NO_PROXY** (``no_proxy``) is a comma- or space-separated list; a host
  it matches is fetched directly. Entries: ``*`` (every host); a domain
  (``example.com`` or ``.example.com``, also ``*.example.com``: the domain
  and every name under it, never ``badexample.com``); an IP address; a
  CIDR range (``10.0.0.0/8``, ``fd00::/8``); any of those with a port
  (``example.com:8443``, ``[::1]:8080``), which then matches that port
  only (the scheme's port when the URL names none). Matching is
  case-insensitive and ignores a trailing dot; names are never resolved
  (an IP entry matches a URL written with that IP only).

No ``os``, sockets or clock: the environment comes in as a mapping
(``source`` reads ``os.environ`` once, when the master builds the source).
Imports ``locations`` of ``_sources`` (the one redaction) only.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..locations import redact_url

#: The largest answer head to a CONNECT that is read (status line and
#: headers); a proxy sending more is not one.
CONNECT_HEAD_MAX_BYTES = 16384

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyError(ValueError):
    """A proxy variable holds no proxy URL hotcfg can use.

    Attributes:
        variable: its name (``HTTPS_PROXY``), for the error's ``source``.
    """

    def __init__(self, reason: str, variable: str) -> None:
        super().__init__(reason)
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy to go through.

    Attributes:
        host: its host name or address (an IPv6 one without brackets).
        port: its port.
        authorization: the ``Proxy-Authorization`` header's value, or None.
        shown: its URL as messages write it, the credentials hidden
            (``http://***@proxy.example:3128``).
        variable: the environment variable that named it (``HTTPS_PROXY``).
    """

    host: str
    port: int
    authorization: str | None
    shown: str
    variable: str

    def __repr__(self) -> str:
        # Never the credentials, also in a traceback's locals or a debugger.
        return f"Proxy({self.shown!r}, from {self.variable})"


def parse_proxy(text: str, variable: str = "HTTPS_PROXY") -> Proxy:
    """A proxy URL as the environment gives it.

    Raises:
        ProxyError: not ``http://[user:password@]host[:port]``; the reason
            never quotes the credentials.
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw  # urllib's and curl's reading of "proxy:3128"
    shown = redact_url(raw)
    where = f"the proxy {shown}"
    if any(c <= " " or c == "\x7f" for c in raw) or not raw.isascii():
        raise ProxyError(
            "the proxy URL holds spaces, control or non-ASCII characters", variable
        )
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise ProxyError(
            f"{where}: an https:// proxy (TLS to the proxy itself) is not "
            "supported; name the proxy with http:// (https URLs still go "
            "through it encrypted end to end, with CONNECT)",
            variable,
        )
    if scheme != "http":
        raise ProxyError(
            f"{where}: expected an http:// proxy URL, not {scheme}://", variable
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ProxyError(f"{where}: the port is not a number from 1 to 65535", variable)
    host = parts.hostname
    if not host:
        raise ProxyError(f"{where}: the proxy URL names no host", variable)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyError(
            f"{where}: a proxy URL is scheme, host and port only", variable
        )
    authorization = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        authorization = f"Basic {token}"
    return Proxy(host, port or 80, authorization, shown, variable)


def proxy_variables(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{"https": (value, variable name), "no": (...), ...}``: the proxy
    variables of ``env`` with urllib's precedence (the module docstring)."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in env.items():
        if value and name[-6:].lower() == "_proxy":
            found[name[:-6].lower()] = (value, name)
    if "REQUEST_METHOD" in env:
        # httpoxy: a CGI server sets HTTP_PROXY from the client's "Proxy:"
        # header. The lowercase form, which no header becomes, still counts.
        found.pop("http", None)
    for name, value in env.items():
        if name[-6:] == "_proxy" and name == name.lower():
            if value:
                found[name[:-6]] = (value, name)
            else:
                found.pop(name[:-6], None)
    return found


@dataclass(frozen=True, slots=True)
class ProxyEnv:
    """The proxy variables, taken once; :meth:`for_url` chooses per URL.

    Attributes:
        http: the ``http`` proxy's URL and its variable, or None.
        https: the ``https`` one, or None.
        no_proxy: the ``NO_PROXY`` list, parsed.
    """

    http: tuple[str, str] | None = None
    https: tuple[str, str] | None = None
    no_proxy: tuple[NoProxyEntry, ...] = ()

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ProxyEnv:
        found = proxy_variables(env)
        no = found.get("no")
        return cls(
            http=found.get("http"),
            https=found.get("https"),
            no_proxy=parse_no_proxy(no[0]) if no else (),
        )

    def for_url(self, url: str) -> Proxy | None:
        """The proxy a fetch of ``url`` goes through, or None (directly).

        Raises:
            ProxyError: the proxy variable for the URL's scheme does not
                hold a proxy URL hotcfg can use.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        chosen = self.https if scheme == "https" else self.http
        if chosen is None:
            return None
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        if bypassed(host, port, self.no_proxy):
            return None
        return parse_proxy(*chosen)


@dataclass(frozen=True, slots=True)
class NoProxyEntry:
    """One ``NO_PROXY`` entry: everything, a network, or a domain; with a
    port, that port only."""

    everything: bool = False
    network: _IPNetwork | None = None
    domain: str = ""
    port: int | None = None

    def matches(self, host: str, address: _IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.everything:
            return True
        if self.network is not None:
            return address is not None and address in self.network
        return host == self.domain or host.endswith("." + self.domain)


def parse_no_proxy(text: str) -> tuple[NoProxyEntry, ...]:
    """``NO_PROXY``'s entries (separated by commas or spaces); entries that
    are none of the forms (the module docstring) are left out, as other
    clients leave them."""
    entries = []
    for item in text.replace(",", " ").split():
        entry = _entry(item.strip().lower())
        if entry is not None:
            entries.append(entry)
    return tuple(entries)


def _entry(item: str) -> NoProxyEntry | None:
    if item == "*":
        return NoProxyEntry(everything=True)
    network = _network(item)
    if network is not None:
        return NoProxyEntry(network=network)
    port: int | None = None
    if item.startswith("["):  # [v6] or [v6]:port
        inside, close, rest = item[1:].partition("]")
        if not close or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        network = _network(inside)
        if network is None:
            return None
        return NoProxyEntry(network=network, port=int(rest[1:]) if rest else None)
    head, colon, tail = item.rpartition(":")
    if colon and tail.isdigit() and ":" not in head:
        item, port = head, int(tail)
        network = _network(item)
        if network is not None:
            return NoProxyEntry(network=network, port=port)
    domain = item.lstrip("*").lstrip(".").rstrip(".")
    if not domain or ":" in domain or "/" in domain:
        return None
    return NoProxyEntry(domain=domain, port=port)


def _network(text: str) -> _IPNetwork | None:
    """An IP address (a one-address network) or a CIDR range, or None."""
    if not text or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def bypassed(host: str, port: int, entries: tuple[NoProxyEntry, ...]) -> bool:
    """Whether ``NO_PROXY`` (parsed) says ``host:port`` is reached directly.

    ``host`` as ``urlsplit`` gives it (an IPv6 address without brackets)."""
    name = host.lower().rstrip(".")
    try:
        address: _IPAddress | None = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        address = None
    return any(entry.matches(name, address, port) for entry in entries)


def authority(host: str, port: int) -> str:
    """``host:port`` as a CONNECT request and a Host header write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_request(host: str, port: int, proxy: Proxy, user_agent: str) -> bytes:
    """The CONNECT request that asks ``proxy`` for a tunnel to
    ``host:port``."""
    target = authority(host, port)
    lines = [
        f"CONNECT {target} HTTP/1.1",
        f"Host: {target}",
        f"User-Agent: {user_agent}",
    ]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def connect_status(head: bytes) -> tuple[int, str]:
    """The status code and reason phrase of a CONNECT's answer head.

    Raises:
        ValueError: not an HTTP status line.
    """
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    code, _, phrase = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        printable = "".join(c if " " <= c < "\x7f" else "?" for c in line[:60])
        raise ValueError(f"not an HTTP answer to CONNECT ({printable!r})")
    return int(code), "".join(c if " " <= c < "\x7f" else "?" for c in phrase[:60])
