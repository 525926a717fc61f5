"""The Django app of the example project: the system check and the
management command through its ``manage.py``, in child processes (exit
codes and output, and settings modules of their own); the app's settings
and the middleware with Django's test clients (sync and async), in the
test's process."""

import asyncio
import contextlib
import importlib
import os
import subprocess
import sys
import types

import pytest

import hotcfg
from hotcfg import _api
from tests.process import ROOT

django = pytest.importorskip("django")
PROJECT = ROOT / "examples" / "django_project"


def manage(tmp_path, *args, settings=None, source=None):
    """``manage.py ARGS`` in the example project; (exit code, stdout + stderr).

    A child process: the command's exit code and output are what is tested,
    and a settings module of its own is only possible in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env.pop("HOTCFG_SOURCE", None)
    if source is not None:
        env["HOTCFG_SOURCE"] = str(source)
    if settings is not None:
        (tmp_path / "alt_settings.py").write_text(
            f"from exampleproject.settings import *  # noqa\n{settings}\n"
        )
        env["DJANGO_SETTINGS_MODULE"] = "alt_settings"
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=50,
        check=False,
    )  # fmt: skip
    return out.returncode, out.stdout + out.stderr


def test_check_passes_on_the_example(tmp_path):
    code, out = manage(tmp_path, "check")
    assert (code, "no issues" in out) == (0, True), out


def test_check_reports_an_invalid_source_without_its_content(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("password: hunter2\nlist: [1, 2\n")
    code, out = manage(tmp_path, "check", source=bad)
    assert code == 1
    assert f"(hotcfg.E003) {bad}:" in out
    assert "hunter2" not in out


def test_check_reports_a_missing_source(tmp_path):
    code, out = manage(tmp_path, "check", source=tmp_path / "absent.yaml")
    assert code == 1
    assert "(hotcfg.E002)" in out
    assert "file not found" in out


def test_check_reports_no_source(tmp_path):
    code, out = manage(tmp_path, "check", settings="HOTCFG = {}")
    assert code == 1
    assert "(hotcfg.E001) no hotcfg configuration source" in out


def test_bad_hotcfg_setting_is_improperly_configured(tmp_path):
    code, out = manage(tmp_path, "check", settings="HOTCFG = {'SORCE': 'x.yaml'}")
    assert code == 1
    assert "ImproperlyConfigured: settings.HOTCFG: HOTCFG_SORCE: unknown" in out


def test_validate_command_exit_codes(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": {"b": 1}}')
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\na: 2\n")
    code, out = manage(tmp_path, "hotcfg_validate", good)
    assert (code, out.startswith(f"ok: {good} (1 top-level keys")) == (0, True), out
    code, out = manage(tmp_path, "hotcfg_validate", bad)
    assert code == 1
    assert f"CommandError: invalid: {bad}:2:1: invalid YAML: duplicate key" in out
    code, out = manage(tmp_path, "hotcfg_validate")  # the configured source
    assert code == 0, out
    assert str(PROJECT / "config.yaml") in out


@pytest.fixture
def django_app(fresh_hotcfg, monkeypatch):
    """``django_app(**settings)``: the example project's app and middleware
    installed in this process, for the rest of the test, with ``settings``
    overridden (``HOTCFG``, ``ROOT_URLCONF``, ...).

    Django's settings are configured once per process, so each test installs
    what it needs with ``override_settings``, Django's own way for tests:
    installing the app runs its ``ready()`` again, inside the test's fresh
    hotcfg, as ``django.setup()`` does at startup."""
    from django.apps import apps
    from django.conf import settings
    from django.test.utils import override_settings

    if not settings.configured:
        settings.configure()
    if not apps.ready:  # override_settings(INSTALLED_APPS=...) needs a registry
        django.setup()
    monkeypatch.syspath_prepend(str(PROJECT))
    example = importlib.import_module("exampleproject.settings")
    with contextlib.ExitStack() as stack:

        def install(**overrides):
            installed = overrides.pop("INSTALLED_APPS", example.INSTALLED_APPS)
            stack.enter_context(override_settings(**{
                "MIDDLEWARE": example.MIDDLEWARE,
                "ALLOWED_HOSTS": example.ALLOWED_HOSTS,
                **overrides,
            }))  # fmt: skip
            # Apart and after: override_settings installs apps before it sets
            # the other settings, and ready() must see HOTCFG.
            stack.enter_context(override_settings(INSTALLED_APPS=installed))
            return settings

        yield install


def test_middleware_with_test_clients(tmp_path, fresh_hotcfg, django_app):
    from django.http import JsonResponse
    from django.test import AsyncClient, Client
    from django.urls import path as route
    from exampleproject import urls as example_urls

    source = tmp_path / "config.yaml"
    source.write_text("greeting: one\n")

    def twice(request):
        first = request.hotcfg.get("greeting")
        fresh_hotcfg.save(source, "greeting: during\n")
        fresh_hotcfg.wait_for("greeting", "during")  # the reader moved on, not the pin
        return JsonResponse({"first": first, "second": hotcfg.get("greeting"),
                             "same": request.hotcfg is _api.pinned()})  # fmt: skip

    async def twice_async(request):
        first = request.hotcfg.get("greeting")
        fresh_hotcfg.save(source, "greeting: async-during\n")
        await fresh_hotcfg.wait_for_async("greeting", "async-during")
        return JsonResponse({"first": first, "second": hotcfg.get("greeting")})

    urls = types.ModuleType("probe_urls")
    urls.urlpatterns = [
        route("twice", twice),
        route("twice_async", twice_async),
        *example_urls.urlpatterns,
    ]
    django_app(ROOT_URLCONF=urls, HOTCFG={"SOURCE": source, "DEBOUNCE_MS": 10})

    client = Client()
    assert client.get("/").json()["greeting"] == "one"
    assert client.get("/twice").json() == {
        "first": "one", "second": "one", "same": True
    }  # fmt: skip
    assert client.get("/").json()["greeting"] == "during"
    assert _api.pinned() is None
    token = _api.pin()  # as Gunicorn's pre_request hook does
    fresh_hotcfg.save(source, "greeting: hooked\n")
    fresh_hotcfg.wait_for("greeting", "hooked")
    assert client.get("/").json()["greeting"] == "during"
    assert _api.pinned() is not None  # the hook's pin is left to the hook
    _api.unpin(token)

    async def async_requests():
        client = AsyncClient()
        first = (await client.get("/twice_async")).json()
        after = (await client.get("/async")).json()
        return first, after, _api.pinned()

    first, after, left_pinned = asyncio.run(async_requests())
    assert first == {"first": "hooked", "second": "hooked"}
    assert after["greeting"] == "async-during"
    assert left_pinned is None


def test_app_without_hotcfg_setting_keeps_explicit_configure(
    tmp_path, monkeypatch, django_app
):
    config = tmp_path / "c.yaml"
    config.write_text("value: explicit\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(tmp_path / "absent.yaml"))
    hotcfg.configure(source=config)
    settings = django_app(INSTALLED_APPS=["hotcfg.integrations.django"])
    assert not hasattr(settings, "HOTCFG")  # so ready() keeps configure()'s source
    assert hotcfg.get("value") == "explicit"
