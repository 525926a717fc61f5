"""A staged rollout from the command line, on a real etcd member:
``push --canary``, ``promote``, ``abort``, ``history etcd://...`` and the
canary in ``status --fleet``. The masters' fleet records are written by
hand here, in the shape ``_master.fleet.build_record`` gives them, with the
``track`` a master serving canaries adds."""

import json
import threading

import pytest

from hotcfg import cli
from hotcfg._master import fleet as _fleet
from hotcfg._sources.etcd.rollout import Audit, Canary

KEY = "/app/config.yaml"
CANARY = KEY + "#canary"
AUDIT = KEY + "#audit"


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _get(etcd, key):
    """``key``'s value and mod_revision (None, 0: no such key)."""
    reply = json.loads(etcd.ctl("get", "--write-out=json", key))
    kvs = reply.get("kvs") or []
    if not kvs:
        return None, 0
    import base64

    return base64.b64decode(kvs[0]["value"]), int(kvs[0]["mod_revision"])


def _record(etcd, host, pid, *, track, revision, error=None, behind=False):
    """Put a fleet record of a master on ``host`` as a running one would."""
    record = _fleet.build_record(
        host=host,
        pid=pid,
        service="app",
        source=etcd.source(KEY),
        revision=revision,
        generation=5,
        published_at=1000.0,
        workers=[(pid + 1, 5), (pid + 2, 4 if behind else 5)],
        error=error,
        serving="revision" if error is None else f"rejected revision {revision}",
        fmt="yaml",
        max_bytes=1 << 20,
    )
    record["track"] = track
    etcd.put(
        _fleet.record_key(KEY, host, pid),
        _fleet.encode_record(record, updated_at=1000.0).decode(),
    )


@pytest.fixture
def main(etcd):
    """``KEY`` holding a first document; its revision."""
    return etcd.put(KEY, "pool: 4\nname: app\n")


def _canary(etcd, tmp_path, capsys, text="pool: 8\nname: app\n", *more):
    path = _file(tmp_path, "canary.yaml", text)
    code = cli.main(["push", path, etcd.source(KEY), "--canary", "h1", *more])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_a_canary_push_writes_the_canary_and_its_audit_and_leaves_the_key(
    etcd, main, tmp_path, capsys
):
    _record(etcd, "h1", 11, track="main", revision=main)
    _record(etcd, "h2", 22, track="main", revision=main)
    out = _canary(
        etcd,
        tmp_path,
        capsys,
        "pool: 8\nname: app\n",
        "-m",
        "pool up",
        "--author",
        "ann@ops",
    )
    value, revision = _get(etcd, CANARY)
    assert (
        f"as a canary for h1 (1 of 2 live masters: h1:11): revision {revision}" in out
    )
    canary = Canary.decode(value)
    assert canary.content == b"pool: 8\nname: app\n"
    assert canary.base_revision == main
    assert (canary.author, canary.message) == ("ann@ops", "pool up")
    audit_value, audit_revision = _get(etcd, AUDIT)
    assert audit_revision == revision  # one transaction
    audit = Audit.decode(audit_value)
    assert (audit.action, audit.paths, audit.selector) == ("canary", ("pool",), "h1")
    assert _get(etcd, KEY) == (b"pool: 4\nname: app\n", main)


def test_a_canary_push_dry_run_shows_the_diff_and_the_hosts_and_writes_nothing(
    etcd, main, tmp_path, capsys
):
    _record(etcd, "h1", 11, track="main", revision=main)
    path = _file(tmp_path, "c.yaml", "pool: 8\nname: app\n")
    before = etcd.revision()
    assert (
        cli.main(["push", path, etcd.source(KEY), "--canary", "h1", "--dry-run"]) == 0
    )
    out = capsys.readouterr().out
    assert "~ pool" in out
    assert "would go to 1 of 1 live masters: h1:11" in out
    assert "dry run: nothing written" in out
    assert etcd.revision() == before


