"""What an HTTP answer means to the HTTP source (``hotcfg._sources.http.rules``,
pure): content types, Retry-After, the backoff, redirects."""

import email.utils

import pytest

from hotcfg._sources.http.rules import (
    BACKOFF_MAX_S,
    MAX_REDIRECTS,
    RETRY_AFTER_MAX_S,
    content_type_problem,
    is_temporary,
    looks_like_html,
    next_poll_s,
    redirect_target,
    retry_after_s,
    same_origin,
    status_text,
)

FITTING = {
    "yaml": [
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml; charset=utf-8",
        "application/vnd.example.config+yaml",
    ],
    "json": ["application/json", "application/problem+json", "Application/JSON"],
    "toml": ["application/toml"],
}
FOR_EVERY_FORMAT = [
    None,
    "",
    "text/plain",
    "text/plain; charset=UTF-8",
    "application/octet-stream",
]


@pytest.mark.parametrize(
    ("fmt", "value"),
    [(fmt, v) for fmt, values in FITTING.items() for v in values + FOR_EVERY_FORMAT],
)
def test_the_types_that_fit_a_format_are_accepted(fmt, value):
    assert content_type_problem(value, fmt) is None


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml"])
@pytest.mark.parametrize(
    "value", ["text/html", "TEXT/HTML; charset=utf-8", "application/xhtml+xml"]
)
def test_html_is_always_refused_as_an_html_page(fmt, value):
    assert content_type_problem(value, fmt) == (
        f"an HTML page, not a {fmt.upper()} document"
    )


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ("application/json", "yaml"),
        ("application/yaml", "json"),
        ("application/x-yaml", "toml"),
        ("application/xml", "yaml"),
        ("image/png", "json"),
    ],
)
def test_another_format_is_refused_naming_the_accepted_ones(value, fmt):
    problem = content_type_problem(value, fmt)
    assert problem.startswith(f"content type {value} is not a {fmt.upper()} document")
    assert "text/plain" in problem


def test_a_charset_other_than_utf8_is_refused():
    assert content_type_problem("text/plain; charset=utf-8", "yaml") is None
    assert content_type_problem('text/plain; charset="us-ascii"', "yaml") is None
    problem = content_type_problem("text/plain; charset=iso-8859-1", "yaml")
    assert problem == "charset iso-8859-1: hotcfg reads UTF-8 only"


def test_a_servers_text_is_shown_printable_and_short():
    problem = content_type_problem("x/\x1b[31m" + "y" * 200, "yaml")
    assert "\x1b" not in problem
    assert "y" * 100 not in problem


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html></html>",
        b"\xef\xbb\xbf  \n<html lang=en>",
        b"<HEAD><title>502</title>",
        b"\n\n<body>Bad gateway</body>",
    ],
)
def test_a_body_that_starts_like_html_is_html(body):
    assert looks_like_html(body)


@pytest.mark.parametrize(
    "body", [b"value: 1\n", b'{"html": "<html>"}', b"# <html>\nkey = 1\n", b""]
)
def test_a_config_is_not_html(body):
    assert not looks_like_html(body)


@pytest.mark.parametrize(
    ("status", "temporary"),
    [
        *[(408, True), (429, True), (500, True), (503, True), (599, True)],
        *[(400, False), (401, False), (403, False), (404, False), (410, False)],
    ],
)
def test_only_timeouts_throttling_and_server_errors_are_temporary(status, temporary):
    assert is_temporary(status) is temporary


