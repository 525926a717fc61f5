"""The HTTP source and a real publisher against a real local HTTP server."""

import logging
import os
import textwrap
import threading

import pytest

from hotcfg._errors import ConfigError, ParseError, SourceError, UnreachableError
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.http.attempt import Attempt
from hotcfg._sources.http.failures import FetchFailed
from hotcfg._sources.http.source import HttpPoll, Polled
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from tests.httpserver import Reply, ScriptedServer, SilentServer, good, tls_pair
from tests.waiting import wait_for

from . import run_script

INTERVAL_MS = 100
TIMEOUT_MS = 1000


def settings_for(url, **extra):
    values = {"poll_interval_ms": INTERVAL_MS, "http_timeout_ms": TIMEOUT_MS}
    return Settings.resolve({}, source=url, **(values | extra))


class Polling:
    """A publisher polling ``url`` and a reader on its segment; ``loads``
    counts the documents read and parsed while polling (every call of
    ``on_change`` loads, and so parses, the source once)."""

    def __init__(self, url, **extra):
        self.settings = settings_for(url, **extra)
        self.source = source_for(self.settings)
        self.segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="h")
        self.publisher = Publisher(
            self.source, self.segment, self.settings, keep_history=False
        )
        self.watching = None
        self.reader = None
        self.loads = 0
        try:
            self.publisher.start()
            self.watching = self.source.watch(self._on_change, self.settings)
            self.reader = Reader(self.segment.view())
        except BaseException:
            self.close()
            raise

    def _on_change(self):
        self.loads += 1
        self.publisher.publish_from_source()

    def value(self):
        return self.reader.refresh().get("value")

    def wait_value(self, value):
        wait_for(lambda: self.value() == value, f"value={value}")

    def error(self):
        return layout.read_header(self.segment.buffer).error or ""

    def wait_error(self, text):
        wait_for(lambda: text in self.error(), f"{text!r} recorded")
        return self.error()

    def close(self):
        if self.watching is not None:
            self.watching.stop()
        if self.reader is not None:
            self.reader.close()
        self.publisher.close()


@pytest.fixture
def polled(http_server):
    http_server.answer(good("value: one\n", etag='"v1"'))
    polled = Polling(http_server.url())
    yield polled
    polled.close()


def test_an_etag_makes_polls_conditional_and_a_304_is_not_parsed(http_server):
    modified = "Wed, 21 Oct 2015 07:28:00 GMT"
    http_server.answer(good("value: one\n", etag='"v1"', last_modified=modified))
    polled = Polling(http_server.url())
    try:
        assert polled.value() == "one"
        first = http_server.count()
        wait_for(lambda: http_server.count() >= first + 3, "three more polls")
        later = http_server.requests()[first:]
        assert all(seen.headers.get("if-none-match") == '"v1"' for seen in later)
        assert all(seen.headers.get("if-modified-since") == modified for seen in later)
        assert {seen.status for seen in later} == {304}
        assert polled.loads == 0
        assert polled.publisher.generation == 1

        # Changed: one 200, one parse, one publish; then conditional on v2.
        http_server.answer(good("value: two\n", etag='"v2"'))
        polled.wait_value("two")
        assert polled.publisher.generation == 2
        after = http_server.count()
        wait_for(lambda: http_server.count() >= after + 2, "two more polls")
        assert http_server.requests()[-1].headers.get("if-none-match") == '"v2"'
        assert polled.loads == 1
    finally:
        polled.close()


def test_the_same_bytes_again_are_neither_parsed_nor_published(http_server):
    # No validators: every poll is a full 200.
    http_server.answer(good("value: one\n"))
    polled = Polling(http_server.url())
    try:
        first = http_server.count()
        wait_for(lambda: http_server.count() >= first + 3, "three more polls")
        assert {seen.status for seen in http_server.requests()[first:]} == {200}
        assert polled.loads == 0
        # Other bytes, same document: read and parsed once, and the
        # publisher's digest check publishes nothing.
        http_server.answer(good("value:   one   # same\n"))
        wait_for(lambda: polled.loads == 1, "the new bytes read")
        assert polled.publisher.generation == 1
        assert polled.error() == ""
    finally:
        polled.close()


