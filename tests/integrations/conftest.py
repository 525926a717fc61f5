"""Fixtures of the framework tests."""

import contextlib
import importlib

import pytest

from tests.process import ROOT

PROJECT = ROOT / "examples" / "django_project"


@pytest.fixture
def django_app(fresh_hotcfg, monkeypatch):
    """``django_app(**settings)``: the example project's app and middleware
    installed in this process, for the rest of the test, with ``settings``
    overridden (``HOTCFG``, ``ROOT_URLCONF``, ...).

    Django's settings are configured once per process, so each test installs
    what it needs with ``override_settings``, Django's own way for tests:
    installing the app runs its ``ready()`` again, inside the test's fresh
    hotcfg, as ``django.setup()`` does at startup."""
    django = pytest.importorskip("django")
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