def test_a_stale_expected_revision_or_a_canary_pushed_meanwhile_conflicts(
    etcd, main, tmp_path, capsys, monkeypatch
):
    path = _file(tmp_path, "c.yaml", "pool: 8\nname: app\n")
    stale = ["--expect-revision", str(main - 1)]
    assert cli.main(["push", path, etcd.source(KEY), "--canary", "h1", *stale]) == 1
    assert "conflict:" in capsys.readouterr().err
    assert _get(etcd, CANARY) == (None, 0)

    # Another canary pushed between this push's read and its write.
    from hotcfg._sources.etcd import txn as _txn

    real = _txn.transact
    meanwhile = []

    def after_another(*args, **kwargs):
        meanwhile.append(etcd.put(CANARY, "another"))
        return real(*args, **kwargs)

    monkeypatch.setattr(_txn, "transact", after_another)
    assert cli.main(["push", path, etcd.source(KEY), "--canary", "h1"]) == 1
    err = capsys.readouterr().err
    assert f"its canary is revision {meanwhile[0]}, not none" in err
    assert "nothing" in err
    assert _get(etcd, CANARY) == (b"another", meanwhile[0])


def test_promote_is_refused_without_a_canary(etcd, main, capsys):
    assert cli.main(["promote", etcd.source(KEY)]) == 1
    assert "no canary on" in capsys.readouterr().err
    assert cli.main(["abort", etcd.source(KEY)]) == 1
    assert "no canary on" in capsys.readouterr().err