BIG = 4096

# (what the server answers, a part of the reason, the error's class)
BAD_ANSWERS = {
    "404": (Reply(404, b"gone\n", "text/plain"), "HTTP 404 Not Found", SourceError),
    "500": (
        Reply(500, b"oops\n", "text/plain"),
        "HTTP 500 Internal Server",
        UnreachableError,
    ),
    "html-200": (
        Reply(
            body=b"<!DOCTYPE html><html><body>Error</body></html>", content_type=None
        ),
        "an HTML page, not a YAML document",
        SourceError,
    ),
    "text/html": (
        Reply(body=b"value: sneaky\n", content_type="text/html; charset=utf-8"),
        "an HTML page, not a YAML document",
        SourceError,
    ),
    "wrong-type": (
        Reply(body=b"value: x\n", content_type="image/png"),
        "content type image/png is not a YAML document",
        SourceError,
    ),
    "empty": (Reply(body=b""), "the answer's body is empty", SourceError),
    "cut-short": (
        Reply(body=b"value: cut\n", content_length=100),
        "the body was cut short: 11 of 100 bytes",
        UnreachableError,
    ),
    "broken-chunks": (
        Reply(body=b"value: cut\n", broken_chunks=True),
        "the chunked stream broke off",
        UnreachableError,
    ),
    "over-cap-declared": (
        Reply(body=b"value: x\n", content_length=BIG + 1),
        f"the answer is {BIG + 1} bytes (Content-Length), over the {BIG}-byte",
        SourceError,
    ),
    "over-cap-growing": (
        Reply(body=b"value: x\n" + b"#" * BIG, chunked=True),
        f"the answer is over the {BIG}-byte limit",
        SourceError,
    ),
    "trickle": (
        # 30 s of body at one byte per 200 ms: only the deadline ends it.
        Reply(body=b"value: slow\n" + b"#" * 150, trickle_s=0.2),
        f"no complete answer within {TIMEOUT_MS} ms",
        UnreachableError,
    ),
    "unparsable": (
        good("value: [unclosed\n"),
        "app.yaml:2:1: invalid YAML",
        ParseError,
    ),
}


