"""Which proxy a URL goes through (``_sources.http.proxies``, pure)."""

import base64
import ipaddress
import urllib.request
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotcfg._sources.http.proxies import (
    ProxyEnv,
    ProxyError,
    bypassed,
    connect_request,
    connect_status,
    parse_no_proxy,
    parse_proxy,
    proxy_variables,
)
from hotcfg._sources.locations import redact_url


def chosen(env, url):
    proxy = ProxyEnv.from_environ(env).for_url(url)
    return None if proxy is None else (proxy.host, proxy.port, proxy.variable)


# --- precedence -------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://c.example/a.yaml", None),
        (
            {"HTTPS_PROXY": "http://p:3128"},
            "https://c.example/",
            ("p", 3128, "HTTPS_PROXY"),
        ),
        ({"https_proxy": "p:3128"}, "https://c.example/", ("p", 3128, "https_proxy")),
        ({"HTTPS_PROXY": "http://p"}, "https://c.example/", ("p", 80, "HTTPS_PROXY")),
        # Each scheme has its own.
        ({"HTTPS_PROXY": "http://p:1"}, "http://c.example/", None),
        ({"HTTP_PROXY": "http://p:1"}, "https://c.example/", None),
        ({"HTTP_PROXY": "http://p:1"}, "http://c.example/", ("p", 1, "HTTP_PROXY")),
        # Lowercase wins over uppercase, and empty lowercase turns it off.
        (
            {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
            "https://c.example/",
            ("lower", 2, "https_proxy"),
        ),
        (
            {"HTTPS_PROXY": "http://upper:1", "https_proxy": ""},
            "https://c.example/",
            None,
        ),
        # An empty uppercase one is as if unset.
        (
            {"HTTPS_PROXY": "", "https_proxy": "http://l:2"},
            "https://c/",
            ("l", 2, "https_proxy"),
        ),
        # httpoxy: in a CGI process HTTP_PROXY may come from a client's header.
        ({"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}, "http://c/", None),
        (
            {"http_proxy": "http://ok:1", "REQUEST_METHOD": "GET"},
            "http://c/",
            ("ok", 1, "http_proxy"),
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "REQUEST_METHOD": "GET"},
            "https://c/",
            ("p", 1, "HTTPS_PROXY"),
        ),
        # NO_PROXY, either case.
        (
            {"HTTPS_PROXY": "http://p:1", "no_proxy": "c.example"},
            "https://c.example/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "C.Example"},
            "https://c.example/",
            None,
        ),
    ],
)
def test_the_proxy_chosen(env, url, expected):
    assert chosen(env, url) == expected


env_names = st.sampled_from(
    [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "Http_Proxy",
        "REQUEST_METHOD",
        "PATH",
    ]
)


@given(
    st.dictionaries(env_names, st.sampled_from(["", "http://a:1", "http://b:2", "x"]))
)
def test_precedence_is_urllibs(env):
    """The variables taken, against urllib's own reading of them."""
    with mock.patch.dict("os.environ", env, clear=True):
        expected = urllib.request.getproxies_environment()
    assert {k: v for k, (v, _) in proxy_variables(env).items()} == expected


# --- the proxy URL ----------------------------------------------------------


def test_credentials_become_basic_auth_and_are_never_shown():
    proxy = parse_proxy("http://us%65r:p@ss:w%2Frd@proxy.example:3128/")
    assert (proxy.host, proxy.port) == ("proxy.example", 3128)
    assert (
        proxy.authorization == "Basic " + base64.b64encode(b"user:p@ss:w/rd").decode()
    )
    assert proxy.shown == "http://***@proxy.example:3128/"
    assert "p@ss" not in repr(proxy)
    assert "user" not in repr(proxy)

    assert parse_proxy("http://proxy.example:3128").authorization is None
    assert (
        parse_proxy("u:pw@proxy.example:8080").shown == "http://***@proxy.example:8080"
    )
    assert parse_proxy("http://[fd00::1]:3128").host == "fd00::1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("https://u:s3cret@p.example:3128", "an https:// proxy"),
        (
            "socks5://u:s3cret@p.example:1080",
            "expected an http:// proxy URL, not socks5://",
        ),
        ("http://u:s3cret@p.example:99999", "the port is not a number"),
        ("http://u:s3cret@:3128", "names no host"),
        ("http://u:s3cret@p.example:3128/path", "scheme, host and port only"),
        ("http://u:s3 cret@p.example:3128", "spaces, control or non-ASCII"),
    ],
)
def test_a_proxy_url_hotcfg_cannot_use_is_refused_without_its_secret(text, reason):
    with pytest.raises(ProxyError, match=reason) as raised:
        parse_proxy(text, "https_proxy")
    assert "s3cret" not in str(raised.value)
    assert "s3 cret" not in str(raised.value)
    assert raised.value.variable == "https_proxy"


# What a URL may hold unencoded in its credentials, as a redaction reads it:
# no "/" (the end of the host), no space or "|" (the end of the URL).
url_chars = st.characters(
    min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/|"
)


@given(
    user=st.text(url_chars, max_size=12),
    password=st.text(url_chars, min_size=1, max_size=12),
)
def test_redact_url_hides_any_password_written_as_is(user, password):
    """A password written unencoded, "@", ":", "?" and "#" included: the
    client takes the host after the last "@", and so does the redaction."""
    url = f"http://{user}:{password}@proxy.example:3128"
    assert redact_url(url) == "http://***@proxy.example:3128"


