"""The HTTP source through a real tinyproxy (``tests/tinyproxy.py``), and a
real local HTTP(S) server behind it."""

import logging
import os
import re

import pytest

from hotcfg._errors import ConfigError, SourceError, UnreachableError
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from tests.httpserver import ScriptedServer, SilentServer, good, tls_pair
from tests.waiting import wait_for

TIMEOUT_MS = 1000
USER = "cfg-reader"
PASSWORD = "s3cr_t-pw"  # tinyproxy takes letters, digits, "_", "-", "." only
WRONG = "wr@ng:pw"  # an "@" and a ":" in it, written unencoded in the URL


def settings_for(url, **extra):
    values = {"poll_interval_ms": 100, "http_timeout_ms": TIMEOUT_MS}
    return Settings.resolve({}, source=url, **(values | extra))


def load(url, **extra):
    return source_for(settings_for(url, **extra)).load()


def with_credentials(proxy_url, password):
    return proxy_url.replace("http://", f"http://{USER}:{password}@")


def shown(proxy):
    """How a message names ``proxy`` when its URL holds credentials."""
    return f"http://***@127.0.0.1:{proxy.port}"


def assert_no_secret(*texts):
    for text in texts:
        assert PASSWORD not in text
        assert WRONG not in text
        assert f"{USER}:" not in text


@pytest.fixture
def tls_server(tmp_path):
    ca_file, context = tls_pair(tmp_path)
    server = ScriptedServer(tls_context=context)
    server.ca_file = ca_file
    try:
        yield server
    finally:
        server.stop()


def test_an_http_url_is_asked_of_the_proxy_in_absolute_form(
    http_server, tinyproxy, monkeypatch
):
    proxy = tinyproxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    http_server.answer(good("value: one\n"))
    assert load(http_server.url()) == {"value": "one"}

    gets = proxy.log_lines(f"GET {http_server.url()} HTTP/1.1")
    assert len(gets) == 1, proxy.output()
    # tinyproxy says so in its Via header: it, not hotcfg, reached the server.
    assert "tinyproxy" in http_server.requests()[-1].headers.get("via", "")