@pytest.mark.parametrize("bad", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_keeps_the_last_good_and_says_why(http_server, bad):
    reply, reason, kind = bad
    http_server.answer(good("value: one\n"))
    polled = Polling(http_server.url(), max_bytes=BIG)
    try:
        http_server.answer(reply)
        error = polled.wait_error(reason)
        assert error.startswith(http_server.url() + ":")
        assert polled.value() == "one"
        assert polled.publisher.generation == 1
        with pytest.raises(ConfigError) as raised:
            polled.source.load()  # while polling: the last fetch's outcome
        assert type(raised.value) is kind

        http_server.answer(good("value: fixed\n"))
        polled.wait_value("fixed")
        assert polled.error() == ""
    finally:
        polled.close()


def test_a_body_longer_than_its_content_length_is_never_published_in_part(
    http_server,
):
    """Content-Length: 10, then the whole body and the connection closed:
    the first 10 bytes, ``greeting: ``, parse (as ``{"greeting": None}``)."""
    http_server.answer(good("value: one\n"))
    polled = Polling(http_server.url())
    try:
        body = b"greeting: hello\nvalue: two\n"
        http_server.answer(Reply(body=body, content_length=10))
        wait_for(
            lambda: polled.error() or polled.publisher.generation > 1,
            "the answer refused or published",
        )
        assert polled.publisher.generation == 1
        assert polled.value() == "one"
        assert polled.error() == (
            f"{http_server.url()}: the body is longer than the 10 bytes its "
            "Content-Length declares; no part of it is taken"
        )
        with pytest.raises(SourceError) as raised:
            polled.source.load()
        assert not isinstance(raised.value, UnreachableError)

        http_server.answer(good("value: fixed\n"))
        polled.wait_value("fixed")
    finally:
        polled.close()


def test_retry_after_is_waited_for(http_server, polled):
    http_server.answer(
        Reply(500, b"busy\n", "text/plain", headers={"Retry-After": "2"})
    )
    wait_for(
        lambda: len([s for s in http_server.requests() if s.status == 500]) >= 2,
        "a second try after the 500",
    )
    tries = [s for s in http_server.requests() if s.status == 500]
    assert tries[1].at - tries[0].at >= 2.0
    assert polled.value() == "one"
    assert "HTTP 500" in polled.error()


def test_failures_back_off(http_server, polled):
    http_server.answer(Reply(503, b"down\n", "text/plain"))
    wait_for(
        lambda: len([s for s in http_server.requests() if s.status == 503]) >= 4,
        "four failed polls",
    )
    tries = [s.at for s in http_server.requests() if s.status == 503]
    # interval x 2^3, jittered to at least half: 0.4 s after the third.
    assert tries[3] - tries[2] >= 8 * INTERVAL_MS / 1000 * 0.5
    http_server.answer(good("value: back\n"))
    polled.wait_value("back")


def test_the_backoff_resets_after_a_success():
    source = source_for(settings_for("http://127.0.0.1:9/app.yaml"))
    polling = HttpPoll(source, on_change=lambda: None)  # not started: no thread
    interval = INTERVAL_MS / 1000
    failed = Polled(True, FetchFailed("HTTP 503", temporary=True))
    delays = [polling._next_delay(failed) for _ in range(6)]
    assert delays[5] >= interval * 2**6 / 2
    assert polling._next_delay(Polled(True)) == interval
    assert polling._next_delay(failed) <= interval * 2  # the first failure again


def test_a_reload_fetches_at_once_and_reads_even_the_same_content(http_server, polled):
    count = http_server.count()
    polled.watching.notice()  # Gunicorn's HUP, through the publisher
    wait_for(lambda: polled.loads == 1, "the reload read")
    assert http_server.count() > count
    assert polled.publisher.generation == 1


def test_a_slow_publish_does_not_stall_polling(http_server):
    release = threading.Event()
    publishing = threading.Event()
    http_server.answer(good("value: one\n"))
    polled = Polling(http_server.url())
    try:

        def slow_publish():
            publishing.set()
            release.wait(30)  # a validator that takes its time
            polled.publisher.publish_from_source()

        polled.watching._on_change = slow_publish
        http_server.answer(good("value: two\n"))
        wait_for(publishing.is_set, "the publish started")
        count = http_server.count()
        wait_for(lambda: http_server.count() >= count + 3, "polls meanwhile")
        http_server.answer(good("value: three\n"))
        wait_for(lambda: http_server.count() >= count + 5, "the newest fetched")
        release.set()
        # The publish that was waiting reads the newest answer.
        polled.wait_value("three")
    finally:
        release.set()
        polled.close()


def test_redirects_are_followed_five_times_and_a_loop_is_named(http_server):
    for n in range(5):
        http_server.answer(Reply(302, headers={"Location": f"/r{n + 1}"}), f"/r{n}")
    http_server.answer(good("value: redirected\n"), "/r5")
    source = source_for(settings_for(http_server.url("/r0"), format="yaml"))
    assert source.load() == {"value": "redirected"}

    http_server.answer(Reply(302, headers={"Location": "/r0"}), "/r5")
    with pytest.raises(SourceError, match=r"redirect loop: .*/r0 -> .*/r5 -> .*/r0$"):
        source.load()

    http_server.answer(Reply(301, headers={"Location": "/r6"}), "/r5")
    http_server.answer(good("value: too far\n"), "/r6")
    with pytest.raises(SourceError, match="more than 5 redirects"):
        source.load()


def test_the_token_is_sent_read_at_each_fetch_and_never_shown(
    http_server, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-t0ken\n")
    other = ScriptedServer()  # another origin: it never sees the token
    try:
        http_server.answer(good("value: one\n"))
        polled = Polling(http_server.url(), http_token_file=str(token_file))
        try:
            seen = http_server.requests()[-1].headers
            assert seen["authorization"] == "Bearer s3cret-t0ken"

            token_file.write_text("r0tated\n")
            count = http_server.count()
            wait_for(lambda: http_server.count() > count + 1, "a poll after")
            assert http_server.requests()[-1].headers["authorization"] == (
                "Bearer r0tated"
            )

            http_server.answer(Reply(401, b"who?\n", "text/plain"))
            errors = [polled.wait_error("HTTP 401 Unauthorized")]

            token_file.write_text("bad token\n")
            errors.append(polled.wait_error("the token holds spaces"))

            token_file.write_text("r0tated\n")
            other.answer(good("value: elsewhere\n"))
            http_server.answer(Reply(302, headers={"Location": other.url()}))
            polled.wait_value("elsewhere")
            assert "authorization" not in other.requests()[-1].headers
        finally:
            polled.close()
    finally:
        other.stop()
    assert "rejected" in caplog.text  # the failures were logged...
    for secret in ("s3cret", "r0tated", "bad token"):
        assert secret not in caplog.text  # ...without the token
        assert not any(secret in error for error in errors)


def test_validators_and_the_token_stay_with_their_origin(http_server, tmp_path):
    """The configured server (one origin) redirects to another port (another
    origin): neither its ETag and Last-Modified nor the token go there, and
    the other origin's own validators go back to it alone."""
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-t0ken\n")
    token_file.chmod(0o600)
    modified = "Wed, 21 Oct 2015 07:28:00 GMT"
    other = ScriptedServer()
    try:
        http_server.answer(good("value: one\n", etag='"a1"', last_modified=modified))
        polled = Polling(http_server.url(), http_token_file=str(token_file))
        try:
            other.answer(good("value: two\n", etag='"b1"'))
            http_server.answer(Reply(302, headers={"Location": other.url()}))
            polled.wait_value("two")
            wait_for(lambda: other.count() >= 3, "three polls at the other origin")
            first, *later = other.requests()
            assert first.status == 200
            assert set(first.headers).isdisjoint(
                {"if-none-match", "if-modified-since", "authorization"}
            )
            # Its own ETag goes back to it: conditional, 304.
            assert all(seen.headers.get("if-none-match") == '"b1"' for seen in later)
            assert {seen.status for seen in later} == {304}
            assert not any("authorization" in seen.headers for seen in later)
            # ...and not to the configured origin, which still gets the token.
            since = [s for s in http_server.requests() if s.at > first.at]
            assert since
            for seen in since:
                assert seen.status == 302
                assert "if-none-match" not in seen.headers
                assert "if-modified-since" not in seen.headers
                assert seen.headers["authorization"] == "Bearer s3cret-t0ken"
        finally:
            polled.close()
    finally:
        other.stop()


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)])
def test_a_token_file_readable_by_others_is_a_warning(
    http_server, tmp_path, caplog, mode, warned
):
    caplog.set_level(logging.WARNING, logger="hotcfg")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-t0ken\n")
    token_file.chmod(mode)
    http_server.answer(good("value: one\n"))
    polled = Polling(http_server.url(), http_token_file=str(token_file))
    try:
        assert polled.value() == "one"  # a warning, not a refusal
    finally:
        polled.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    expected = (
        f"hotcfg: HOTCFG_HTTP_TOKEN_FILE {token_file} is readable by other "
        "users (mode 0644); chmod 600 it"
    )
    assert warnings == ([expected] if warned else [])
    assert "s3cret" not in caplog.text


