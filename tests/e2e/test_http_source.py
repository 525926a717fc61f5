"""A real Gunicorn polling a real local HTTP server."""

import json
import os
import urllib.request

import pytest

from tests.httpserver import Reply, ScriptedServer, good

from .conftest import free_port

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
    "longer-than-declared": (  # the prefix "value: " would be {"value": None}
        Reply(body=b"value: long\n", content_length=7),
        "the body is longer than the 7 bytes its Content-Length declares",
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


def start(start_service, path, url, port=None, **env):
    path.mkdir()
    return start_service(
        path,
        env_extra={"HOTCFG_SOURCE": url, **POLLING, **env},
        workers=WORKERS,
        port=port,
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


# A presigned URL's query: whoever holds it reads the config. The fetch
# sends it; nothing shows or stores it.
SECRETS = ("AKIAs3cretCred", "SIGs3cretSig", "tok3nS3cret")
PRESIGNED = "?X-Amz-Credential=AKIAs3cretCred&X-Amz-Signature=SIGs3cretSig"
REDACTED = "?X-Amz-Credential=***&X-Amz-Signature=***"


def hotcfg_cli(service, *args):
    """What ``hotcfg`` prints, on stdout and stderr."""
    out = service.hotcfg(*args)
    return out.stdout + out.stderr


def stored_bytes(directory):
    """Every file hotcfg keeps there (segment, history, cache), as bytes."""
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False):
            with open(entry.path, "rb") as f:
                yield entry.name, f.read()


def assert_no_secret(texts, stored):
    for name, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {name}:\n{text}"
    for name, data in stored:
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} in the file {name}"


def test_a_presigned_url_is_fetched_whole_and_shown_redacted_everywhere(
    http_server, start_service, tmp_path
):
    url = http_server.url() + PRESIGNED
    shown = http_server.url() + REDACTED
    metrics = free_port()
    http_server.answer(good("value: one\n"))
    service = start(
        start_service, tmp_path / "svc", url, HOTCFG_METRICS=f"127.0.0.1:{metrics}"
    )
    service.all_workers_answer("one")
    assert http_server.requests()[-1].query == PRESIGNED[1:]  # sent whole
    assert service.status()[0]["source"] == shown

    # A failure at the end of a redirect to another presigned URL: the
    # reason names both, redacted.
    http_server.answer(Reply(302, headers={"Location": "/moved.yaml?sig=tok3nS3cret"}))
    service.wait_until(
        lambda: "HTTP 404 Not Found (at " in (service.status()[0]["last_error"] or ""),
        "the redirect's failure in status",
    )
    last_error = service.status()[0]["last_error"]
    assert last_error == (
        f"{shown}: HTTP 404 Not Found (at {http_server.url('/moved.yaml')}?sig=***)"
    )
    # ...and a loop back to the configured URL names the chain.
    http_server.answer(Reply(302, headers={"Location": url}), "/moved.yaml")
    service.wait_until(
        lambda: "redirect loop" in (service.status()[0]["last_error"] or ""),
        "the loop in status",
    )
    http_server.answer(good("value: two\n"))
    service.all_workers_answer("two")

    texts = {
        "status": hotcfg_cli(service, "status"),
        "status --json": hotcfg_cli(service, "status", "--json"),
        "history": hotcfg_cli(service, "history"),
        "history --json": hotcfg_cli(service, "history", "--json"),
        "loop": service.status()[0]["last_error"] or last_error,
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics") as answer:
        texts["metrics"] = answer.read().decode()
    service.stop()
    texts["log"] = service.log.read_text()
    assert shown in texts["status"]
    assert shown in texts["history"]
    assert f"polling {shown} every" in texts["log"]
    assert "redirect loop: " in texts["log"]
    assert_no_secret(texts, stored_bytes(service.segments))


def test_a_presigned_layer_beside_an_etcd_key_stays_out_of_the_fleet_record(
    etcd, http_server, start_service, tmp_path
):
    key = "/app/config.yaml"
    etcd.put(key, "value: base\nfrom: etcd\n")
    url = http_server.url() + PRESIGNED
    shown = f"{etcd.source(key)} | {http_server.url()}{REDACTED}"
    http_server.answer(good("value: one\n"))
    service = start(
        start_service,
        tmp_path / "svc",
        f"{etcd.source(key)} | {url}",
        HOTCFG_ETCD_PROGRESS_MS="500",
        HOTCFG_FLEET_TTL_MS="2000",
    )
    service.all_workers_answer("one")

    def record():
        return etcd.ctl("get", "--prefix", "/hotcfg/fleet/", "--print-value-only")

    http_server.answer(Reply(404, b"gone\n", "text/plain"))
    service.wait_until(lambda: "HTTP 404" in record(), "the rejection in the record")
    texts = {
        "record": record(),
        "status --fleet": hotcfg_cli(service, "status", "--fleet", etcd.source(key)),
        "explain": hotcfg_cli(service, "get", "--explain", "value"),
    }
    (mine,) = [json.loads(line) for line in texts["record"].splitlines() if line]
    assert mine["source"] == shown
    assert mine["error"].startswith(f"layer 2 of 2 ({http_server.url()}{REDACTED}): ")
    assert f"from   {http_server.url()}{REDACTED}" in texts["explain"]
    service.stop()
    texts["log"] = service.log.read_text()
    assert_no_secret(texts, stored_bytes(service.segments))
