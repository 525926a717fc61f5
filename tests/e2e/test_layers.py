"""A real Gunicorn on a file, an etcd key and an environment override,
changed layer by layer, with ``hotcfg get --explain`` naming the layer."""

import json

import pytest

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"


def hotcfg_cli(service, *args, code=0):
    out = service.hotcfg(*args)
    assert out.returncode == code, out.stderr
    return out.stdout


def explain(service, path):
    return hotcfg_cli(service, "get", "--explain", path).splitlines()


def every_worker(service, path, value):
    service.all_workers_answer(value, path=f"/?key={path}")


def test_layers_change_one_by_one_and_explain_names_the_layer(
    etcd, start_service, tmp_path
):
    base = tmp_path / "conf" / "config.yaml"  # the file the service writes
    etcd_layer = etcd.source(KEY)
    etcd.put(KEY, "db:\n  host: etcd\n")
    service = start_service(
        tmp_path,
        workers=2,
        config="db:\n  timeout: 1\n  host: base\n",
        env_extra={
            "HOTCFG_SOURCE": f"conf/config.yaml | {etcd_layer}",
            "HOTCFG_SET__DB__TIMEOUT": "5",
            "HOTCFG_ETCD_PROGRESS_MS": "500",
        },
        cwd=tmp_path,  # the relative layer is made absolute against it
    )
    every_worker(service, "db.timeout", 5)
    every_worker(service, "db.host", "etcd")
    assert explain(service, "db.timeout") == [
        "db.timeout = 5",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
        f"  under  {base} = 1",
        f"  unset  {etcd_layer}",
    ]
    assert explain(service, "db.host") == [
        'db.host = "etcd"',
        f"  from   {etcd_layer}",
        f'  under  {base} = "base"',
        "  unset  environment",
    ]

    # The file changes: its new key arrives, the environment still wins.
    service.write_atomic("db:\n  timeout: 2\n  host: base2\n  port: 5432\n")
    every_worker(service, "db.port", 5432)
    every_worker(service, "db.timeout", 5)
    every_worker(service, "db.host", "etcd")
    assert explain(service, "db.port")[1] == f"  from   {base}"

    # etcd changes: it takes db.port, gives db.host back to the file, and
    # the environment still wins db.timeout.
    etcd.put(KEY, "db:\n  timeout: 3\n  port: 6543\n")
    every_worker(service, "db.port", 6543)
    every_worker(service, "db.host", "base2")
    every_worker(service, "db.timeout", 5)
    assert explain(service, "db.timeout") == [
        "db.timeout = 5",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
        f"  under  {etcd_layer} = 3",
        f"         {base} = 2",
    ]
    assert explain(service, "db.host")[1:] == [
        f"  from   {base}",
        "  unset  environment",
        f"         {etcd_layer}",
    ]
    answer = json.loads(hotcfg_cli(service, "get", "--explain", "db", "--json"))
    assert answer["keys"] == {
        "host": [str(base)],
        "port": [etcd_layer],
        "timeout": ["environment HOTCFG_SET__DB__TIMEOUT"],
    }
    assert answer["generation"] == service.status()[0]["generation"]
    assert hotcfg_cli(service, "get", "--explain", "db.nothing", code=1).startswith(
        "no key 'db.nothing' in generation"
    )

    # A rollback: the value comes from the rollback, not from a layer, and
    # the environment's override stays on top of it.
    rolled = hotcfg_cli(service, "rollback")
    assert rolled.startswith("generation 4 is live: the content of generation 2")
    every_worker(service, "db.port", 5432)
    assert explain(service, "db.port") == [
        "db.port = 5432",
        "  from   rollback to generation 2",
        "  unset  environment",
    ]
    assert explain(service, "db.timeout") == [
        "db.timeout = 5",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
        "  under  rollback to generation 2 = 2",
    ]


def test_a_master_restarted_with_another_override_while_etcd_is_down(
    etcd, start_service, tmp_path
):
    """The cache and the history keep the content without the overrides:
    restarted with another override while etcd is down, the service serves
    its new override over the cache, and a rollback applies it too."""
    source = etcd.source(KEY)
    settings = {"HOTCFG_SOURCE": source, "HOTCFG_ETCD_PROGRESS_MS": "500"}
    etcd.put(KEY, "value: one\ndb:\n  timeout: 9\n")
    (tmp_path / "first").mkdir()
    first = start_service(
        tmp_path / "first",
        workers=2,
        env_extra={**settings, "HOTCFG_SET__DB__TIMEOUT": "1"},
    )
    every_worker(first, "db.timeout", 1)
    etcd.put(KEY, "value: two\ndb:\n  timeout: 9\n")
    first.all_workers_answer("two")
    first.stop()
    etcd.stop()

    (tmp_path / "second").mkdir()
    second = start_service(  # the same service again, on its address
        tmp_path / "second",
        workers=2,
        port=first.port,
        env_extra={**settings, "HOTCFG_SET__DB__TIMEOUT": "2"},
    )
    second.all_workers_answer("two")
    every_worker(second, "db.timeout", 2)
    assert second.status()[0]["source"] == f"cache:{source}"
    cache = explain(second, "db.timeout")
    assert cache[:2] == [
        "db.timeout = 2",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
    ]
    assert cache[2].startswith("  under  the cache file ")
    assert cache[2].endswith(".cache (published at start) = 9")

    out = hotcfg_cli(second, "rollback", "--to", "1")
    assert out.startswith("generation 4 is live: the content of generation 1")
    second.all_workers_answer("one")
    every_worker(second, "db.timeout", 2)
    assert explain(second, "db.timeout") == [
        "db.timeout = 2",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
        "  under  rollback to generation 1 = 9",
    ]