def test_a_token_is_refused_for_plain_http_to_another_host(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t\n")
    settings = settings_for(
        "http://config.example/app.yaml", http_token_file=str(token_file)
    )
    with pytest.raises(ConfigError, match=r"^HOTCFG_HTTP_TOKEN_FILE: .* https only"):
        source_for(settings)


def test_https_certificates_are_verified(tmp_path):
    ca_file, context = tls_pair(tmp_path)
    server = ScriptedServer(tls_context=context)
    try:
        server.answer(good("value: secure\n"))
        trusted = source_for(settings_for(server.url(), http_ca_file=str(ca_file)))
        assert trusted.load() == {"value": "secure"}
        # Verified against the host name too: the cert names 127.0.0.1,
        # not localhost.
        wrong_name = source_for(
            settings_for(server.url(host="localhost"), http_ca_file=str(ca_file))
        )
        with pytest.raises(SourceError, match="certificate not trusted") as raised:
            wrong_name.load()
        assert not isinstance(raised.value, UnreachableError)
        # The system's store does not know the test CA.
        with pytest.raises(SourceError, match="certificate not trusted"):
            source_for(settings_for(server.url())).load()
    finally:
        server.stop()


def test_a_bad_ca_file_is_refused_at_startup(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"^HOTCFG_HTTP_CA_FILE: "):
        source_for(settings_for("https://h/app.yaml", http_ca_file=str(missing)))


def test_the_url_is_checked_at_startup_without_showing_credentials():
    with pytest.raises(ConfigError, match="credentials in the URL") as raised:
        settings_for("https://user:pa55@h/app.yaml")
    assert "pa55" not in str(raised.value)
    for url, reason in [
        ("http:///app.yaml", "names no host"),
        ("https://h:0/app.yaml", "port"),
        ("https://h/app.yaml#top", "fragment"),
        ("https://h/app yaml", "spaces"),
        ("https://h/config", "cannot tell the format"),
    ]:
        with pytest.raises(ConfigError, match=f"^HOTCFG_SOURCE: .*{reason}"):
            settings_for(url)
    kept = settings_for("HTTPS://h/v1/app.json?env=prod")
    assert kept.source == "HTTPS://h/v1/app.json?env=prod"
    assert kept.format == "json"
    assert settings_for("https://h/v1/config", format="toml").format == "toml"


def _master(url, name="cold"):
    """A publisher as the Gunicorn master starts one (history and cache)."""
    settings = settings_for(url)
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name=name)
    return Publisher(source_for(settings), segment, settings, keep_history=True)


