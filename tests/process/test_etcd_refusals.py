"""What the etcd source refuses, against a real etcd: a value over
``HOTCFG_MAX_BYTES`` is a rejection of its revision, never "unreachable",
and the source moves on, at a cold start and when a watch catches up with
several at once, for a key and a prefix; an endpoint that answers every
watch with something unreadable (behind a broken proxy) is retried ever more
slowly and logged once, and left as soon as it works."""

import contextlib
import http.client
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hotcfg._errors import ConfigError, UnreachableError
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for
from tests.etcd import PROGRESS_MS
from tests.following import Followed
from tests.waiting import wait_for

KEY = "/app/config.yaml"
PREFIX = "/app/config/"
LIMIT = 65536


def _settings(etcd, source=KEY, max_bytes=LIMIT):
    return Settings.resolve(
        {},
        source=etcd.source(source),
        max_bytes=max_bytes,
        etcd_progress_ms=PROGRESS_MS,
        etcd_timeout_ms=2000,
    )


def _master(etcd):
    """A publisher as the Gunicorn master starts one (history and cache kept)."""
    settings = _settings(etcd)
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="limits")
    return Publisher(source_for(settings), segment, settings, keep_history=True)


def _put_stdin(etcd, key, value):
    """Put a value too long for a command-line argument; the new revision."""
    etcd.ctl("put", "--", key, stdin=value)
    return etcd.revision()


def test_an_oversized_value_at_a_cold_start_is_refused_not_served_from_the_cache(
    etcd, caplog
):
    etcd.put(KEY, "value: cached\n")
    first = _master(etcd)
    assert first.start() == 1
    assert first.cache_path is not None
    first.close()
    big = "value: " + "x" * 120_000 + "\n"
    revision = _put_stdin(etcd, KEY, big)

    master = _master(etcd)
    try:
        with pytest.raises(ConfigError) as refused:
            master.start()
        assert not isinstance(refused.value, UnreachableError)
        reason = f"at revision {revision}: {len(big)} bytes, over the {LIMIT}-byte"
        assert reason in str(refused.value)
        header = layout.read_header(master.segment.buffer)
        assert header.generation == 0
        assert reason in header.error
        assert "serving the cache" not in caplog.text
    finally:
        master.close()


def test_a_watch_catching_up_on_several_large_values_at_once_moves_on(etcd, caplog):
    caplog.set_level(logging.INFO, logger="hotcfg")
    etcd.put(KEY, "value: one\n")
    followed = Followed(_settings(etcd), name="catchup")
    try:
        # Disconnected (the member answers etcdctl on another port
        # meanwhile): the watch's first response afterwards carries every
        # event since, more together than one response may take.
        with etcd.elsewhere(
            lambda: wait_for(lambda: "unreachable" in followed.error(), "the outage")
        ):
            for n in range(4):
                _put_stdin(etcd, KEY, f"value: v{n}\npad: {'x' * 40_000}\n")
            etcd.put(KEY, "value: good\n")
        followed.wait_value("good")
        assert "over what HOTCFG_MAX_BYTES allows; reading it in full" in caplog.text
        wait_for(lambda: not followed.error(), "the error cleared")
    finally:
        followed.close()


def test_a_prefix_too_large_to_read_is_rejected_at_its_revision_and_left(etcd, caplog):
    caplog.set_level(logging.INFO, logger="hotcfg")
    etcd.put(PREFIX + "value", "one")
    followed = Followed(_settings(etcd, PREFIX, max_bytes=2048), name="wide")
    try:
        assert followed.value() == "one"
        # Sixty keys with long names, in one revision: their names alone take
        # more than a read under a 2 KB limit may (values are small).
        names = [f"{PREFIX}k{n:02d}-{'n' * 1500}" for n in range(60)]
        revision = etcd.txn(*(f"put {name} 1" for name in names))
        wait_for(lambda: "to read" in followed.error(), "the prefix refused")
        assert f"the keys under {PREFIX} at revision {revision} take" in (
            followed.error()
        )
        assert followed.value() == "one"

        etcd.ctl("del", "--prefix", f"{PREFIX}k")
        etcd.put(PREFIX + "value", "two")
        followed.wait_value("two")
        wait_for(lambda: not followed.error(), "the error cleared")
    finally:
        followed.close()


class GarblingProxy:
    """A real HTTP server in front of a real etcd member that passes every
    request on, but, while ``garbling``, answers each watch with etcd's
    "created" and then a line that is not JSON. Counts the watches."""

    def __init__(self, etcd):
        self.target = ("127.0.0.1", etcd.client_port)
        self.garbling = True
        self.watches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever)
        self._thread.start()

    def source(self, key):
        return f"etcd://127.0.0.1:{self.port}{key}"

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._pass_on(None)

    def do_POST(self):
        self._pass_on(self.rfile.read(int(self.headers["Content-Length"])))

    def _pass_on(self, body):
        proxy = self.server.proxy
        self.close_connection = True
        if self.path == "/v3/watch":
            proxy.watches += 1
            if proxy.garbling:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                lines = b'{"result":{"header":{"revision":"9"},"created":true}}\n'
                lines += b"{this is no etcd answer\n"
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(lines), lines))
                return
        upstream = http.client.HTTPConnection(*proxy.target, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request(self.command, self.path, body, headers)
            answer = upstream.getresponse()
            self.send_response(answer.status)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with contextlib.suppress(OSError, http.client.HTTPException):
                while chunk := answer.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
        finally:
            upstream.close()


@pytest.fixture
def garbling_proxy(etcd):
    proxy = GarblingProxy(etcd)
    try:
        yield proxy
    finally:
        proxy.stop()


def test_an_endpoint_that_garbles_every_watch_is_retried_slowly_and_logged_once(
    etcd, garbling_proxy, caplog
):
    caplog.set_level(logging.INFO, logger="hotcfg")
    proxy = garbling_proxy
    etcd.put(KEY, "value: one\n")
    settings = Settings.resolve(
        {}, source=proxy.source(KEY), etcd_progress_ms=PROGRESS_MS
    )
    followed = Followed(settings, name="garbled")
    try:
        assert followed.value() == "one"
        wait_for(lambda: proxy.watches >= 5, "five watches garbled", timeout_s=30)
        messages = [r.getMessage() for r in caplog.records]
        lost = [m for m in messages if "lost the etcd watch" in m]
        assert len(lost) == 1, lost
        assert "not an etcd v3 watch response" in lost[0]
        rejected = [m for m in messages if "rejected" in m]
        assert len(rejected) == 1, rejected
        assert not [m for m in messages if "valid again" in m or "again at" in m]
        assert "not an etcd v3 watch response" in followed.error()

        proxy.garbling = False  # the proxy mended: followed again
        etcd.put(KEY, "value: two\n")
        followed.wait_value("two")
        wait_for(lambda: not followed.error(), "the error cleared")
    finally:
        followed.close()
