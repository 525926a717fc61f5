"""``status --fleet`` without a key reads HOTCFG_SOURCE's etcd layer, and
``validate`` on a layered source names the overrides it included."""

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"


def _hotcfg(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "hotcfg", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
    )


def test_status_fleet_defaults_to_the_etcd_layer_of_hotcfg_source(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    base = tmp_path / "base.yaml"
    base.write_text("other: 1\n")
    layered = f"{base} | {etcd.source(KEY)}"
    svc = start_service(
        tmp_path,
        workers=2,
        env_extra={"HOTCFG_SOURCE": layered, "HOTCFG_FLEET_TTL_MS": "2000"},
    )

    def listed():
        out = _hotcfg("status", "--fleet", "--json", env={"HOTCFG_SOURCE": layered})
        assert out.returncode == 0, out.stderr
        return [r["pid"] for r in json.loads(out.stdout)["records"]] == [svc.proc.pid]

    wait_for(listed, "the master's record, found from HOTCFG_SOURCE")
    out = _hotcfg("status", "--fleet", env={"HOTCFG_SOURCE": layered})
    assert out.returncode == 0, out.stderr
    assert str(svc.proc.pid) in out.stdout


def test_status_fleet_without_a_key_or_an_etcd_source_says_what_to_give(tmp_path):
    out = _hotcfg("status", "--fleet", env={"HOTCFG_SOURCE": str(tmp_path / "a.yaml")})
    assert out.returncode == 2
    assert "--fleet needs an etcd key" in out.stderr
    assert "HOTCFG_SOURCE" in out.stderr


def test_validate_a_layered_source_lists_the_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("db: {timeout: 1}\n")
    (tmp_path / "b.yaml").write_text("name: x\n")
    layered = "a.yaml | b.yaml"
    env = {"HOTCFG_SET__DB__TIMEOUT": "5", "HOTCFG_SET__LOG": "debug"}
    out = _hotcfg("validate", layered, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "overrides: 2 included" in out.stdout
    assert "HOTCFG_SET__DB__TIMEOUT (db.timeout)" in out.stdout
    assert "HOTCFG_SET__LOG (log)" in out.stdout
    assert "debug" not in out.stdout  # values may be secrets

    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTCFG_SET__")}
    done = subprocess.run(
        [sys.executable, "-m", "hotcfg", "validate", layered],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        cwd=tmp_path,
        env=dict(clean, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 0, done.stderr
    assert "overrides: none included" in done.stdout