def test_an_unreachable_server_at_start_means_the_cache(tmp_path):
    server = ScriptedServer()
    url = server.url()
    try:
        server.answer(good("value: cached\n"))
        first = _master(url)
        assert first.start() == 1
        first.close()
    finally:
        server.stop()  # nothing listens on its port now

    master = _master(url)
    try:
        assert master.start() is not None
        reader = Reader(master.segment.view())
        assert reader.refresh().get("value") == "cached"
        header = layout.read_header(master.segment.buffer)
        assert header.source == f"cache:{url}"
        assert "connection refused; serving the cache from" in header.error
        reader.close()
    finally:
        master.close()


def test_urls_that_differ_only_in_a_query_value_never_share_a_cache(tmp_path):
    """The label hides query values, so it cannot name the files alone: a
    master of ``?env=staging`` started with its server down must not serve
    what ``?env=prod`` cached."""
    server = ScriptedServer()
    url = server.url()
    try:
        server.answer(good("value: prod\n"))
        prod = _master(url + "?env=prod")
        assert prod.start() == 1
        prod.close()
    finally:
        server.stop()  # nothing listens on its port now

    staging = _master(url + "?env=staging")
    try:
        assert staging.cache_path != prod.cache_path
        with pytest.raises(UnreachableError):
            staging.start()  # no cache of its own: nothing to serve
    finally:
        staging.close()


@pytest.mark.parametrize(
    "reply",
    [Reply(404, b"no\n", "text/plain"), Reply(body=b"<html></html>", content_type="")],
    ids=["404", "html"],
)
def test_an_answer_that_says_no_at_start_refuses_even_with_a_cache(http_server, reply):
    http_server.answer(good("value: cached\n"))
    first = _master(http_server.url())
    first.start()
    first.close()
    http_server.answer(reply)
    master = _master(http_server.url())
    try:
        with pytest.raises(SourceError) as raised:
            master.start()
        assert not isinstance(raised.value, UnreachableError)
    finally:
        master.close()


def test_stopping_cuts_a_fetch_in_flight(http_server):
    http_server.answer(good("value: one\n"))
    polled = Polling(http_server.url(), http_timeout_ms=30000)
    try:
        # One byte, then silence: the fetch waits in recv with 30 s left.
        http_server.answer(Reply(body=b"value: slow\n", trickle_s=30))
        count = http_server.count()
        wait_for(lambda: http_server.count() > count, "a stalled fetch")
        polled.watching.stop(timeout_s=5.0)
        # The fetch had 30 s left: only a cancelled one lets the thread end.
        assert not any(t.is_alive() for t in polled.watching._threads)
        assert polled.error() == ""  # a cancelled fetch is no rejection
    finally:
        polled.close()


