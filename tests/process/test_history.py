"""The master's history file, numbering across restarts, rollback through
the publisher, and the control socket (its protocol and its uid check)."""

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from hotcfg._errors import ControlError
from hotcfg._master import control as _control
from hotcfg._master import history as _history
from hotcfg._master.publisher import Publisher
from hotcfg._segment import payload as _payload
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from tests.waiting import wait_for

NOBODY = 65534


def history_path(segments, config):
    """The history file of the service reading ``config``."""
    return Path(_history.path_for(str(segments), "hotcfg", f"file:{config}"))


def start(config, segments, **settings):
    cfg = Settings.resolve(source=str(config), segment_dir=str(segments), **settings)
    segment = Segment.create(cfg.resolved_segment_dir, name=cfg.name)
    publisher = Publisher(FileSource.from_settings(cfg), segment, cfg)
    publisher.publish_from_source(raise_errors=True)
    return publisher


def live(publisher):
    return _payload.decode(publisher.segment.buffer)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("value: one\n")
    return path


def test_history_survives_a_restart_and_numbering_continues(config, tmp_path):
    segments = tmp_path / "segments"
    first = start(config, segments)
    config.write_text("value: two\n")
    first.publish_from_source()
    first.close()
    history_file = history_path(segments, config)
    assert history_file.stat().st_mode & 0o777 == 0o600

    second = start(config, segments)
    try:
        assert [e.generation for e in second.history.entries] == [1, 2, 3]
        assert second.generation == 3  # not 1: the new segment continues
        assert live(second).generation == 3
        assert second.history.entries[1].payload == _payload.encode({"value": "two"})
    finally:
        second.close()


def test_history_keeps_the_newest_and_zero_keeps_no_file(config, tmp_path):
    publisher = start(config, tmp_path / "segments", history=2)
    for n in range(5):
        config.write_text(f"value: {n}\n")
        publisher.publish_from_source()
    assert [e.generation for e in publisher.history.entries] == [5, 6]
    publisher.close()
    none = start(config, tmp_path / "other", history=0)
    none.close()
    assert not list((tmp_path / "other").glob("*.history"))


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "world-readable", "symlink"]
)
def test_an_untrusted_history_file_is_refused_with_its_reason(
    config, tmp_path, caplog, damage
):
    segments = tmp_path / "segments"
    start(config, segments).close()
    path = history_path(segments, config)
    if damage == "garbage":
        path.write_bytes(b"\x93not a history")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-3])
    elif damage == "world-readable":
        path.chmod(0o644)
    else:
        target = tmp_path / "elsewhere"
        target.write_bytes(path.read_bytes())
        target.chmod(0o600)
        path.unlink()
        path.symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="hotcfg"):
        publisher = start(config, segments)
    try:
        assert "ignoring the history file" in caplog.text
        assert publisher.generation == 1  # started afresh
        assert [e.generation for e in publisher.history.entries] == [1]
    finally:
        publisher.close()


def test_rollback_publishes_a_new_generation_and_the_next_save_wins(config, tmp_path):
    publisher = start(config, tmp_path / "segments")
    try:
        config.write_text("value: two\n")
        assert publisher.publish_from_source() == 2
        entry = publisher.history.find(1)
        assert publisher.republish(entry, timeout_s=1) == 3
        assert live(publisher)["value"] == "one"
        assert live(publisher).source.startswith("rollback:1 ")
        assert publisher.history.entries[-1].hash == entry.hash
        # Reading the file again finds what the last read found: the rollback
        # stays (a watcher's confirming read, a touch, the same text saved).
        assert publisher.publish_from_source() is None
        assert live(publisher)["value"] == "one"
        # A reload (Gunicorn's HUP) publishes what the source holds.
        publisher.request_publish()
        assert publisher.generation == 4
        assert live(publisher)["value"] == "two"
        # And so does a new content of the file.
        config.write_text("value: three\n")
        assert publisher.publish_from_source() == 5
    finally:
        publisher.close()


