"""Real Gunicorn masters on one real etcd key while a canary runs beside it:
the master whose ``HOTCFG_HOST`` the canary selects serves it, the other
never does; their fleet records say which track they are on and at which
revision; a promote (one transaction) puts both on the key; a master
started during a canary follows the selector; the master's history says who
made each generation and why, from the key's audit record, the canary, or
``hotcfg rollback -m --author``."""

import argparse
import json
import socket

import pytest

from hotcfg._sources.etcd.rollout import Audit, Canary, Selector
from hotcfg.cli.audit import author
from tests.waiting import wait_for

from .test_fleet import key_revision, records, start_master

pytestmark = pytest.mark.e2e

KEY = "/app/config.yaml"


def quoted(text):
    """``text`` as one value of ``etcdctl txn``'s input (a Go string)."""
    return json.dumps(text)


def canary_put(selector, text, **fields):
    record = Canary(Selector.parse(selector), text.encode(), **fields).encode()
    return f"put {KEY}#canary {quoted(record.decode())}"


def audit_put(action, author, message):
    record = Audit(action, author, message, at=1.0).encode().decode()
    return f"put {KEY}#audit {quoted(record)}"


def history(service):
    out = service.hotcfg("history", "--json", "--pid", str(service.proc.pid))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def history_text(service):
    out = service.hotcfg("history", "--pid", str(service.proc.pid))
    assert out.returncode == 0, out.stderr
    return out.stdout


def settled(etcd, service, track, revision):
    """``service``'s record: on ``track`` at ``revision``, no rejection,
    every worker on its generation (what ``hotcfg promote`` checks)."""
    mine = records(etcd).get(service.proc.pid)
    return (
        mine is not None
        and mine["track"] == track
        and mine["revision"] == revision
        and mine["error"] is None
        and mine["workers"]
        and all(w["generation"] == mine["generation"] for w in mine["workers"])
    )


def test_only_the_selected_master_serves_the_canary_and_a_promote_moves_both(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    chosen = start_master(start_service, tmp_path, etcd, "web1", 2, HOTCFG_HOST="web-1")
    other = start_master(start_service, tmp_path, etcd, "web2", 2, HOTCFG_HOST="web-2")
    chosen.all_workers_answer("one")
    other.all_workers_answer("one")
    main = key_revision(etcd)

    pushed = etcd.txn(
        canary_put("web-1", "value: canary\n", author="bob@desk", message="try it"),
        audit_put("canary", "bob@desk", "try it"),
    )
    chosen.all_workers_answer("canary")
    wait_for(lambda: settled(etcd, chosen, "canary", pushed), "web-1 on the canary")
    wait_for(lambda: settled(etcd, other, "main", main), "web-2 on the key")
    for _ in range(20):  # never the canary's content, not for one request
        assert other.get()["value"] == "one"
    newest = history(chosen)[-1]
    assert (newest["action"], newest["author"], newest["message"]) == (
        "canary",
        "bob@desk",
        "try it",
    )
    assert "canary by bob@desk: try it" in history_text(chosen)

    promoted = etcd.txn(
        f"put {KEY} {quoted('value: canary')}",
        f"del {KEY}#canary",
        audit_put("promote", "ann@desk", "ship it"),
    )
    other.all_workers_answer("canary")
    chosen.all_workers_answer("canary")
    wait_for(lambda: settled(etcd, chosen, "main", promoted), "web-1 on the key")
    wait_for(lambda: settled(etcd, other, "main", promoted), "web-2 promoted")
    newest = history(other)[-1]
    assert (newest["action"], newest["author"], newest["message"]) == (
        "promote",
        "ann@desk",
        "ship it",
    )
    assert "promote by ann@desk: ship it" in history_text(other)


def test_a_master_started_during_a_canary_follows_its_selector(
    etcd, start_service, tmp_path
):
    etcd.put(KEY, "value: one\n")
    pushed = etcd.txn(canary_put("web-1", "value: canary\n"))
    chosen = start_master(start_service, tmp_path, etcd, "web1", 2, HOTCFG_HOST="web-1")
    other = start_master(start_service, tmp_path, etcd, "web3", 2, HOTCFG_HOST="web-3")
    chosen.all_workers_answer("canary")
    other.all_workers_answer("one")
    wait_for(lambda: settled(etcd, chosen, "canary", pushed), "web-1 on the canary")
    # Aborted: the canary's master goes back to the key.
    etcd.txn(f"del {KEY}#canary", audit_put("abort", "bob@desk", "too slow"))
    chosen.all_workers_answer("one")
    wait_for(
        lambda: settled(etcd, chosen, "main", key_revision(etcd)), "web-1 on the key"
    )
    newest = history(chosen)[-1]
    assert (newest["action"], newest["author"], newest["message"]) == (
        "abort",
        "bob@desk",
        "too slow",
    )


def test_a_rollback_is_recorded_with_its_author_and_message(service):
    service.all_workers_answer("one")
    service.write_atomic("value: two\n")
    service.all_workers_answer("two")
    done = service.hotcfg("rollback", "-m", "pool too small", "--author", "ann@desk")
    assert done.returncode == 0, done.stderr
    service.all_workers_answer("one")
    entries = json.loads(service.hotcfg("history", "--json").stdout)
    assert (entries[-1]["action"], entries[-1]["author"], entries[-1]["message"]) == (
        "rollback",
        "ann@desk",
        "pool too small",
    )
    assert entries[0]["author"] is None  # the file's generations: nobody known
    assert "rollback by ann@desk: pool too small" in service.hotcfg("history").stdout

    service.write_atomic("value: three\n")
    service.all_workers_answer("three")
    done = service.hotcfg("rollback")
    assert done.returncode == 0, done.stderr
    entries = json.loads(service.hotcfg("history", "--json").stdout)
    me = author(argparse.Namespace(author=None))  # user@host, as the CLI's
    assert me.endswith(f"@{socket.gethostname()}")
    assert (entries[-1]["action"], entries[-1]["author"], entries[-1]["message"]) == (
        "rollback",
        me,
        None,
    )