def test_an_https_url_goes_through_a_connect_tunnel(tls_server, tinyproxy, monkeypatch):
    proxy = tinyproxy(connect_ports=(tls_server.port,))
    monkeypatch.setenv("https_proxy", proxy.url)
    tls_server.answer(good("value: tunnelled\n"))
    url = tls_server.url()
    assert load(url, http_ca_file=tls_server.ca_file) == {"value": "tunnelled"}

    connects = proxy.log_lines(f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1")
    assert len(connects) == 1, proxy.output()
    # TLS end to end: the proxy never saw the request inside the tunnel.
    assert not proxy.log_lines("): GET ")
    # No Via: the request reached the server inside the tunnel, untouched.
    assert "via" not in tls_server.requests()[-1].headers


def test_no_proxy_sends_a_host_directly(http_server, tinyproxy, monkeypatch):
    proxy = tinyproxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    http_server.answer(good("value: direct\n"))
    for no_proxy in ("127.0.0.1", "127.0.0.0/8", f"127.0.0.1:{http_server.port}", "*"):
        monkeypatch.setenv("NO_PROXY", f"config.example, {no_proxy}")
        assert load(http_server.url()) == {"value": "direct"}
    assert not proxy.log_lines("): GET "), proxy.output()
    assert "via" not in http_server.requests()[-1].headers

    # Another port of the same host is not exempted.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1:1")
    assert load(http_server.url()) == {"value": "direct"}
    assert len(proxy.log_lines("): GET ")) == 1


def test_proxy_credentials_are_sent_and_never_shown(
    http_server, tls_server, tinyproxy, monkeypatch, caplog
):
    proxy = tinyproxy(connect_ports=(tls_server.port,), auth=(USER, PASSWORD))
    http_server.answer(good("value: plain\n"))
    tls_server.answer(good("value: tunnelled\n"))
    caplog.set_level(logging.DEBUG, logger="hotcfg")

    # The right password: both ways work.
    monkeypatch.setenv("HTTP_PROXY", with_credentials(proxy.url, PASSWORD))
    monkeypatch.setenv("HTTPS_PROXY", with_credentials(proxy.url, PASSWORD))
    assert load(http_server.url()) == {"value": "plain"}
    assert load(tls_server.url(), http_ca_file=tls_server.ca_file) == {
        "value": "tunnelled"
    }
    # The proxy took the credentials off the request it passed on.
    assert "proxy-authorization" not in http_server.requests()[-1].headers

    # A wrong one: unreachable (a master starting now serves its cache),
    # the proxy named without the credentials.
    monkeypatch.setenv("HTTP_PROXY", with_credentials(proxy.url, WRONG))
    monkeypatch.setenv("HTTPS_PROXY", with_credentials(proxy.url, WRONG))
    with pytest.raises(UnreachableError) as tunnelled:
        load(tls_server.url(), http_ca_file=tls_server.ca_file)
    # (tinyproxy says 401 to wrong credentials; other proxies say 407.)
    assert re.search(
        rf"https://\S+: proxy {re.escape(shown(proxy))}: HTTP 40[17] \w.*"
        r"\(the proxy refused the credentials in its URL\)$",
        str(tunnelled.value),
    ), str(tunnelled.value)
    # tinyproxy answers a plain request with wrong credentials 401, not 407
    # (with none, 407): a 401 may be the server's own, so it stays the
    # server's refusal, said to have come through the proxy.
    with pytest.raises(SourceError) as plain:
        load(http_server.url())
    assert str(plain.value).endswith(
        f"HTTP 401 Unauthorized (through the proxy {shown(proxy)})"
    )
    assert len(proxy.log_lines("): CONNECT ")) == 2, proxy.output()
    assert len(proxy.log_lines("): GET ")) == 2, proxy.output()
    assert_no_secret(str(plain.value), str(tunnelled.value), caplog.text)

    # None at all: 407 to both.
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(UnreachableError, match="asks for credentials") as plain:
        load(http_server.url())
    assert f"proxy http://127.0.0.1:{proxy.port}: HTTP 407 " in str(plain.value)


def test_a_proxy_that_is_down_is_unreachable_and_a_master_serves_its_cache(
    tls_server, tinyproxy, monkeypatch, caplog
):
    tls_server.answer(good("value: cached\n"))
    url = tls_server.url()
    settings = settings_for(url, http_ca_file=tls_server.ca_file)
    segments = os.environ["HOTCFG_SEGMENT_DIR"]

    def master(name):
        segment = Segment.create(segments, name=name)
        return Publisher(source_for(settings), segment, settings, keep_history=True)

    proxy = tinyproxy(connect_ports=(tls_server.port,), auth=(USER, PASSWORD))
    monkeypatch.setenv("HTTPS_PROXY", with_credentials(proxy.url, PASSWORD))
    first = master("first")
    assert first.start() == 1  # through the proxy; cached
    first.close()
    assert proxy.log_lines("): CONNECT ")
    proxy.stop()  # nothing listens on its port now

    caplog.set_level(logging.DEBUG, logger="hotcfg")
    with pytest.raises(UnreachableError) as raised:
        source_for(settings).load()
    assert str(raised.value).endswith(f"proxy {shown(proxy)}: connection refused")

    cold = master("cold")
    try:
        assert cold.start() is not None
        reader = Reader(cold.segment.view())
        assert reader.refresh().get("value") == "cached"
        reader.close()
        header = layout.read_header(cold.segment.buffer)
        assert header.source == f"cache:{url}"
        assert (
            f"{url}: proxy {shown(proxy)}: connection refused; serving the cache from"
            in header.error
        )
        assert_no_secret(header.error, header.source, caplog.text)
    finally:
        cold.close()
    # Nothing hotcfg wrote (segments, history, cache) holds the password.
    for root, _, names in os.walk(segments):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                assert PASSWORD.encode() not in f.read(), name


def test_the_deadline_covers_the_proxy_and_its_connect(tls_server, monkeypatch):
    """A proxy that accepts and never answers CONNECT: cut at the fetch's
    one deadline, named."""
    silent = SilentServer()
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{silent.port}")
        with pytest.raises(UnreachableError) as raised:
            load(tls_server.url(), http_ca_file=tls_server.ca_file)
        assert str(raised.value).endswith(
            f"proxy http://127.0.0.1:{silent.port}: no complete answer within "
            f"{TIMEOUT_MS} ms"
        )
        wait_for(silent.hello_received, "the CONNECT sent")
    finally:
        silent.stop()


def test_a_proxy_hotcfg_cannot_use_stops_the_master_at_start(monkeypatch, tmp_path):
    monkeypatch.setenv("HTTPS_PROXY", f"https://{USER}:{PASSWORD}@proxy.example:3128")
    with pytest.raises(
        ConfigError, match=r"^HTTPS_PROXY: the proxy https://\*\*\*@"
    ) as raised:
        source_for(settings_for("https://config.example/app.yaml"))
    assert_no_secret(str(raised.value))
    # Not used for this URL: no matter.
    assert source_for(settings_for("http://config.example/app.yaml")) is not None
    monkeypatch.setenv("NO_PROXY", ".example")
    assert source_for(settings_for("https://config.example/app.yaml")) is not None

    # A bearer token never crosses a proxy in clear text.
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    token.chmod(0o600)
    with pytest.raises(ConfigError, match="in clear text"):
        source_for(settings_for("http://127.0.0.1:8080/a.yaml", http_token_file=token))


def test_stopping_cuts_a_connect_in_flight(monkeypatch):
    """The proxy's socket is the fetch's: stopping the poll cuts a CONNECT
    the proxy never answers, as it cuts a hanging handshake."""
    silent = SilentServer()
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{silent.port}")
        settings = settings_for(
            "https://config.example/app.yaml", http_timeout_ms=30000
        )
        source = source_for(settings)
        watching = source.watch(lambda: None, settings)
        try:
            wait_for(silent.hello_received, "a CONNECT under way")
            watching.stop(timeout_s=5.0)
            # The fetch had 30 s left: only a cancelled one lets it end now.
            assert not any(t.is_alive() for t in watching._threads)
        finally:
            watching.stop()
    finally:
        silent.stop()