def test_a_rollback_survives_the_watchers_next_stat_tick(config, tmp_path):
    """A rollback made right after a save is not undone by the watcher
    reading that save once more at its next stat tick."""
    segments = tmp_path / "segments"
    publisher = start(config, segments, poll_interval_ms=50, debounce_ms=0)
    publisher.start_watching()
    try:
        config.write_text("value: two\n")
        wait_for(lambda: publisher.generation == 2, "the save published")
        assert publisher.republish(publisher.history.find(1), timeout_s=5) == 3
        # Several ticks: each one stats the file, and the first re-reads it
        # (forced, in case the save's own confirming read came earlier).
        watcher, ticks = publisher._watcher, []
        watcher._confirm = True
        tick = watcher._tick
        watcher._tick = lambda: (tick(), ticks.append(1))
        wait_for(lambda: len(ticks) >= 3, "three stat ticks")
        assert publisher.generation == 3
        assert live(publisher)["value"] == "one"
        config.write_text("value: three\n")
        wait_for(lambda: publisher.generation == 4, "the next save")
    finally:
        publisher.close()


@pytest.fixture
def served(config, tmp_path):
    publisher = start(config, tmp_path / "segments")
    server = _control.start(publisher)
    yield publisher, server
    publisher.close()


def test_control_socket_answers_history_payload_and_rollback(served, config):
    publisher, server = served
    assert Path(server.path).stat().st_mode & 0o777 == 0o600
    config.write_text("value: two\n")
    publisher.publish_from_source()
    answer = _control.request(server.path, {"cmd": "history"})
    assert answer["live"] == 2
    assert [e["generation"] for e in answer["entries"]] == [1, 2]
    assert set(answer["entries"][0]) == {
        "generation", "published_at", "source", "size", "hash",
        "action", "author", "message",
    }  # fmt: skip
    entry = _control.request(server.path, {"cmd": "payload", "generation": 1})["entry"]
    assert _payload.decode_payload(entry["payload"])["value"] == "one"
    with pytest.raises(ControlError, match="'author' must be text"):
        _control.request(server.path, {"cmd": "rollback", "author": 7})
    rolled = _control.request(
        server.path,
        {"cmd": "rollback", "to": None, "author": "ann@desk", "message": "too small"},
    )
    assert (rolled["generation"], rolled["from"]) == (3, 1)
    assert live(publisher)["value"] == "one"
    newest = _control.request(server.path, {"cmd": "history"})["entries"][-1]
    assert (newest["action"], newest["author"], newest["message"]) == (
        "rollback",
        "ann@desk",
        "too small",
    )
    for bad, reason in [
        ({"cmd": "payload", "generation": 99}, "not in the history"),
        ({"cmd": "rollback", "to": 3}, "live one already"),
        ({"cmd": "rollback", "to": 1}, "live already"),
        ({"cmd": "payload", "generation": "1"}, "positive integer"),
        ({"cmd": "nope"}, "unknown command"),
    ]:
        with pytest.raises(ControlError, match=reason):
            _control.request(server.path, bad)


def test_a_broken_client_is_answered_and_does_not_block_others(served):
    _, server = served
    with socket.socket(socket.AF_UNIX) as raw, _control._address(server.path) as at:
        raw.connect(at)
        raw.sendall(b"\xff\xff\xff\xff")  # announces 4 GiB
        raw.settimeout(5)
        reply = _control.recv_message(raw, max_bytes=1 << 16)
    assert reply == {"ok": False, "error": reply["error"]}
    assert "exceeds" in reply["error"]
    silent = socket.socket(socket.AF_UNIX)
    with _control._address(server.path) as at:
        silent.connect(at)  # says nothing; its thread waits for it alone
    try:
        assert _control.request(server.path, {"cmd": "history"})["live"] == 1
    finally:
        silent.close()


def test_the_socket_is_removed_on_close(config, tmp_path):
    publisher = start(config, tmp_path / "segments")
    server = _control.start(publisher)
    assert os.path.exists(server.path)
    publisher.close()
    assert not os.path.exists(server.path)
    with pytest.raises(ControlError, match="cannot talk to the master"):
        _control.request(server.path, {"cmd": "history"})


