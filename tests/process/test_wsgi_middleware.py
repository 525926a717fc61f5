"""The WSGI middleware pins one snapshot per request, then releases it."""

import textwrap

from . import run_script

SCRIPT = textwrap.dedent(
    """
    from wsgiref.util import setup_testing_defaults
    from hotcfg import _api
    import hotcfg
    from hotcfg.integrations.wsgi import HotcfgMiddleware

    seen = []

    def app(environ, start_response):
        seen.append((_api.pinned() is not None, hotcfg.get("value")))
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = HotcfgMiddleware(app)
    environ = {}
    setup_testing_defaults(environ)
    body = wrapped(environ, lambda *a: None)
    assert list(body) == [b"ok"]
    assert _api.pinned() is not None  # held until the server closes the body
    body.close()
    print(seen, _api.pinned())
    """
)


def test_middleware_pins_and_unpins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    output = run_script(SCRIPT, config)
    assert output == "[(True, 'one')] None"
