"""The Django app: system check, management command, middleware with
Django's test clients (sync and async), each in a child process of its own
running the example project."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.process import ROOT, run_script

from . import HELPERS

pytest.importorskip("django")
PROJECT = ROOT / "examples" / "django_project"


def manage(tmp_path, *args, settings=None, source=None):
    """``manage.py ARGS`` in the example project; (exit code, stdout + stderr)."""
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


CLIENT = HELPERS + textwrap.dedent(
    """
    import asyncio, json, sys, types
    sys.path.insert(0, sys.argv[2])
    os.environ["DJANGO_SETTINGS_MODULE"] = "exampleproject.settings"
    import django
    django.setup()
    from django.http import JsonResponse
    from django.test import AsyncClient, Client
    from django.test.utils import override_settings
    from django.urls import path as route
    import hotcfg
    from hotcfg import _api

    source = sys.argv[1]

    def twice(request):
        first = request.hotcfg.get("greeting")
        write(source, "greeting: during\\n")
        wait_for("greeting", "during")  # the reader moved on, not the pin
        return JsonResponse({"first": first, "second": hotcfg.get("greeting"),
                             "same": request.hotcfg is _api.pinned()})

    async def twice_async(request):
        first = request.hotcfg.get("greeting")
        write(source, "greeting: async-during\\n")
        while _api.reader().refresh().get("greeting") != "async-during":
            await asyncio.sleep(0.01)
        return JsonResponse({"first": first, "second": hotcfg.get("greeting")})

    urls = types.ModuleType("probe_urls")
    urls.urlpatterns = [route("twice", twice), route("twice_async", twice_async)]
    sys.modules["probe_urls"] = urls
    from exampleproject import urls as example_urls
    urls.urlpatterns += example_urls.urlpatterns

    async def async_requests():
        client = AsyncClient()
        first = (await client.get("/twice_async")).json()
        after = (await client.get("/async")).json()
        return first, after, _api.pinned() is not None

    out = {}
    with override_settings(ROOT_URLCONF="probe_urls"):
        client = Client()
        out["index"] = client.get("/").json()["greeting"]
        out["twice"] = client.get("/twice").json()
        out["after"] = client.get("/").json()["greeting"]
        out["leaked"] = _api.pinned() is not None
        token = _api.pin()              # as Gunicorn's pre_request hook does
        write(source, "greeting: hooked\\n")
        wait_for("greeting", "hooked")
        out["hooked"] = client.get("/").json()["greeting"]
        out["hook_pin_kept"] = _api.pinned() is not None
        _api.unpin(token)
        out["async_twice"], out["async_after"], out["async_leaked"] = (
            asyncio.run(async_requests()))
    print(json.dumps(out))
    """
)


def test_middleware_with_test_clients(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("greeting: one\n")
    out = run_script(CLIENT, config, config, PROJECT, HOTCFG_DEBOUNCE_MS="10")
    out = json.loads(out)
    assert out.pop("async_after")["greeting"] == "async-during"
    assert out == {
        "index": "one",
        "twice": {"first": "one", "second": "one", "same": True},
        "after": "during",
        "leaked": False,
        "hooked": "during",
        "hook_pin_kept": True,
        "async_twice": {"first": "hooked", "second": "hooked"},
        "async_leaked": False,
    }


EXPLICIT = textwrap.dedent(
    """
    import sys
    import django
    from django.conf import settings
    import hotcfg

    hotcfg.configure(source=sys.argv[1])
    settings.configure(INSTALLED_APPS=["hotcfg.integrations.django"])
    django.setup()                  # no settings.HOTCFG: configure() stays
    print(hotcfg.get("value"))
    """
)


def test_app_without_hotcfg_setting_keeps_explicit_configure(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: explicit\n")
    assert run_script(EXPLICIT, tmp_path / "absent.yaml", config) == "explicit"
