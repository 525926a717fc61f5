"""The WSGI middleware pins one snapshot per request, then releases it."""

from wsgiref.util import setup_testing_defaults

import pytest

import hotcfg
from hotcfg import _api
from hotcfg.integrations.wsgi import HotcfgMiddleware
from hotcfg.testing import use_config


def test_middleware_pins_until_the_body_is_closed():
    seen = []

    def app(environ, start_response):
        seen.append((_api.pinned() is not None, hotcfg.get("value")))
        start_response("200 OK", [])
        return [b"ok"]

    environ = {}
    setup_testing_defaults(environ)
    with use_config({"value": "one"}) as config:
        body = HotcfgMiddleware(app)(environ, lambda *a: None)
        config.set({"value": "two"})
        assert hotcfg.get("value") == "one"  # still this request's snapshot
        assert list(body) == [b"ok"]
        body.close()
        assert _api.pinned() is None
        assert hotcfg.get("value") == "two"
    assert seen == [(True, "one")]


def test_an_app_that_raises_leaves_no_pin():
    def app(environ, start_response):
        raise RuntimeError("boom")

    environ = {}
    setup_testing_defaults(environ)
    with use_config({"value": "one"}):
        with pytest.raises(RuntimeError, match="boom"):
            HotcfgMiddleware(app)(environ, lambda *a: None)
        assert _api.pinned() is None
