"""A real Gunicorn polling a real local HTTP server."""

import pytest

from tests.httpserver import Reply, ScriptedServer, good

pytestmark = pytest.mark.e2e

WORKERS = 2
POLLING = {"HOTCFG_POLL_INTERVAL_MS": "150", "HOTCFG_HTTP_TIMEOUT_MS": "1000"}

# What the server answers instead of the config, and what status must say.
BAD_ANSWERS = {
    "404": (Reply(404, b"not here\n", "text/plain"), "HTTP 404 Not Found"),
    "503-retry-after": (
        Reply(503, b"busy\n", "text/plain", headers={"Retry-After": "1"}),
        "HTTP 503 Service Unavailable",
    ),
    "html-200": (
        Reply(body=b"<!DOCTYPE html><title>Oops</title>", content_type="text/html"),
        "an HTML page, not a YAML document",
    ),
    "empty": (Reply(body=b""), "the answer's body is empty"),
    "cut-short": (
        Reply(body=b"value: cut\n", content_length=500),
        "the body was cut short: 11 of 500 bytes",
    ),
    "broken-chunks": (
        Reply(body=b"value: cut\n", broken_chunks=True),
        "the body was cut short (the chunked stream broke off",
    ),
    "trickle": (
        Reply(body=b"value: slow\n" + b"#" * 200, trickle_s=0.2),
        "no complete answer within 1000 ms",
    ),
    "redirect-loop": (
        Reply(302, headers={"Location": "/app.yaml"}),
        "redirect loop: ",
    ),
}


def start(start_service, path, url, port=None):
    path.mkdir()
    return start_service(
        path, env_extra={"HOTCFG_SOURCE": url, **POLLING}, workers=WORKERS, port=port
    )


@pytest.mark.parametrize("bad", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_keeps_every_worker_on_the_last_good(
    http_server, start_service, tmp_path, bad
):
    reply, reason = bad
    url = http_server.url()
    http_server.answer(good("value: one\n", etag='"1"'))
    service = start(start_service, tmp_path / "svc", url)
    service.all_workers_answer("one")
    generation = service.status()[0]["generation"]

    if reply.status == 302:  # /app.yaml -> /b -> /app.yaml
        http_server.answer(Reply(302, headers={"Location": "/b"}))
        http_server.answer(reply, "/b")
    else:
        http_server.answer(reply)
    service.wait_until(
        lambda: f"{url}: {reason}" in (service.status()[0]["last_error"] or ""),
        f"{reason!r} in status",
    )
    service.all_workers_answer("one")
    assert service.status()[0]["generation"] == generation

    http_server.answer(good("value: two\n", etag='"2"'))
    service.all_workers_answer("two")
    assert service.status()[0]["last_error"] is None


def test_a_master_started_while_the_server_is_down_serves_its_cache(
    start_service, tmp_path
):
    server = ScriptedServer()
    url = server.url()
    try:
        server.answer(good("value: cached\n"))
        first = start(start_service, tmp_path / "first", url)
        first.all_workers_answer("cached")
        first.stop()
    finally:
        server.stop()  # nothing listens on its port now

    # The same service again (its address is part of its name).
    service = start(start_service, tmp_path / "second", url, port=first.port)
    service.all_workers_answer("cached")
    status = service.status()[0]
    assert status["source"] == f"cache:{url}"
    assert f"{url}: connection refused; serving the cache from" in status["last_error"]