def test_promote_is_refused_naming_each_master_not_ready(etcd, main, tmp_path, capsys):
    _canary(etcd, tmp_path, capsys)
    _, revision = _get(etcd, CANARY)
    _record(etcd, "h1", 4242, track="canary", revision=revision, behind=True)
    _record(etcd, "h1", 4343, track="canary", revision=revision, error="bad: x")
    _record(etcd, "h1", 77, track="main", revision=main)
    _record(etcd, "h2", 88, track="main", revision=main)  # not selected
    before = etcd.revision()
    assert cli.main(["promote", etcd.source(KEY)]) == 1
    err = capsys.readouterr().err
    assert "h1:4242 has 1 worker behind" in err
    assert "h1:4343 rejected the canary: bad: x" in err
    assert "h1:77 is on main" in err
    assert "h2:88" not in err
    assert "nothing written" in err
    assert etcd.revision() == before

    # --force skips the checks, not the compare-and-swap.
    assert cli.main(["promote", etcd.source(KEY), "--force", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["promoted"] is True
    assert report["forced"] is True
    assert _get(etcd, KEY)[0] == b"pool: 8\nname: app\n"


def test_promote_is_refused_when_no_master_is_on_the_canary_or_main_moved(
    etcd, main, tmp_path, capsys
):
    _canary(etcd, tmp_path, capsys)
    _record(etcd, "h2", 88, track="main", revision=main)
    assert cli.main(["promote", etcd.source(KEY)]) == 1
    assert "no live master is on the canary" in capsys.readouterr().err

    _, revision = _get(etcd, CANARY)
    _record(etcd, "h1", 11, track="canary", revision=revision)
    moved = etcd.put(KEY, "pool: 5\nname: app\n")
    assert cli.main(["promote", etcd.source(KEY)]) == 1
    err = capsys.readouterr().err
    assert f"it is at revision {moved}, the canary was pushed on {main}" in err
    assert _get(etcd, KEY)[0] == b"pool: 5\nname: app\n"


def test_a_promote_puts_the_key_and_deletes_the_canary_in_one_revision(
    etcd, main, tmp_path, capsys
):
    _canary(etcd, tmp_path, capsys)
    _, revision = _get(etcd, CANARY)
    _record(etcd, "h1", 11, track="canary", revision=revision)
    _record(etcd, "h2", 22, track="main", revision=main)
    code = cli.main(
        ["promote", etcd.source(KEY), "-m", "looks good", "--author", "bob@ops"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    value, promoted = _get(etcd, KEY)
    assert f"to main: revision {promoted}" in out
    assert value == b"pool: 8\nname: app\n"
    assert _get(etcd, CANARY) == (None, 0)
    audit_value, audit_revision = _get(etcd, AUDIT)
    assert audit_revision == promoted
    audit = Audit.decode(audit_value)
    assert (audit.action, audit.author, audit.message) == (
        "promote",
        "bob@ops",
        "looks good",
    )
    assert audit.paths == ("pool",)
    # The canary deletion is at the same revision: etcd's history of it.
    gone = json.loads(
        etcd.ctl("get", "--write-out=json", f"--rev={promoted - 1}", CANARY)
    )
    assert gone["kvs"]


def test_two_promotes_started_together_one_wins(etcd, main, tmp_path, capsys):
    _canary(etcd, tmp_path, capsys)
    _, revision = _get(etcd, CANARY)
    _record(etcd, "h1", 11, track="canary", revision=revision)
    codes = [None, None]

    def promote(n):
        codes[n] = cli.main(["promote", etcd.source(KEY), "--author", f"p{n}"])

    threads = [threading.Thread(target=promote, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    err = capsys.readouterr().err
    assert sorted(codes) == [0, 1], err
    assert "no canary on" in err or "conflict:" in err
    winner = "p0" if codes[0] == 0 else "p1"
    assert Audit.decode(_get(etcd, AUDIT)[0]).author == winner


def test_abort_drops_the_canary_and_leaves_the_key(etcd, main, tmp_path, capsys):
    _canary(etcd, tmp_path, capsys)
    _, revision = _get(etcd, CANARY)
    assert cli.main(["abort", etcd.source(KEY), "-m", "p99 up", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["aborted"] is True
    assert report["canary_revision"] == revision
    assert _get(etcd, CANARY) == (None, 0)
    assert _get(etcd, KEY) == (b"pool: 4\nname: app\n", main)
    audit_value, audit_revision = _get(etcd, AUDIT)
    assert audit_revision == report["revision"]
    assert Audit.decode(audit_value).action == "abort"


def test_a_plain_push_writes_its_audit_in_the_same_transaction(
    etcd, main, tmp_path, capsys
):
    path = _file(tmp_path, "c.yaml", "pool: 4\nname: other\nnew: 1\n")
    code = cli.main(["push", path, etcd.source(KEY), "-m", "rename", "--author", "ann"])
    assert code == 0, capsys.readouterr().err
    _, revision = _get(etcd, KEY)
    audit_value, audit_revision = _get(etcd, AUDIT)
    assert audit_revision == revision
    audit = Audit.decode(audit_value)
    assert (audit.action, audit.author, audit.message) == ("push", "ann", "rename")
    assert audit.paths == ("name", "new")


def test_history_lists_each_change_with_its_author_and_paths(
    etcd, main, tmp_path, capsys
):
    etcd.put(KEY + "!other", "not this key's")  # inside the range, ignored
    first = _file(tmp_path, "a.yaml", "pool: 6\nname: app\n")
    assert (
        cli.main(["push", first, etcd.source(KEY), "-m", "six", "--author", "ann"]) == 0
    )
    _canary(etcd, tmp_path, capsys, "pool: 8\nname: app\n", "--author", "bob")
    assert cli.main(["promote", etcd.source(KEY), "--force", "--author", "cy"]) == 0
    by_hand = etcd.put(KEY, "pool: 9\nname: app\n")
    capsys.readouterr()

    assert cli.main(["history", etcd.source(KEY), "--json"]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    got = [(c["action"], c["author"], c["paths"]) for c in changes]
    assert got == [
        ("put", None, ["pool"]),
        ("promote", "cy", ["pool"]),
        ("canary", "bob", ["pool"]),
        ("push", "ann", ["pool"]),
        ("put", None, ["name", "pool"]),
    ]
    assert changes[0]["revision"] == by_hand
    assert changes[0]["at"] is None
    assert changes[3]["message"] == "six"

    assert cli.main(["history", etcd.source(KEY), "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "REVISION",
        "TIME",
        "ACTION",
        "AUTHOR",
        "MESSAGE",
        "PATHS",
    ]
    assert lines[1].split() == [str(by_hand), "-", "put", "-", "-", "pool"]
    assert lines[2].split()[2:4] == ["promote", "cy"]
    assert len(lines) == 3

    # A delete by hand (no audit record with it) is found between reads.
    etcd.ctl("del", KEY)
    deleted = etcd.revision()
    etcd.put(KEY + "!other", "later")  # not this key's: moves the store only
    assert cli.main(["history", etcd.source(KEY), "--limit", "2", "--json"]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert [(c["revision"], c["action"], c["keys"]) for c in changes] == [
        (deleted, "delete", [KEY]),
        (by_hand, "put", [KEY]),
    ]


def test_history_stops_at_compaction_and_says_where(etcd, main, tmp_path, capsys):
    for n in (5, 6, 7):
        path = _file(tmp_path, f"{n}.yaml", f"pool: {n}\nname: app\n")
        assert cli.main(["push", path, etcd.source(KEY), "--author", "ann"]) == 0
    _, last = _get(etcd, KEY)
    etcd.ctl("compact", str(last - 1))
    capsys.readouterr()
    assert cli.main(["history", etcd.source(KEY)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The oldest change kept is listed, with its audit record's paths.
    assert [line.split()[0] for line in lines[1:-1]] == [str(last), str(last - 1)]
    assert lines[2].split()[-1] == "pool"
    assert lines[-1] == f"etcd compacted the history before revision {last - 1}"


def test_status_fleet_shows_the_track_and_the_canary(etcd, main, tmp_path, capsys):
    _canary(
        etcd,
        tmp_path,
        capsys,
        "pool: 8\nname: app\n",
        "-m",
        "pool up",
        "--author",
        "ann@ops",
    )
    _, revision = _get(etcd, CANARY)
    _record(etcd, "h1", 11, track="canary", revision=revision, behind=True)
    _record(etcd, "h2", 22, track="main", revision=main)
    assert cli.main(["status", "--fleet", etcd.source(KEY)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"canary  revision {revision} for h1 (h1), pushed by ann@ops at "
    )
    assert lines[0].endswith(': "pool up"')
    assert lines[1] == "canary  not ready: h1:11 has 1 worker behind"
    assert lines[2].split()[:5] == ["HOST", "PID", "SERVICE", "REVISION", "TRACK"]
    assert lines[3].split()[:5] == ["h1", "11", "app", str(revision), "canary"]
    assert lines[4].split()[:5] == ["h2", "22", "app", str(main), "main"]

    assert cli.main(["status", "--fleet", etcd.source(KEY), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["canary"]["selector"] == "h1"
    assert report["canary"]["revision"] == revision
    assert report["canary"]["base_revision"] == main
    assert report["canary"]["author"] == "ann@ops"
    assert [r["track"] for r in report["records"]] == ["canary", "main"]

    assert cli.main(["abort", etcd.source(KEY)]) == 0
    capsys.readouterr()
    assert cli.main(["status", "--fleet", etcd.source(KEY), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["canary"] is None


def test_a_promote_whose_answer_was_lost_finds_its_own_write(
    etcd, main, tmp_path, capsys, monkeypatch
):
    """The transaction lands, its answer is lost and it is sent again (to
    the next member): the retry loses its compare, finds its own audit
    record and reports the promote done, not a conflict."""
    from hotcfg._sources.etcd import txn as _txn

    _canary(etcd, tmp_path, capsys)
    real = _txn.transact

    def sent_twice(*args, **kwargs):
        real(*args, **kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(_txn, "transact", sent_twice)
    assert cli.main(["promote", etcd.source(KEY), "--force"]) == 0
    out = capsys.readouterr().out
    _, revision = _get(etcd, KEY)
    assert f"to main: revision {revision}" in out


def test_a_promote_etcd_does_not_answer_may_have_happened(
    etcd, main, tmp_path, capsys, monkeypatch
):
    from hotcfg._errors import UnreachableError
    from hotcfg._sources.etcd import txn as _txn

    _canary(etcd, tmp_path, capsys)

    def unanswered(*args, **kwargs):
        raise UnreachableError("etcd unreachable: timed out", source=KEY)

    monkeypatch.setattr(_txn, "transact", unanswered)
    assert cli.main(["promote", etcd.source(KEY), "--force"]) == 75
    err = capsys.readouterr().err
    assert "the promote may or may not have happened" in err
    assert f"hotcfg history {etcd.source(KEY)}" in err


def test_a_push_to_main_while_a_canary_runs_says_promote_now_refuses_it(
    etcd, main, tmp_path, capsys
):
    _canary(etcd, tmp_path, capsys)
    _, revision = _get(etcd, CANARY)
    path = _file(tmp_path, "main.yaml", "pool: 5\nname: app\n")
    assert cli.main(["push", path, etcd.source(KEY)]) == 0
    err = capsys.readouterr().err
    assert f"note: a canary runs on {etcd.source(KEY)} (revision {revision})" in err
    assert "hotcfg promote refuses it now" in err


def test_history_shows_the_newest_change_when_compacted_past_it(
    etcd, main, tmp_path, capsys
):
    """etcd's auto-compaction passes a key's last write all the time: the
    newest change is still listed, from the range as it is now, with its
    audit record."""
    for n in (5, 6):
        path = _file(tmp_path, f"{n}.yaml", f"pool: {n}\nname: app\n")
        assert cli.main(["push", path, etcd.source(KEY), "--author", "ann"]) == 0
    _, last = _get(etcd, KEY)
    etcd.put(KEY + "!other", "moves the store only")
    now = etcd.revision()
    etcd.ctl("compact", str(now))
    capsys.readouterr()
    assert cli.main(["history", etcd.source(KEY), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(c["revision"], c["action"], c["author"]) for c in report["changes"]] == [
        (last, "push", "ann")
    ]
    assert report["compacted_before"] == now


def test_each_command_can_hold_to_the_canary_the_operator_reviewed(
    etcd, main, tmp_path, capsys
):
    """``--expect-canary-revision``: a canary pushed, replaced or dropped by
    someone else since the operator looked is a conflict, nothing written."""
    url = etcd.source(KEY)
    fix = _file(tmp_path, "fix.yaml", "pool: 9\nname: app\n")
    _canary(etcd, tmp_path, capsys)
    _, reviewed = _get(etcd, KEY + "#canary")
    # Someone else pushes a fix meanwhile.
    assert cli.main(["push", fix, url, "--canary", "h1"]) == 0
    _, theirs = _get(etcd, KEY + "#canary")
    capsys.readouterr()
    # A push meant to start the first canary, one meant to replace the
    # reviewed one, a promote and an abort of the reviewed one: refused.
    for command in (
        ["push", fix, url, "--canary", "h1", "--expect-canary-revision", "0"],
        ["push", fix, url, "--canary", "h1", "--expect-canary-revision", str(reviewed)],
        ["promote", url, "--force", "--expect-canary-revision", str(reviewed)],
        ["abort", url, "--expect-canary-revision", str(reviewed)],
    ):
        assert cli.main(command) == 1, command
        assert "conflict:" in capsys.readouterr().err
        assert _get(etcd, KEY + "#canary")[1] == theirs
    # The one running now, reviewed: taken.
    assert cli.main(["abort", url, "--expect-canary-revision", str(theirs)]) == 0
    assert _get(etcd, KEY + "#canary") == (None, 0)
    assert cli.main(["push", fix, url, "--expect-canary-revision", "0"]) == 2


def test_a_canary_for_hosts_nobody_reports_is_noted_and_a_dry_run_checks_the_review(
    etcd, main, tmp_path, capsys
):
    _record(etcd, "h1", 11, track="main", revision=main)
    url = etcd.source(KEY)
    _canary(etcd, tmp_path, capsys)
    _, running = _get(etcd, KEY + "#canary")
    path = _file(tmp_path, "typo.yaml", "pool: 9\nname: app\n")
    argv = ["push", path, url, "--canary", "h9", "--dry-run"]
    assert cli.main([*argv, "--expect-canary-revision", "0"]) == 1
    assert "conflict:" in capsys.readouterr().err
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "note: no live master reports h9 (the live hosts: h1)" in err
    assert f"it would replace the canary of revision {running}" in out


def test_status_fleet_says_when_main_moved_under_the_canary(
    etcd, main, tmp_path, capsys
):
    _record(etcd, "h1", 11, track="canary", revision=main)
    _canary(etcd, tmp_path, capsys)
    moved = etcd.put(KEY, "pool: 5\nname: app\n")
    assert cli.main(["status", "--fleet", etcd.source(KEY), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["canary"]["not_ready"][0] == (
        f"{KEY} moved since the canary was pushed: it is at revision {moved}, "
        f"the canary was pushed on {main}"
    )
