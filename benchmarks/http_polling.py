"""The HTTP source's conditional polls against unconditional ones, with the
config unchanged, in the same run: requests, bytes and parses per minute.

    .venv/bin/python benchmarks/http_polling.py [--seconds 60] [--workers 4]
    .venv/bin/python benchmarks/http_polling.py --quick

Each row polls its own server: a ``ThreadingHTTPServer`` started here on a
free 127.0.0.1 port, serving one ~10 KB YAML document with an ``ETag`` and
a ``Last-Modified``. It answers 304 to a matching ``If-None-Match`` (or,
without one, to an ``If-Modified-Since`` not older than the document), 200
with the body otherwise, and counts requests, answers by status, and the
bytes it writes to each connection's socket (status line, headers and body;
TCP/IP headers and the connection's set-up are not counted) and reads from
it (the request).

- **hotcfg**: a master's ``Publisher`` over ``HttpSource`` as
  ``ensure_publisher`` builds them (``source_for``, a segment in a temporary
  directory), ``HOTCFG_POLL_INTERVAL_MS=--interval-ms``: its own
  ``hotcfg-http`` and ``hotcfg-publisher`` threads. Its parses are counted
  by wrapping ``hotcfg._content.loaders.parse`` in this process (every document
  hotcfg reads goes through it; nothing in hotcfg/ changes).
- **plain**: the same interval, a plain GET without validators
  (``urllib.request``), every body parsed (with the same parser, unwrapped):
  a per-process poller without ETags.
- **plain-xN**: ``--workers`` such pollers against one server, measured
  (N threads started a random fraction of an interval apart): the
  poller-per-Gunicorn-worker pattern.

Every poller first loads the document (a 200 and a parse: for hotcfg,
``Publisher.start()``); then the rows are measured together for
``--seconds`` of wall time, scaled to per minute. ``cpu ms/min`` is the CPU
time of the polling threads (``pthread_getcpuclockid``): hotcfg's two
threads, the plain pollers' own; the servers run in other threads.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from hotcfg._content import loaders
from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.select import source_for

PATH = "/app.yaml"
SIZE = 10_000

# hotcfg's parses, by source (the wrapper below is installed in main()).
_PARSE = loaders.parse
PARSED: Counter[str] = Counter()
_PARSED_LOCK = threading.Lock()


def counting_parse(content: bytes, *, fmt: str, source: str) -> Any:
    with _PARSED_LOCK:
        PARSED[source] += 1
    return _PARSE(content, fmt=fmt, source=source)


def document(size: int = SIZE) -> bytes:
    """A service's config of about ``size`` bytes of YAML: nested maps,
    lists and scalars."""

    def build(flags: int) -> dict[str, Any]:
        return {
            "service": {"name": "checkout", "env": "production", "debug": False},
            "server": {"port": 8080, "workers": 4, "timeout_s": 30.0},
            "database": {
                "primary": {
                    "host": "db-1.internal",
                    "port": 5432,
                    "pool": {"min": 2, "max": 20, "timeout_ms": 2500},
                },
                "replicas": [
                    {"host": f"db-{i}.internal", "weight": 10 * i} for i in range(2, 5)
                ],
            },
            "logging": {
                "level": "info",
                "format": "json",
                "loggers": {"sqlalchemy": "warning", "urllib3": "error"},
            },
            "features": {
                f"feature_{i:03d}": {
                    "enabled": i % 3 != 0,
                    "rollout": (i * 37 % 100) / 100,
                    "segments": [f"segment-{(i + j) % 7}" for j in range(i % 4)],
                    "owner": f"team-{i % 5}",
                }
                for i in range(flags)
            },
        }

    flags = 1
    while len(text := yaml.safe_dump(build(flags), sort_keys=False)) < size:
        flags += 1
    return text.encode()


class _Counted:
    """A handler's rfile or wfile, counting the bytes through it (wfile
    hands each write to ``sendall``: the bytes written to the socket)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.count = 0

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self._stream.readline(size)
        self.count += len(line)
        return line

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return int(self._stream.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle client does not hold a handler thread

    def setup(self) -> None:
        super().setup()
        self.rfile = _Counted(self.rfile)  # type: ignore[assignment]
        self.wfile = _Counted(self.wfile)  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: DocumentServer = self.server.owner  # type: ignore[attr-defined]
        status = 304 if server.not_modified(self.headers) else 200
        self.close_connection = True
        body = server.body if status == 200 else b""
        try:
            self.send_response(status)
            self.send_header("ETag", server.etag)
            self.send_header("Last-Modified", server.last_modified)
            if status == 200:
                self.send_header("Content-Type", "application/yaml")
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up: counted as sent so far
            pass
        server.record(
            status,
            received=self.rfile.count,  # type: ignore[attr-defined]
            sent=self.wfile.count,  # type: ignore[attr-defined]
            body=len(body),
        )


class DocumentServer:
    """One document at ``PATH``, with validators, and what was served."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        self.modified = int(time.time()) - 3600
        self.last_modified = email.utils.formatdate(self.modified, usegmt=True)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = False  # server_close() joins them
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}{PATH}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bench-http-server",
        )
        self._thread.start()

    def not_modified(self, headers: Any) -> bool:
        """RFC 9110: If-None-Match decides when present, else If-Modified-Since."""
        tags = headers.get("If-None-Match")
        if tags is not None:
            listed = {t.strip().removeprefix("W/") for t in tags.split(",")}
            return "*" in listed or self.etag in listed
        since = headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            return email.utils.parsedate_to_datetime(since).timestamp() >= self.modified
        except (TypeError, ValueError):
            return False

    def record(self, status: int, *, received: int, sent: int, body: int) -> None:
        with self._lock:
            self.counts.update(
                {
                    "requests": 1,
                    f"status {status}": 1,
                    f"sent {status}": sent,
                    "sent": sent,
                    "body": body,
                    "received": received,
                }
            )

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return self.counts.copy()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def thread_cpu_s(threads: list[threading.Thread]) -> float:
    total = 0.0
    for thread in threads:
        if thread.ident is not None and thread.is_alive():
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


class HotcfgPoller:
    """A master's Publisher over HttpSource, polling every ``interval_ms``."""

    def __init__(self, url: str, interval_ms: int, segment_dir: Path) -> None:
        self.url = url
        settings = Settings.resolve(
            {
                "HOTCFG_SOURCE": url,
                "HOTCFG_POLL_INTERVAL_MS": str(interval_ms),
                "HOTCFG_SEGMENT_DIR": str(segment_dir),
            }
        )
        source = source_for(settings, environ={})
        segment = Segment.create(settings.resolved_segment_dir, name="bench-http")
        try:
            self.publisher = Publisher(source, segment, settings)
        except BaseException:
            segment.close(unlink=True)
            raise
        try:
            self.publisher.start()
            self.publisher.start_watching()
        except BaseException:
            self.publisher.close()
            raise

    def ready(self) -> bool:
        return True  # start() returned after the first load

    def parses(self) -> int:
        with _PARSED_LOCK:
            return PARSED[self.url]

    def cpu_s(self) -> float:
        threads = [t for t in threading.enumerate() if t.name.startswith("hotcfg-")]
        return thread_cpu_s(threads)

    def stop(self) -> None:
        self.publisher.close()


class PlainPoller:
    """``count`` threads, each GETting ``url`` every ``interval_ms`` without
    validators and parsing every body."""

    def __init__(self, url: str, interval_ms: int, count: int) -> None:
        self.url = url
        self.interval_s = interval_ms / 1000
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._parses = 0
        self._loaded = [threading.Event() for _ in range(count)]
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(
                target=self._run,
                args=(loaded, random.uniform(0, self.interval_s) if i else 0.0),
                name=f"bench-plain-{i}",
            )
            for i, loaded in enumerate(self._loaded)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, loaded: threading.Event, offset_s: float) -> None:
        if self._stop.wait(offset_s):
            return
        try:
            while True:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    body = response.read()
                _PARSE(body, fmt="yaml", source=self.url)
                with self._lock:
                    self._parses += 1
                loaded.set()
                if self._stop.wait(self.interval_s):
                    return
        except Exception as exc:
            self.errors.append(exc)
            loaded.set()

    def ready(self) -> bool:
        return all(event.is_set() for event in self._loaded)

    def parses(self) -> int:
        with self._lock:
            return self._parses

    def cpu_s(self) -> float:
        return thread_cpu_s(self.threads)

    def stop(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(10)


Poller = HotcfgPoller | PlainPoller


def parse_ms(body: bytes, repeat: int = 21) -> float:
    """Median ms of one parse of ``body`` with hotcfg's loader."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _PARSE(body, fmt="yaml", source="bench")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def exit_on_sigterm() -> None:
    """SIGTERM as SystemExit: the ``finally`` that stops every server and
    poller runs for a ``kill`` as for Ctrl-C."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a 5 s window")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="wall time measured, all rows at once")  # fmt: skip
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4,
                        help="pollers of the plain-xN row")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.seconds = 5.0
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    exit_on_sigterm()
    loaders.parse = counting_parse
    body = document()
    servers: list[DocumentServer] = []
    rows: list[tuple[str, DocumentServer, Poller]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hotcfg-http-") as tmp:
            for name in ("hotcfg", "plain", f"plain-x{args.workers}"):
                server = DocumentServer(body)
                servers.append(server)
                poller: Poller
                if name == "hotcfg":
                    poller = HotcfgPoller(
                        server.url, args.interval_ms, Path(tmp) / "seg"
                    )
                else:
                    count = 1 if name == "plain" else args.workers
                    poller = PlainPoller(server.url, args.interval_ms, count)
                rows.append((name, server, poller))
            results = measure(rows, args.seconds)
    finally:
        for _, _, poller in rows:
            poller.stop()
        for server in servers:
            server.stop()
    errors = [e for _, _, p in rows if isinstance(p, PlainPoller) for e in p.errors]
    if errors:
        raise SystemExit(f"a plain poller failed: {errors[0]!r}")
    report(results, body, args)


Window = Counter[str]  # per minute; a key never counted is 0


def measure(
    rows: list[tuple[str, DocumentServer, Poller]], seconds: float
) -> list[tuple[str, Window]]:
    """Every row's counts over the same ``seconds``, per minute."""
    deadline = time.monotonic() + 30
    while not all(poller.ready() for _, _, poller in rows):
        if time.monotonic() > deadline:
            raise RuntimeError("a poller did not load the document in 30 s")
        time.sleep(0.01)

    def take() -> list[Counter[str]]:
        taken = []
        for _, server, poller in rows:
            counts = server.snapshot()
            counts["parses"] = poller.parses()
            counts["cpu"] = poller.cpu_s()  # type: ignore[assignment]
            taken.append(counts)
        return taken

    before, began = take(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = take(), time.monotonic() - began
    per_minute = 60.0 / elapsed
    return [
        (name, Counter({key: (a[key] - b[key]) * per_minute for key in a}))
        for (name, _, _), b, a in zip(rows, before, after, strict=True)
    ]


def report(
    results: list[tuple[str, Window]],
    body: bytes,
    args: argparse.Namespace,
) -> None:
    print(f"one {len(body) / 1000:.1f} KB YAML document, unchanged; a poll every "
          f"{args.interval_ms} ms; {args.seconds:g} s of wall time, all rows at "
          "once, scaled to per minute; each row its own server")  # fmt: skip
    print(f"{'poller':>9} {'req/min':>8} {'200s/min':>9} {'304s/min':>9} "
          f"{'resp B/min':>11} {'req B/min':>10} {'parses/min':>11} {'resp x':>7} "
          f"{'both x':>7} {'parses x':>9} {'cpu ms/min':>11}")  # fmt: skip

    def ratio(value: float, base: float, width: int) -> str:
        return f"{value / base:>{width}.1f}" if base else f"{'-':>{width}}"

    # Ratios of the numbers as printed (bytes whole, parses to 0.1).
    base = results[0][1]
    base_sent, base_got = round(base["sent"]), round(base["received"])
    for name, w in results:
        sent, got, parses = round(w["sent"]), round(w["received"]), w["parses"]
        print(f"{name:>9} {w['requests']:>8.1f} {w['status 200']:>9.1f} "
              f"{w['status 304']:>9.1f} {sent:>11} {got:>10} {parses:>11.1f} "
              f"{ratio(sent, base_sent, 7)} "
              f"{ratio(sent + got, base_sent + base_got, 7)} "
              f"{ratio(round(parses, 1), round(base['parses'], 1), 9)} "
              f"{w['cpu'] * 1000:>11.1f}")  # fmt: skip
    windows = [w for _, w in results]
    answer = {
        status: sum(w[f"sent {status}"] for w in windows)
        / max(sum(w[f"status {status}"] for w in windows), 1e-9)
        for status in (200, 304)
    }
    print(f"per answer: a 200 is {answer[200]:.0f} bytes ({len(body)} of body), "
          f"a 304 {answer[304]:.0f} bytes; per request: hotcfg's "
          f"{base['received'] / base['requests']:.0f} bytes (conditional), "
          f"plain's {results[1][1]['received'] / results[1][1]['requests']:.0f} "
          "bytes")  # fmt: skip
    print(f"one parse of this document with hotcfg's loader: {parse_ms(body):.2f} "
          "ms (median of 21)")  # fmt: skip
    print("before the window every poller loaded the document once (a 200 and a "
          "parse; hotcfg's in Publisher.start()); resp/req B: bytes the server "
          "wrote to / read from the socket (status line or request line, "
          "headers, body), TCP/IP not counted; x: against hotcfg ('-': hotcfg's "
          "is 0), resp x of the answers' bytes, both x of answers + requests; "
          f"cpu: the polling threads' CPU time; plain-x{args.workers}: "
          f"{args.workers} pollers, measured")  # fmt: skip


if __name__ == "__main__":
    main()