def test_a_status_is_shown_with_its_standard_phrase():
    assert status_text(404) == "HTTP 404 Not Found"
    assert status_text(599) == "HTTP 599"


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("9" * 5000, RETRY_AFTER_MAX_S),  # no int conversion limit
        ("86400", RETRY_AFTER_MAX_S),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # in the past
        (email.utils.formatdate(NOW + 7200, usegmt=True), RETRY_AFTER_MAX_S),
        ("Sun, 06 Nov 1994 08:49:37 -0000", 0.0),
    ],
)
def test_retry_after_seconds_or_a_date_capped(value, seconds):
    assert retry_after_s(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Sun, 99 Foo 1994"])
def test_retry_after_not_understood_is_ignored(value):
    assert retry_after_s(value, now=NOW) is None


def test_a_success_polls_at_the_interval():
    assert next_poll_s(interval_s=2.0, failures=0, jitter=0.5) == 2.0
    assert next_poll_s(interval_s=2.0, failures=0, retry_after_s=30) == 2.0


def test_failures_back_off_exponentially_with_jitter_up_to_a_cap():
    interval = 0.5
    longest = [next_poll_s(interval_s=interval, failures=n) for n in range(1, 12)]
    assert longest[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(longest) == BACKOFF_MAX_S
    shortest = [
        next_poll_s(interval_s=interval, failures=n, jitter=0.5) for n in range(1, 12)
    ]
    assert shortest[:3] == [0.5, 1.0, 2.0]
    assert max(shortest) == BACKOFF_MAX_S / 2
    # Never faster than the interval, whatever the jitter; never past the
    # interval's own length when it is longer than the cap.
    assert next_poll_s(interval_s=5.0, failures=1, jitter=0.5) == 5.0
    assert next_poll_s(interval_s=120.0, failures=9) == 120.0
    assert next_poll_s(interval_s=1.0, failures=10_000) == BACKOFF_MAX_S


def test_retry_after_sets_the_wait_never_below_the_interval():
    assert next_poll_s(interval_s=1.0, failures=1, retry_after_s=30.0) == 30.0
    assert next_poll_s(interval_s=1.0, failures=5, retry_after_s=0.0) == 1.0
    # Spread by up to half an interval, never shortened.
    spread = next_poll_s(interval_s=1.0, failures=1, retry_after_s=30.0, jitter=0.5)
    assert spread == 30.5


URL = "https://config.example/app.yaml"


def test_a_redirect_resolves_relative_to_the_current_url():
    assert (
        redirect_target([URL], "/v2/app.yaml") == "https://config.example/v2/app.yaml"
    )
    assert redirect_target([URL], "other.yaml#x") == "https://config.example/other.yaml"
    assert redirect_target([URL], "https://cdn.example/a") == "https://cdn.example/a"


def test_a_redirect_loop_is_named_with_its_urls():
    chain = [URL, "https://config.example/b"]
    with pytest.raises(ValueError, match=r"^redirect loop: ") as raised:
        redirect_target(chain, "/app.yaml")
    assert str(raised.value) == (
        f"redirect loop: {URL} -> https://config.example/b -> {URL}"
    )


def test_at_most_five_redirects_are_followed():
    chain = [f"https://h/{n}" for n in range(MAX_REDIRECTS)]
    assert redirect_target(chain, "/last") == "https://h/last"  # the fifth
    with pytest.raises(ValueError, match="more than 5 redirects"):
        redirect_target([*chain, "https://h/last"], "/one-more")


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://config.example/app.yaml", "from https to plain http"),
        ("ftp://config.example/app.yaml", "not http"),
        ("file:///etc/passwd", "not http"),
        ("https://user:pw@config.example/", "credentials"),
        ("https://config.example:99999/", "invalid URL"),
        ("/a b", "invalid URL"),
        ("/caf\xe9", "invalid URL"),
    ],
)
def test_a_redirect_elsewhere_than_http_s_or_down_to_http_is_refused(location, reason):
    with pytest.raises(ValueError, match=reason) as raised:
        redirect_target([URL], location)
    assert "pw" not in str(raised.value)


def test_http_may_go_up_to_https():
    assert redirect_target(["http://h/a"], "https://h/a") == "https://h/a"


def test_same_origin_compares_scheme_host_and_port():
    assert same_origin(URL, "https://config.example:443/other")
    assert same_origin("http://h/a", "HTTP://h:80/b")
    assert not same_origin(URL, "http://config.example/app.yaml")
    assert not same_origin(URL, "https://config.example:8443/app.yaml")
    assert not same_origin(URL, "https://cdn.example/app.yaml")
