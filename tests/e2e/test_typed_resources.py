"""Typed configs, stateful resources and gevent workers under real Gunicorn."""

import pytest

from tests.e2e.test_gunicorn import start_service  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def test_model_violation_rejected_last_good_serves(start_service, tmp_path):  # noqa: F811
    svc = start_service(tmp_path, env_extra={"HOTCFG_MODEL": "tests.apps.models:Probe"})
    svc.all_workers_answer("one")
    svc.write_atomic("value: two\npool: yes\n")  # YAML's yes is a bool, not an int
    svc.wait_until(
        lambda: (
            "at pool: expected int, got bool" in (svc.status()[0]["last_error"] or "")
        ),
        "rejection",
    )
    assert svc.get()["value"] == "one"
    svc.write_atomic("value: two\npool: 3\n")
    svc.all_workers_answer("two")
