"""A short soak: HTTP load on real Gunicorn workers while the config changes
20 times a second, alternating valid and invalid versions."""

import pytest

from tests.e2e import soak

pytestmark = pytest.mark.e2e


def test_soak_under_load(start_service, tmp_path):
    svc = start_service(
        tmp_path, env_extra=soak.service_env(tmp_path), workers=4, app=soak.APP
    )
    report = soak.run(svc, seconds=8, baseline_seconds=2, rate=20, connections=4)
    print(report.table())
    assert report.failures() == []
    # The run exercised what it claims to: changes seen under load, every
    # kind of invalid version written and each one refused by the master.
    assert report.changing.generations >= 10
    written = report.ledger.written
    assert min(written[k] for k in soak.INVALID_KINDS) >= 10
    log = svc.log.read_text()
    for reason in ("invalid YAML", "violates schema rule", "marked for rejection"):
        assert log.count(reason) >= 3, reason
