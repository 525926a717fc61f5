"""The Django app of the example project: the system check and the
management command through its ``manage.py``, in child processes (exit
codes and output, and settings modules of their own); the app's settings
and the middleware with Django's test clients (sync and async), in the
test's process."""

import asyncio
import io
import os
import subprocess
import sys
import types

import pytest

import hotcfg
from hotcfg import _api
from tests.etcd import free_port
from tests.integrations.conftest import PROJECT
from tests.process import ROOT

django = pytest.importorskip("django")


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


def unreachable(kind):
    """An etcd or HTTP source on a free port: nothing listens there."""
    if kind == "etcd":
        return f"etcd://127.0.0.1:{free_port()}/app/config.yaml"
    return f"http://127.0.0.1:{free_port()}/config.yaml"


def check(**options):
    """Django's ``check`` command in this process: its output, or the
    ``SystemCheckError`` that carries its errors."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    out = io.StringIO()
    try:
        call_command("check", stdout=out, stderr=out, **options)
    except SystemCheckError as exc:
        return str(exc)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["etcd", "http"])
def test_only_the_deploy_check_reads_the_network(kind, django_app):
    """migrate, runserver and check run the default checks: a CI job
    without etcd must pass them. check --deploy reads the store."""
    source = unreachable(kind)
    django_app(HOTCFG={"SOURCE": source, "ETCD_TIMEOUT_MS": 2000,
                       "HTTP_TIMEOUT_MS": 2000})  # fmt: skip
    assert "System check identified no issues" in check()
    assert "System check identified no issues" in check(tags=["hotcfg"])
    for options in ({"deploy": True}, {"deploy": True, "tags": ["hotcfg"]}):
        out = check(**options)
        assert "(hotcfg.E002)" in out, out
        assert "unreachable" in out or "refused" in out, out


def test_migrate_without_etcd_passes_and_check_deploy_fails(tmp_path):
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db")}
    source = unreachable("etcd")
    code, out = manage(
        tmp_path, "migrate", settings=f"DATABASES = {{'default': {sqlite!r}}}",
        source=source,
    )  # fmt: skip
    assert (code, "hotcfg" in out) == (0, False), out
    code, out = manage(tmp_path, "check", "--deploy", "--tag", "hotcfg", source=source)
    assert code == 1
    assert f"(hotcfg.E002) {source}: etcd unreachable" in out


def test_the_default_check_reads_the_file_layers_beside_a_remote_one(
    tmp_path, django_app
):
    bad = tmp_path / "base.yaml"
    bad.write_text("password: hunter2\nlist: [1, 2\n")
    layered = f"{bad} | {unreachable('etcd')}"
    django_app(HOTCFG={"SOURCE": layered, "ETCD_TIMEOUT_MS": 2000})
    out = check()
    assert f"(hotcfg.E003) {bad}:" in out, out
    assert "hunter2" not in out
    assert "etcd" not in out  # not read: the file's own error only
    bad.unlink()
    assert f"(hotcfg.E002) {bad}: file not found" in check()
    bad.write_text("list: [1, 2]\n")
    assert "System check identified no issues" in check()
    django_app(HOTCFG={"SOURCE": layered, "VALIDATOR": "tests.apps.nowhere:check"})
    assert "(hotcfg.E003)" in check()  # a validator that cannot be imported


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
