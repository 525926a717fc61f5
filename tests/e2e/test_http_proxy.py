"""A real Gunicorn whose HTTP source goes through a real tinyproxy."""

import json

import pytest

from tests.httpserver import ScriptedServer, good, tls_pair

from .test_http_source import hotcfg_cli, start, stored_bytes

pytestmark = pytest.mark.e2e

USER = "cfg-reader"
PASSWORD = "pr0xy_S3cret"


@pytest.fixture
def tls_server(tmp_path):
    ca_file, context = tls_pair(tmp_path)
    server = ScriptedServer(tls_context=context)
    server.ca_file = ca_file
    try:
        yield server
    finally:
        server.stop()


def assert_no_secret(texts, stored):
    for name, text in texts.items():
        assert PASSWORD not in text, f"the password in {name}:\n{text}"
        assert f"{USER}:" not in text, f"the user in {name}:\n{text}"
    for name, data in stored:
        assert PASSWORD.encode() not in data, f"the password in the file {name}"


def test_workers_see_an_edit_fetched_through_the_proxy(
    tls_server, tinyproxy, start_service, tmp_path
):
    proxy = tinyproxy(connect_ports=(tls_server.port,), auth=(USER, PASSWORD))
    shown = f"http://***@127.0.0.1:{proxy.port}"
    url = tls_server.url()
    tls_server.answer(good("value: one\n", etag='"1"'))
    service = start(
        start_service,
        tmp_path / "svc",
        url,
        HOTCFG_HTTP_CA_FILE=str(tls_server.ca_file),
        HTTPS_PROXY=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}",
        NO_PROXY="localhost,.internal.example",
    )
    service.all_workers_answer("one")
    tls_server.answer(good("value: two\n", etag='"2"'))
    service.all_workers_answer("two")
    tunnels = proxy.log_lines(f"): CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1")
    assert len(tunnels) >= 2, proxy.output()  # every poll, through the proxy
    assert all("via" not in seen.headers for seen in tls_server.requests())

    # The proxy goes away: the last good config stays, the reason names it.
    proxy.stop()
    service.wait_until(
        lambda: (
            f"{url}: proxy {shown}: connection refused"
            in (service.status()[0]["last_error"] or "")
        ),
        "the proxy's failure in status",
    )
    service.all_workers_answer("two")

    texts = {
        "status": hotcfg_cli(service, "status"),
        "status --json": json.dumps(service.status()),
        "history --json": hotcfg_cli(service, "history", "--json"),
    }
    service.stop()
    texts["log"] = service.log.read_text()
    assert f"fetching {url} through the proxy {shown} (HTTPS_PROXY)" in texts["log"]
    assert f"proxy {shown}: connection refused" in texts["log"]
    assert_no_secret(texts, stored_bytes(service.segments))


def test_the_fleet_record_names_a_failing_proxy_without_its_credentials(
    etcd, tls_server, tinyproxy, start_service, tmp_path
):
    key = "/app/config.yaml"
    etcd.put(key, "value: base\nfrom: etcd\n")
    proxy = tinyproxy(connect_ports=(tls_server.port,), auth=(USER, PASSWORD))
    shown = f"http://***@127.0.0.1:{proxy.port}"
    tls_server.answer(good("value: one\n"))
    service = start(
        start_service,
        tmp_path / "svc",
        f"{etcd.source(key)} | {tls_server.url()}",
        HOTCFG_HTTP_CA_FILE=str(tls_server.ca_file),
        HOTCFG_ETCD_PROGRESS_MS="500",
        HOTCFG_FLEET_TTL_MS="2000",
        https_proxy=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}",
    )
    service.all_workers_answer("one")

    def record():
        return etcd.ctl("get", "--prefix", "/hotcfg/fleet/", "--print-value-only")

    proxy.stop()
    service.wait_until(
        lambda: f"proxy {shown}: connection refused" in record(),
        "the proxy's failure in the fleet record",
    )
    texts = {
        "record": record(),
        "status --fleet": hotcfg_cli(service, "status", "--fleet", etcd.source(key)),
    }
    service.all_workers_answer("one")
    service.stop()
    texts["log"] = service.log.read_text()
    assert_no_secret(texts, stored_bytes(service.segments))
