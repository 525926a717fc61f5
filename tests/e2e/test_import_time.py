"""A real Gunicorn worker whose app reads hotcfg at import time: the worker
logs where (file:line), once, and the read in the request is not warned
about; the value read at import stays while the configuration moves on."""

import re

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e

APP_FILE = ROOT / "tests" / "apps" / "import_time_app.py"
WARNING = re.compile(
    r"\[(\d+)\] \[WARNING\] hotcfg\.get\(\) at (\S+):(\d+) runs while a module "
    r"is being imported"
)


def test_worker_warns_about_a_read_at_import_time(start_service, tmp_path):
    svc = start_service(tmp_path, app="tests.apps.import_time_app:app", workers=2)
    svc.all_workers_answer("one", key="frozen")
    svc.write_atomic("value: two\n")
    seen = svc.all_workers_answer("two", key="value")
    assert {svc.get()["frozen"] for _ in range(4)} == {"one"}  # read once, for good
    warned = WARNING.findall(svc.log.read_text())
    # One warning per worker (each imports the app), naming the module's
    # top-level line; none for the request's read.
    assert sorted(int(pid) for pid, _, _ in warned) == sorted(seen)
    assert {(where, line) for _, where, line in warned} == {(str(APP_FILE), "12")}