def test_connect_request_and_status():
    proxy = parse_proxy("http://u:p@p:1")
    request = connect_request("fd00::2", 443, proxy, "hotcfg/1")
    assert request == (
        b"CONNECT [fd00::2]:443 HTTP/1.1\r\nHost: [fd00::2]:443\r\n"
        b"User-Agent: hotcfg/1\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
    )
    assert b"Proxy-Authorization" not in connect_request(
        "h", 443, parse_proxy("http://p:1"), "x"
    )
    assert connect_status(b"HTTP/1.1 200 Connection established\r\n\r\n") == (
        200,
        "Connection established",
    )
    assert connect_status(b"HTTP/1.0 407 Proxy Authentication Required\r\n") == (
        407,
        "Proxy Authentication Required",
    )
    with pytest.raises(ValueError, match="not an HTTP answer"):
        connect_status(b"SSH-2.0-OpenSSH\r\n\r\n")


# --- NO_PROXY ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "expected"),
    [
        ("*", "anything.example", 443, True),
        ("a.example, *", "b.example", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        (".example.com", "a.b.example.com", 443, True),
        ("*.example.com", "a.example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        ("example.com", "example.com.evil.test", 443, False),
        ("EXAMPLE.com", "Api.Example.COM", 443, True),
        ("example.com.", "example.com", 443, True),
        ("example.com", "example.com.", 443, True),
        ("example.com:8443", "example.com", 8443, True),
        ("example.com:8443", "example.com", 443, False),
        ("10.0.0.1", "10.0.0.1", 80, True),
        ("10.0.0.1", "10.0.0.2", 80, False),
        ("10.0.0.0/8", "10.200.3.4", 80, True),
        ("10.0.0.0/8", "11.0.0.1", 80, False),
        ("10.0.0.1:8080", "10.0.0.1", 8080, True),
        ("10.0.0.1:8080", "10.0.0.1", 80, False),
        ("::1", "::1", 443, True),
        ("[::1]", "::1", 443, True),
        ("[::1]:8443", "::1", 8443, True),
        ("[::1]:8443", "::1", 443, False),
        ("fd00::/8", "fd12:3456::1", 443, True),
        ("fd00::/8", "fe80::1", 443, False),
        ("10.0.0.0/8", "ten.example", 80, False),  # names are never resolved
        ("localhost", "127.0.0.1", 80, False),
        ("", "example.com", 443, False),
        (" , ,", "example.com", 443, False),
        ("a.example b.example", "b.example", 443, True),  # spaces separate too
        ("[::1", "::1", 443, False),  # malformed entries are left out
    ],
)
def test_no_proxy_entries(no_proxy, host, port, expected):
    assert bypassed(host, port, parse_no_proxy(no_proxy)) is expected


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
# A domain ends in a name, not a number: "1.2.3.4" is an address.
domains = st.tuples(
    st.lists(labels, max_size=3),
    st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True),
).map(lambda parts: ".".join([*parts[0], parts[1]]))


@given(
    domain=domains,
    sub=st.lists(labels, max_size=3),
    dot=st.sampled_from(["", ".", "*."]),
    upper=st.booleans(),
)
def test_a_domain_entry_covers_the_domain_and_every_name_under_it(
    domain, sub, dot, upper
):
    host = ".".join([*sub, domain])
    entry = dot + (domain.upper() if upper else domain)
    assert bypassed(host.upper() if not upper else host, 443, parse_no_proxy(entry))


@given(domain=domains, prefix=labels)
def test_a_domain_entry_never_covers_a_name_that_only_ends_like_it(domain, prefix):
    # "badexample.com" is not under "example.com": matches are at a dot.
    assert not bypassed(prefix + domain, 443, parse_no_proxy(domain))


@given(
    entries=st.lists(
        st.one_of(domains, st.just("*"), st.just("10.0.0.0/8")), max_size=5
    ),
    host=domains,
    data=st.data(),
)
def test_the_order_of_the_entries_does_not_matter(entries, host, data):
    shuffled = data.draw(st.permutations(entries))
    assert bypassed(host, 443, parse_no_proxy(",".join(entries))) == bypassed(
        host, 443, parse_no_proxy(" , ".join(shuffled))
    )


@given(
    network=st.one_of(
        st.builds(
            ipaddress.IPv4Network,
            st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 32)),
            strict=st.just(False),
        ),
        st.builds(
            ipaddress.IPv6Network,
            st.tuples(st.integers(0, 2**128 - 1), st.integers(16, 128)),
            strict=st.just(False),
        ),
    ),
    address=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
)
def test_a_cidr_entry_covers_exactly_its_addresses(network, address):
    entry = str(network)
    host = str(address)
    assert bypassed(host, 80, parse_no_proxy(entry)) == (
        address.version == network.version and address in network
    )


@given(port=st.integers(1, 65535), asked=st.integers(1, 65535), domain=domains)
def test_an_entry_with_a_port_covers_that_port_only(port, asked, domain):
    assert bypassed(domain, asked, parse_no_proxy(f"{domain}:{port}")) == (
        port == asked
    )


def test_a_url_without_a_port_is_matched_on_its_schemes():
    env = {
        "HTTPS_PROXY": "http://p:1",
        "HTTP_PROXY": "http://p:1",
        "NO_PROXY": "c.example:443",
    }
    assert chosen(env, "https://c.example/a.yaml") is None
    assert chosen(env, "https://c.example:443/a.yaml") is None
    assert chosen(env, "http://c.example/a.yaml") == ("p", 1, "HTTP_PROXY")
