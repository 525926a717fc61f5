"""The WSGI middleware pins one snapshot per request, then releases it."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
    env = dict(os.environ, HOTCFG_SOURCE=str(config), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[(True, 'one')] None"