FORKED = textwrap.dedent(
    """
    import os, sys
    from hotcfg import _runtime
    from hotcfg._master import control as _control
    publisher = _runtime.ensure_publisher(start_watching=True)
    server = _control.start(publisher)
    listening = server._listener.fileno()
    pid = os.fork()
    if pid == 0:
        # The child holds no listening socket, and its server is inert.
        held = os.path.exists(f"/proc/self/fd/{listening}")
        os._exit(10 + held + 2 * (server._listener is not None))
    _, status = os.waitpid(pid, 0)
    answer = _control.request(server.path, {"cmd": "history"})
    print(os.waitstatus_to_exitcode(status), answer["live"])
    """
)


def test_a_forked_child_does_not_keep_the_listening_socket(config):
    from . import run_script

    assert run_script(FORKED, config) == "10 1"


CONNECT_AS = textwrap.dedent(
    """
    import os, sys
    from hotcfg._master import control as _control
    # Imported as root (nobody may not read the interpreter's files), then
    # connect as nobody: the kernel reports the connecting process's uid.
    os.setgroups([])
    os.setgid(%(uid)d)
    os.setuid(%(uid)d)
    try:
        _control.request(sys.argv[1], {"cmd": "history"}, timeout_s=10)
    except Exception as exc:
        print(type(exc).__name__, exc)
    else:
        print("served")
    """
) % {"uid": NOBODY}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as nobody")
def test_another_uid_is_refused_by_the_server(config, tmp_path):
    # The real socket's directory is 0700, so nobody cannot even reach it;
    # to test the uid check itself, this server listens where nobody can.
    publisher = start(config, tmp_path / "segments")
    base = Path(tempfile.mkdtemp(prefix="hotcfg-ctl-"))
    try:
        base.chmod(0o755)
        server = _control.ControlServer(str(base / "open.sock"), publisher)
        server.start()
        os.chmod(server.path, 0o666)
        root = ROOT_PATH
        env = dict(os.environ, PYTHONPATH=str(root))
        out = subprocess.run(
            [sys.executable, "-c", CONNECT_AS, server.path],
            env=env, cwd="/", capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert out.stdout.strip() == (
            "ControlDenied uid 65534 is not the service's uid 0; refused"
        ), out.stderr
        # The same request as the master's own uid is served.
        assert _control.request(server.path, {"cmd": "history"})["live"] == 1
        server.close()
    finally:
        publisher.close()
        shutil.rmtree(base)


ROOT_PATH = Path(__file__).resolve().parents[2]


def test_services_sharing_a_name_and_a_directory_keep_their_own_history(tmp_path):
    segments = tmp_path / "segments"
    first_config, second_config = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first_config.write_text("value: first\n")
    second_config.write_text("value: second\n")
    first, second = start(first_config, segments), start(second_config, segments)
    try:
        second_config.write_text("value: second-2\n")
        assert second.publish_from_source() == 2
        assert history_path(segments, first_config) != history_path(
            segments, second_config
        )
        assert [e.generation for e in first.history.entries] == [1]
        assert [e.generation for e in second.history.entries] == [1, 2]
    finally:
        first.close()
        second.close()
    restarted = start(first_config, segments)
    try:  # the first service's own history, not the second's
        assert [e.generation for e in restarted.history.entries] == [1, 2]
        assert restarted.history.entries[0].hash == first.history.entries[0].hash
    finally:
        restarted.close()


def master(config, segments, *, service=(), predecessor_pid=None, **settings):
    """A publisher as the Gunicorn master makes one: history and cache
    kept, and named after what the server says of the service."""
    cfg = Settings.resolve(source=str(config), segment_dir=str(segments), **settings)
    segment = Segment.create(cfg.resolved_segment_dir, name=cfg.name)
    publisher = Publisher(
        FileSource.from_settings(cfg),
        segment,
        cfg,
        service=service,
        predecessor_pid=predecessor_pid,
    )
    publisher.publish_from_source(raise_errors=True)
    return publisher


GUNICORN_A = ("proc_name=app:app", "bind=127.0.0.1:8001")
GUNICORN_B = ("proc_name=app:app", "bind=127.0.0.1:8002")


def test_two_live_masters_of_one_service_never_share_files(config, tmp_path, caplog):
    """Named alike (HOTCFG_NAME), on one source: the second master gets files
    of its own, and a WARNING names the setting that tells them apart."""
    segments = tmp_path / "segments"
    first = master(config, segments, name="shop", service=GUNICORN_A)
    config.write_text("value: two\n")
    first.publish_from_source()
    with caplog.at_level(logging.WARNING, logger="hotcfg"):
        second = master(config, segments, name="shop", service=GUNICORN_B)
    try:
        assert second.files.base == first.files.base + "-2"
        assert second.history.path == first.files.base + "-2.history"
        assert [e.generation for e in second.history.entries] == [1]
        assert [e.generation for e in first.history.entries] == [1, 2]
        warning = caplog.text
        assert f"another running master (pid {os.getpid()})" in warning
        assert "Give each service its own HOTCFG_NAME (now 'shop')," in warning
        assert f"{first.files.base}.lock" in warning
    finally:
        second.close()
        first.close()
    # Both gone: the next master of the service takes the first name again.
    again = master(config, segments, name="shop", service=GUNICORN_B)
    try:
        assert again.files.base == first.files.base
        assert [e.generation for e in again.history.entries] == [1, 2, 3]
    finally:
        again.close()


def test_the_default_name_tells_services_apart_by_their_server(config, tmp_path):
    """Under the default HOTCFG_NAME, Gunicorn's proc_name and bind are part of
    the files' names; a service given a name of its own is named by it alone
    (its address may change between starts)."""
    segments = tmp_path / "segments"
    a = master(config, segments, service=GUNICORN_A)
    b = master(config, segments, service=GUNICORN_B)
    try:
        assert a.files.base != b.files.base
        assert not a.files.base.endswith("-2")
        assert not b.files.base.endswith("-2")
    finally:
        a.close()
        b.close()
    named = master(config, segments, name="shop", service=GUNICORN_A)
    named.close()
    moved = master(config, segments, name="shop", service=GUNICORN_B)
    try:
        assert moved.files.base == named.files.base
        assert [e.generation for e in moved.history.entries] == [1, 2]
    finally:
        moved.close()


def test_a_forked_worker_does_not_keep_the_masters_files(config, tmp_path):
    """The lock is the master's: a worker that outlives it (a kill -9ed master)
    must not send the next master to other files."""
    segments = tmp_path / "segments"
    first = master(config, segments)
    base = first.files.base
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "worker": forked (its at-fork hooks have run), it
        os.close(write)  # says so, then waits until the test is done with it
        os.write(ready_write, b"r")
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"r"
    os.close(ready_read)
    try:
        first.close()
        second = master(config, segments)
        try:
            assert second.files.base == base
        finally:
            second.close()
    finally:
        os.close(write)
        os.waitpid(pid, 0)


def test_the_master_a_reexec_replaces_hands_its_files_over(config, tmp_path):
    """Gunicorn's USR2: the new master uses the old one's files while both
    run, without a WARNING, and holds the lock once the old one stops."""
    segments = tmp_path / "segments"
    old = master(config, segments, service=GUNICORN_A)
    new = master(config, segments, service=GUNICORN_A, predecessor_pid=os.getpid())
    try:
        assert new.files.base == old.files.base
        assert not new.files.held
        assert [e.generation for e in new.history.entries] == [1, 2]  # continued
        old.close()
        wait_for(lambda: new.files.held, "the lock taken over")
        # Held now: another master of the same service gets its own files.
        third = master(config, segments, service=GUNICORN_A)
        try:
            assert third.files.base == old.files.base + "-2"
        finally:
            third.close()
    finally:
        old.close()
        new.close()


def test_a_lock_file_that_is_not_ours_is_passed_over(config, tmp_path, caplog):
    segments = tmp_path / "segments"
    first = master(config, segments)
    base = first.files.base
    first.close()
    os.chmod(base + ".lock", 0o644)
    with caplog.at_level(logging.WARNING, logger="hotcfg"):
        second = master(config, segments)
    try:
        assert second.files.base == base + "-2"
        assert f"cannot use the lock file {base}.lock" in caplog.text
    finally:
        second.close()
