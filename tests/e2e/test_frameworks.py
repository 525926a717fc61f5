"""The shipped examples served by real Gunicorn masters (4 workers each): a
live config change reaches every worker pid, through each framework's
integration."""

import re

import pytest

from tests.e2e.test_gunicorn import ROOT, WORKERS

pytestmark = pytest.mark.e2e
EXAMPLES = ROOT / "examples"


def every_worker_renders(svc, text, path):
    """Every worker pid has rendered ``text`` in the page's <h1 data-pid>."""
    seen = {}

    def done():
        for _ in range(WORKERS * 4):
            html = svc.get_text(path)
            pid, title = re.search(r'data-pid="(\d+)"[^>]*>([^<]*)<', html).groups()
            seen[int(pid)] = title
        pids = svc.worker_pids()
        return pids and all(seen.get(pid) == text for pid in pids)

    svc.wait_until(done, f"every worker renders {text!r} (seen {seen})")


def test_flask_example(start_service, tmp_path):
    pytest.importorskip("flask")
    svc = start_service(
        tmp_path,
        app="flask_app:app",
        extra_args=("--pythonpath", str(EXAMPLES)),
    )
    svc.all_workers_answer("hello", key="greeting")
    svc.write_atomic("greeting: Bonjour\nfeatures: {new_checkout: true}\n")
    svc.all_workers_answer("Bonjour", key="greeting")
    every_worker_renders(svc, "Bonjour", "/page")
    assert "Try the new checkout!" in svc.get_text("/page")


def test_django_example(start_service, tmp_path):
    pytest.importorskip("django")
    svc = start_service(
        tmp_path,
        app="exampleproject.wsgi",
        extra_args=("--pythonpath", str(EXAMPLES / "django_project")),
    )
    svc.all_workers_answer("hello", key="greeting")
    svc.write_atomic("greeting: Hallo\nfeatures: {new_checkout: true}\n")
    seen = svc.all_workers_answer("Hallo", key="greeting")
    assert len(seen) >= WORKERS
    assert svc.get()["new_checkout"] is True


@pytest.mark.parametrize(
    ("app", "pythonpath"),
    [
        ("asgi_app:app", EXAMPLES),
        ("exampleproject.asgi", EXAMPLES / "django_project"),
    ],
)
def test_asgi_examples_on_gunicorns_asgi_worker(
    start_service, tmp_path, app, pythonpath
):
    if app.startswith("exampleproject"):
        pytest.importorskip("django")
    svc = start_service(
        tmp_path,
        app=app,
        extra_args=("--worker-class", "asgi", "--pythonpath", str(pythonpath)),
    )
    svc.all_workers_answer("hello", key="greeting")
    svc.write_atomic("greeting: Salut\nfeatures: {new_checkout: true}\n")
    svc.all_workers_answer("Salut", key="greeting")
    assert svc.get()["new_checkout"] is True
