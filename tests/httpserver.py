"""A real, scriptable HTTP server for the HTTP source's tests.

A ``ThreadingHTTPServer`` on a free 127.0.0.1 port, in the test's own
process. The test says what each path answers (:class:`Reply`), including
the ways servers go wrong (a trickle, a body cut short, a broken chunked
stream); the server records every request (path, headers, arrival time,
and the status it answered). ``stop()`` ends the server and every handler
thread; the ``http_server`` fixture calls it, also when the test fails.
:class:`SilentServer` accepts connections and never answers: a TLS
handshake with it hangs.
"""

import contextlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: The path the tests serve the config at.
PATH = "/app.yaml"


@dataclass
class Reply:
    """What a path answers.

    Attributes:
        status: the status line's code.
        body: the body sent (all of it, unless cut short).
        content_type: the Content-Type header (None: none sent).
        headers: any other headers.
        etag: answer 304 when the request's If-None-Match is this.
        last_modified: sent as Last-Modified; answer 304 when the request's
            If-Modified-Since is this.
        content_length: the Content-Length declared (default: the body's
            length); a larger one with the connection then closed is a body
            cut short.
        chunked: send the body chunked, without Content-Length.
        broken_chunks: chunked, and the stream ends without its last chunk.
        trickle_s: send the body one byte at a time, this many seconds apart.
    """

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/yaml"
    headers: dict = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    content_length: int | None = None
    chunked: bool = False
    broken_chunks: bool = False
    trickle_s: float = 0.0


def good(text, **kwargs):
    """A 200 with ``text`` as a YAML body."""
    return Reply(body=text.encode(), **kwargs)


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    at: float  # time.monotonic() when its headers had arrived
    path: str
    headers: dict  # names in lower case
    status: int  # what the server answered
    query: str = ""  # the request target's query, as sent


class ScriptedServer:
    """The server; ``answer(reply, path)`` sets what ``path`` answers from
    now on (every other path: 404)."""

    def __init__(self, tls_context=None):
        self._lock = threading.Lock()
        self._routes = {}
        self._seen = []
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = False  # server_close() joins them
        self._server.scripted = self
        self.scheme = "http"
        if tls_context is not None:
            self._server.socket = tls_context.wrap_socket(
                self._server.socket, server_side=True
            )
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="test-http-server",
        )
        self._thread.start()

    def url(self, path=PATH, host="127.0.0.1"):
        return f"{self.scheme}://{host}:{self.port}{path}"

    def answer(self, reply, path=PATH):
        with self._lock:
            self._routes[path] = reply

    def requests(self, path=None):
        """The requests received so far (to ``path``, if given)."""
        with self._lock:
            return [s for s in self._seen if path is None or s.path == path]

    def count(self, path=None):
        return len(self.requests(path))

    def _route(self, path, headers, query=""):
        with self._lock:
            reply = self._routes.get(path, Reply(404, b"not found\n", "text/plain"))
            status = reply.status
            if status == 200 and (
                (reply.etag and headers.get("if-none-match") == reply.etag)
                or (
                    reply.last_modified
                    and headers.get("if-modified-since") == reply.last_modified
                )
            ):
                status = 304
            self._seen.append(Seen(time.monotonic(), path, headers, status, query))
            return reply, status

    def stop(self):
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class SilentServer:
    """A port that accepts TCP connections and never says a word: an
    https client's handshake hangs there (its ClientHello is never
    answered). ``hello_received()`` says when a client's first bytes have
    arrived, so the client is inside its TLS handshake; ``stop()`` closes
    every connection (the client sees the end of the stream)."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._conns = []
        self._thread = threading.Thread(target=self._accept, name="test-silent")
        self._thread.start()

    def url(self, path=PATH):
        return f"https://127.0.0.1:{self.port}{path}"

    def _accept(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # stop() closed the listener
                return
            with self._lock:
                self._conns.append(conn)

    def hello_received(self):
        """Whether some client sent bytes (left unread: never answered)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(BlockingIOError, OSError):
                if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return True
        return False

    def stop(self):
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        self._thread.join()
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle client does not hold a handler thread forever

    def log_message(self, format, *args):
        pass  # no stderr noise; the test reads .requests()

    def do_GET(self):
        scripted = self.server.scripted
        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, query = self.path.partition("?")
        reply, status = scripted._route(path, headers, query)
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may give up first
            self._send(scripted, reply, status)

    def _send(self, scripted, reply, status):
        self.send_response(status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.etag:
            self.send_header("ETag", reply.etag)
        if reply.last_modified:
            self.send_header("Last-Modified", reply.last_modified)
        if status == 304:
            self.end_headers()
            return
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        body = reply.body
        if reply.chunked or reply.broken_chunks:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
            if not reply.broken_chunks:
                self.wfile.write(b"0\r\n\r\n")
            return
        length = len(body) if reply.content_length is None else reply.content_length
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        if not reply.trickle_s:
            self.wfile.write(body)
            return
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            if scripted.stopping.wait(reply.trickle_s):
                return


def tls_pair(directory):
    """A CA (its PEM file in ``directory``) and a server context whose
    certificate it signed, for 127.0.0.1 only (not localhost)."""
    from tests.etcd_certs import Authority

    authority = Authority(directory, "http")
    server = authority.issue("server", ip="127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    return authority.ca_file, context
