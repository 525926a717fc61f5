"""A rollback is validated against today's validators, under real Gunicorn
(4 workers), through ``hotcfg rollback``: content that was good when it was
published, and that today's rules refuse, is never published again."""

import json

import pytest

pytestmark = pytest.mark.e2e


def generations(service):
    out = service.hotcfg("history", "--json")
    assert out.returncode == 0, out.stderr
    return [entry["generation"] for entry in json.loads(out.stdout)]


def test_a_rollback_to_content_todays_validator_refuses_is_refused(
    start_service, tmp_path
):
    refused = tmp_path / "refused-values"
    refused.write_text("")
    service = start_service(
        tmp_path,
        config="value: one\n",
        env_extra={
            "HOTCFG_VALIDATOR": "tests.apps.validators:not_listed",
            "REFUSED_VALUES": str(refused),
        },
    )
    service.all_workers_answer("one")
    service.write_atomic("value: two\n")
    service.all_workers_answer("two")
    assert generations(service) == [1, 2]

    refused.write_text("one\n")  # generation 1's content is refused from now on
    out = service.hotcfg("rollback", "--to", "1")
    assert (out.returncode, out.stdout) == (1, ""), out.stderr
    assert "rejected by validator tests.apps.validators:not_listed" in out.stderr
    assert "value is on today's refused list" in out.stderr
    assert generations(service) == [1, 2]  # nothing was published
    service.all_workers_answer("two")
    assert {w["generation"] for w in service.status()[0]["workers"]} == {2}

    # The same rollback once the rules accept that content again.
    refused.write_text("")
    out = service.hotcfg("rollback", "--to", "1")
    assert out.returncode == 0, out.stderr
    assert "generation 3 is live: the content of generation 1" in out.stdout
    service.all_workers_answer("one")
