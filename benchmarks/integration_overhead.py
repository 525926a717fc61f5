"""Per-request cost of each framework integration against the same app without it.

    .venv/bin/python benchmarks/integration_overhead.py [--runs 15] [--requests 2000]

In one process, with hotcfg in standalone mode (publisher and reader here):
a Flask app through its WSGI callable, a Django project through its WSGI
handler, and a plain ASGI app awaited on an event loop. Each app's view
reads one value with ``hotcfg.get()`` in both variants, so the difference
is what the integration adds: the generation check, the pin and unpin, and
exposing the snapshot (``g.hotcfg``, ``request.hotcfg``, ``scope``). The
variants run interleaved; the table shows, in microseconds of this thread's
CPU time per request, the median of each variant's runs and the median of
the per-run differences.
The indented rows compare with a do-nothing hook pair (Flask) or middleware
(Django) instead, separating the framework's cost of any hook from hotcfg's.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import io
import operator
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import hotcfg

ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
    "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    "HTTP_HOST": "127.0.0.1",
}  # fmt: skip


def wsgi_loop(app: Callable) -> Callable[[int], None]:
    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status

    def run(n: int) -> None:
        for _ in range(n):
            body = app(dict(ENVIRON), start_response)
            b"".join(body)
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return run


def flask_apps() -> tuple[Callable, Callable, Callable]:
    from flask import Flask

    from hotcfg.integrations.flask import Hotcfg

    def build(kind: str) -> Callable:
        app = Flask(f"bench-{kind}")
        app.add_url_rule("/", "index", lambda: hotcfg.get("greeting"))
        if kind == "hooks":  # Flask's own cost of one request hook pair
            app.before_request(lambda: None)
            app.teardown_request(lambda exc: None)
        elif kind == "hotcfg":
            Hotcfg(app)
        return wsgi_loop(app.wsgi_app)

    return build("bare"), build("hooks"), build("hotcfg")


class PassThroughMiddleware:
    """A Django middleware that does nothing: Django's own per-middleware cost."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: object) -> object:
        return self.get_response(request)


def django_apps() -> tuple[Callable, Callable, Callable]:
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.test.utils import override_settings
    from django.urls import path

    sys.modules[__name__].urlpatterns = [  # type: ignore[attr-defined]
        path("", lambda request: HttpResponse(hotcfg.get("greeting")))
    ]
    settings.configure(
        ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="bench",
        INSTALLED_APPS=["hotcfg.integrations.django"], DATABASES={}, USE_TZ=True,
    )  # fmt: skip
    django.setup()
    middleware = ["hotcfg.integrations.django.middleware.HotcfgMiddleware"]
    handlers = []
    for stack in ([], [f"{__name__}.PassThroughMiddleware"], middleware):
        with override_settings(MIDDLEWARE=stack):
            handlers.append(wsgi_loop(WSGIHandler()))
    return handlers[0], handlers[1], handlers[2]


def asgi_apps() -> tuple[Callable, Callable]:
    from hotcfg.integrations.asgi import HotcfgMiddleware

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}

    async def app(scope, receive, send):
        body = hotcfg.get("greeting").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    loop = asyncio.new_event_loop()

    def loop_of(asgi: Callable) -> Callable[[int], None]:
        async def many(n: int) -> None:
            for _ in range(n):
                await asgi(dict(scope), receive, send)

        return lambda n: loop.run_until_complete(many(n))

    return loop_of(app), loop_of(HotcfgMiddleware(app))


def measure(run: Callable[[int], None], n: int) -> float:
    # CPU time of this thread, not wall time: on a shared machine the time
    # spent waiting for a CPU would swamp differences of a microsecond.
    start = time.thread_time()
    run(n)
    return (time.thread_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hotcfg-bench-"))
    atexit.register(shutil.rmtree, tmp)  # runs after the publisher's close
    (tmp / "config.yaml").write_text("greeting: hello\n")
    os.mkdir(tmp / "seg", 0o700)
    hotcfg.configure(source=tmp / "config.yaml", segment_dir=str(tmp / "seg"))
    hotcfg.get("greeting")  # start the publisher before timing
    print(f"microseconds per request, medians of {args.runs} runs x {args.requests}")
    print(f"{'integration':<32}{'without':>10}{'with':>10}{'added':>10}")
    flask_bare, flask_hooks, flask_with = flask_apps()
    django_bare, django_pass, django_with = django_apps()
    asgi_bare, asgi_with = asgi_apps()
    rows = {
        "Flask Hotcfg (WSGI call)": (flask_bare, flask_with),
        "  vs no-op request hooks": (flask_hooks, flask_with),
        "Django middleware (WSGI)": (django_bare, django_with),
        "  vs a pass-through middleware": (django_pass, django_with),
        "ASGI HotcfgMiddleware": (asgi_bare, asgi_with),
    }
    timings: dict[Callable, list[float]] = {}
    for run in {run for pair in rows.values() for run in pair}:
        run(200)  # warm up
        timings[run] = []
    for _ in range(args.runs):  # interleaved, so drift hits every variant alike
        for run, samples in timings.items():
            samples.append(measure(run, args.requests))
    for name, (bare, integrated) in rows.items():
        a, b = statistics.median(timings[bare]), statistics.median(timings[integrated])
        # Paired by run: a noisy neighbour slows both variants of one run.
        added = statistics.median(map(operator.sub, timings[integrated], timings[bare]))
        print(f"{name:<32}{a:>10.2f}{b:>10.2f}{added:>10.2f}")


if __name__ == "__main__":
    main()