@pytest.fixture
def silent_server():
    """A port whose TLS handshakes hang (``tests/httpserver.SilentServer``)."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.stop()


def test_stopping_cuts_a_tls_handshake_in_flight(silent_server):
    settings = settings_for(silent_server.url(), http_timeout_ms=30000)
    source = source_for(settings)
    watching = source.watch(lambda: None, settings)
    try:
        wait_for(silent_server.hello_received, "a handshake under way")
        watching.stop(timeout_s=5.0)
        # The handshake had 30 s left: only a cancelled one lets it end now.
        assert not any(t.is_alive() for t in watching._threads)
    finally:
        watching.stop()


def test_a_hanging_tls_handshake_ends_at_the_deadline(silent_server):
    fetcher = source_for(settings_for(silent_server.url())).fetcher
    with (
        Attempt(TIMEOUT_MS / 1000) as attempt,
        pytest.raises(FetchFailed, match=f"within {TIMEOUT_MS} ms") as raised,
    ):
        fetcher.fetch(attempt)
    assert raised.value.temporary
    assert silent_server.hello_received()  # it was the handshake that hung


def test_a_deadline_bounds_the_whole_fetch(http_server):
    http_server.answer(Reply(body=b"value: slow\n" + b"#" * 150, trickle_s=0.2))
    fetcher = source_for(settings_for(http_server.url())).fetcher
    with (
        Attempt(TIMEOUT_MS / 1000) as attempt,
        pytest.raises(FetchFailed, match=f"within {TIMEOUT_MS} ms") as raised,
    ):
        fetcher.fetch(attempt)
    assert raised.value.temporary


FORK_SCRIPT = textwrap.dedent(
    """
    import os, re, sys, threading, time
    from hotcfg._sources.http.attempt import Attempt
    from hotcfg._settings import Settings
    from hotcfg._sources.select import source_for

    url, port, until = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    source = source_for(Settings.resolve({}, source=url, http_timeout_ms=20000))
    attempt = Attempt(20.0)

    def fetch():
        try:
            source.poll(attempt)
        except Exception as exc:
            print(type(exc).__name__, file=sys.stderr)

    fetching = threading.Thread(target=fetch, daemon=True)
    fetching.start()

    def connections():
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            match = re.fullmatch(r"socket:\\[(\\d+)\\]", target)
            if match:
                inodes.add(match.group(1))
        wanted = f"0100007F:{port:04X}"
        with open("/proc/self/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
        return [r[9] for r in rows if r[2] == wanted and r[9] in inodes]

    def hello_waiting():
        # The server's end holds bytes it has not read: our ClientHello, so
        # the fetch is inside its TLS handshake (the server never answers).
        local = f"0100007F:{port:04X}"
        with open("/proc/self/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
        return any(r[1] == local and int(r[4].split(":")[1], 16) for r in rows)

    def ready():
        return connections() and (until == "connected" or hello_waiting())

    deadline = time.monotonic() + 20
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    parent = len(connections())
    pid = os.fork()
    if pid == 0:
        os._exit(len(connections()))
    _, status = os.waitpid(pid, 0)
    attempt.cancel()
    fetching.join()
    print("parent", parent, "child", os.waitstatus_to_exitcode(status))
    """
)


def test_a_worker_forked_during_a_fetch_holds_no_connection(http_server, tmp_path):
    http_server.answer(Reply(body=b"value: slow\n" * 100, trickle_s=0.2))
    output = run_script(
        FORK_SCRIPT,
        tmp_path / "unused.yaml",
        http_server.url(),
        http_server.port,
        "connected",
    )
    assert output == "parent 1 child 0"


def test_a_worker_forked_during_a_tls_handshake_holds_no_connection(
    silent_server, tmp_path
):
    output = run_script(
        FORK_SCRIPT,
        tmp_path / "unused.yaml",
        silent_server.url(),
        silent_server.port,
        "hello-sent",
    )
    assert output == "parent 1 child 0"
