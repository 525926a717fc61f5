"""``hotcfg push`` against real Gunicorn masters following the key: FILE's
format comes from FILE (never the key's name), and a file a live master
would not parse is refused, naming the format and the masters, whatever
``HOTCFG_FORMAT`` the operator's shell holds."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def push(etcd, key, path, **env):
    """``hotcfg push`` as an operator runs it, with ``env`` in the shell
    (and no ``HOTCFG_FORMAT`` unless given): exit code and output."""
    shell = {k: v for k, v in os.environ.items() if k != "HOTCFG_FORMAT"}
    done = subprocess.run(
        [sys.executable, "-m", "hotcfg", "push", str(path), etcd.source(key)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**shell, **env},
    )
    return done.returncode, done.stdout, done.stderr


def follow(start_service, tmp_path, etcd, key, name, **env):
    """A Gunicorn master (2 workers) following ``key``, once its fleet
    record is in etcd."""
    where = tmp_path / name
    where.mkdir()
    service = start_service(
        where,
        workers=2,
        env_extra={
            "HOTCFG_SOURCE": etcd.source(key),
            "HOTCFG_NAME": name,
            "HOTCFG_ETCD_PROGRESS_MS": "500",
            "HOTCFG_FLEET_TTL_MS": "2000",
            **env,
        },
    )
    wait_for(lambda: service.proc.pid in masters(etcd, key), f"{name}'s record")
    return service


def masters(etcd, key):
    out = etcd.ctl("get", "--prefix", f"/hotcfg/fleet/{key.replace('/', '%2F')}/")
    return {json.loads(line)["pid"] for line in out.splitlines() if "{" in line}


def mod_revision(etcd, key):
    """The key's last write (the store's revision moves with the records)."""
    return json.loads(etcd.ctl("get", key, "--write-out=json"))["kvs"][0][
        "mod_revision"
    ]


def named(service, name):
    return f"{socket.gethostname()}:{service.proc.pid} ({name})"


def test_a_yaml_file_is_refused_for_json_masters_whatever_the_shell_says(
    etcd, start_service, tmp_path
):
    key = "/app/config.json"
    etcd.put(key, '{"value": "one"}')
    alpha = follow(start_service, tmp_path, etcd, key, "alpha")
    beta = follow(start_service, tmp_path, etcd, key, "beta")
    revision = mod_revision(etcd, key)

    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("value: two\n")
    code, out, err = push(etcd, key, yaml_file, HOTCFG_FORMAT="yaml")
    assert code == 1, out + err
    assert err.startswith(f"refused: {key} is read as json by 2 live masters (")
    assert named(alpha, "alpha") in err
    assert named(beta, "beta") in err
    assert f"{yaml_file} does not parse as json" in err
    assert err.rstrip().endswith("nothing written")
    assert mod_revision(etcd, key) == revision
    alpha.all_workers_answer("one")

    json_file = tmp_path / "config.json"
    json_file.write_text('{"value": "two"}')
    code, out, err = push(etcd, key, json_file, HOTCFG_FORMAT="yaml")
    assert code == 0, err
    alpha.all_workers_answer("two")
    beta.all_workers_answer("two")

    # No live master: the key's name and the shell's HOTCFG_FORMAT decide,
    # as they did before the masters said what they read.
    alpha.stop(signal.SIGTERM)
    beta.stop(signal.SIGTERM)
    assert masters(etcd, key) == set()
    code, _, err = push(etcd, key, yaml_file)
    assert code == 78
    assert "the master reads /app/config.json as json: give a json file" in err
    assert push(etcd, key, yaml_file, HOTCFG_FORMAT="yaml")[0] == 0


def test_a_key_without_a_suffix_takes_the_files_format_and_each_masters(
    etcd, start_service, tmp_path
):
    key = "/app/config"
    etcd.put(key, "value: one\n")
    plain = follow(start_service, tmp_path, etcd, key, "plain", HOTCFG_FORMAT="yaml")
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("value: two\n")
    code, out, err = push(etcd, key, yaml_file)
    assert code == 0, err
    assert out.startswith(f"pushed {yaml_file} to {etcd.source(key)}: revision ")
    plain.all_workers_answer("two")

    # A second master reads the key as JSON (it starts on a JSON value):
    # the YAML file is refused for it alone; a JSON file both read alike
    # goes to both.
    etcd.put(key, '{"value": "json"}')
    plain.all_workers_answer("json")
    strict = follow(start_service, tmp_path, etcd, key, "strict", HOTCFG_FORMAT="json")
    yaml_file.write_text("value: three\n")
    code, _, err = push(etcd, key, yaml_file)
    assert code == 1
    assert f"{key} is read as json by 1 live master ({named(strict, 'strict')})" in err
    assert "plain" not in err
    json_file = tmp_path / "config.json"
    json_file.write_text('{"value": "three"}')
    code, _, err = push(etcd, key, json_file)
    assert code == 0, err
    plain.all_workers_answer("three")
    strict.all_workers_answer("three")
