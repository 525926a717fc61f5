"""The applier: a hint switches the reader in another thread, callbacks run
before the worker table says "applied", and volatile reads see the newest
generation inside a pinned request."""

import os
import signal
import textwrap
import threading
import time

import pytest

import hotcfg
from hotcfg import _api, _runtime
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from hotcfg._worker import applier as _applier
from hotcfg._worker.reader import ChangeCallbacks, Reader
from hotcfg.testing import use_config
from tests.process import run_script

TIMEOUT_S = 20


def wait_until(predicate, what):
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


@pytest.fixture
def published(tmp_path):
    source = tmp_path / "unused.yaml"
    source.write_text("{}\n")
    segment = Segment.create(str(tmp_path / "seg"), name="t")
    publisher = Publisher(FileSource(str(source), "yaml", 1 << 20), segment, Settings())
    publisher.publish({"value": 0})
    yield publisher
    publisher.close()


def test_a_wake_applies_in_the_applier_thread(published):
    callbacks = ChangeCallbacks()
    threads = []
    callbacks.add("value", lambda old, new: threads.append(threading.current_thread()))
    reader = Reader(published.segment.view(), slot=0, callbacks=callbacks)
    applier = _applier.Applier(reader.refresh, name="test-applier").start()
    try:
        published.publish({"value": 1})
        applier.wake()
        wait_until(lambda: reader.snapshot.get("value") == 1, "the switch")
        wait_until(lambda: threads, "the callback")
        assert [t.name for t in threads] == ["test-applier"]
    finally:
        applier.close()
        reader.close()
    assert not applier.alive
    applier.wake()  # after close: nothing, and no error


def test_the_worker_table_records_a_generation_only_after_its_callbacks(published):
    seen = []
    view = published.segment.view()

    def callback(old, new):
        # The table still shows the previous generation while callbacks run.
        seen.append(layout.read_workers(view.buffer))

    callbacks = ChangeCallbacks()
    callbacks.add("value", callback)
    reader = Reader(published.segment.view(), slot=3, callbacks=callbacks)
    try:
        first = reader.snapshot.generation
        published.publish({"value": 1})
        second = reader.refresh().generation
        assert [w.generation for w in seen[0] if w.slot == 3] == [first]
        table = layout.read_workers(view.buffer)
        assert [w.generation for w in table if w.slot == 3] == [second]
    finally:
        reader.close()
        view.close()


def test_a_failing_apply_does_not_end_the_thread(caplog):
    calls = []

    def apply():
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit(3)

    applier = _applier.Applier(apply).start()
    try:
        applier.wake()
        wait_until(lambda: len(calls) == 1, "the first apply")
        applier.wake()
        wait_until(lambda: len(calls) == 2, "the second apply")
        assert applier.alive
    finally:
        applier.close()
    assert "applying a new generation failed" in caplog.text


def test_wakes_never_block_when_the_socket_is_full():
    gate = threading.Event()
    applier = _applier.Applier(gate.wait).start()
    try:
        for _ in range(200_000):  # far beyond a socket buffer: EAGAIN, ignored
            applier.wake()
    finally:
        gate.set()
        applier.close()


def test_a_forked_child_forgets_the_applier_and_its_descriptors():
    applier = _applier.Applier(lambda: None).start()
    fds = (applier._send_fd, applier._receive.fileno())
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                gone = []
                for fd in fds:
                    try:
                        os.fstat(fd)
                    except OSError:
                        gone.append(fd)
                code = 0 if len(gone) == 2 and not _applier._LIVE else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert applier.alive  # the parent's is untouched
    finally:
        applier.close()


def test_hint_wakes_the_started_applier():
    with use_config({"value": 0}) as config:
        changes = []
        hotcfg.on_change("value")(lambda old, new: changes.append(new))
        hotcfg.get("value")  # start the reader
        # A signal the applier does not take itself: nothing is blocked here.
        applier = _runtime.start_applier(signal.SIGUSR2)
        try:
            config.set({"value": 1})
            _runtime.hint()
            wait_until(lambda: changes == [1], "the callback in the applier")
        finally:
            _runtime.shutdown()
        assert not applier.alive
        assert _runtime._applier is None


def test_a_volatile_read_sees_the_newest_generation_inside_a_pinned_request():
    with use_config({"level": "info"}) as config:
        token = _api.pin()
        try:
            config.set({"level": "debug"})
            assert hotcfg.get("level") == "info"
            assert hotcfg.snapshot()["level"] == "info"
            assert hotcfg.get("level", volatile=True) == "debug"
            assert hotcfg.get("missing", 5, volatile=True) == 5
            assert hotcfg.latest()["level"] == "debug"
            assert hotcfg.latest().generation == hotcfg.generation() + 1
            assert hotcfg.get("level") == "info"  # the pin stays
        finally:
            _api.unpin(token)
        assert hotcfg.get("level") == "debug"


@pytest.mark.parametrize(
    ("text", "expected"), [("off", False), ("0", False), ("yes", True), ("1", True)]
)
def test_hotcfg_applier_is_parsed(text, expected):
    assert Settings.resolve({"HOTCFG_APPLIER": text}).applier is expected
    assert Settings().applier is True


def test_a_bad_hotcfg_applier_names_the_variable():
    with pytest.raises(hotcfg.ConfigError, match="HOTCFG_APPLIER"):
        Settings.resolve({"HOTCFG_APPLIER": "sometimes"})


def test_the_signal_handler_wakes_the_applier_without_applying_itself(published):
    callbacks = ChangeCallbacks()
    threads = []
    callbacks.add("value", lambda old, new: threads.append(threading.current_thread()))
    reader = Reader(published.segment.view(), callbacks=callbacks)
    applier = _applier.Applier(reader.refresh, name="signal-applier").start()

    def handler(signum, frame):
        reader.mark_stale()
        applier.wake()

    previous = signal.signal(signal.SIGURG, handler)
    try:
        published.publish({"value": 1})
        os.kill(os.getpid(), signal.SIGURG)
        wait_until(lambda: threads, "the callback")
        assert [t.name for t in threads] == ["signal-applier"]
    finally:
        signal.signal(signal.SIGURG, previous)
        applier.close()
        reader.close()


BLOCKED_MAIN = textwrap.dedent(
    """
    import os, signal, socket, sys, threading, time
    from hotcfg._worker import applier as _applier

    mode = sys.argv[1]
    applied = threading.Event()
    own = signal.SIGURG if mode == "signal" else None
    applier = _applier.Applier(applied.set, signum=own).start()
    signal.signal(signal.SIGURG, lambda signum, frame: applier.wake())
    signal.siginterrupt(signal.SIGURG, False)  # as under Gunicorn
    # The main thread waits for a client that connected but sends nothing,
    # in a recv that signals do not interrupt (SA_RESTART). The client sends
    # only once the switch happened, or after 3 s without it.
    quiet, client = socket.socketpair()
    seen = []

    def client_side():
        seen.append(applied.wait(3))
        client.send(b"x")

    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGURG)).start()
    threading.Thread(target=client_side).start()
    quiet.recv(1)
    blocked = signal.SIGURG in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    print(mode, seen[0], blocked)
    """
)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("signal", "signal True True"),  # taken by the applier at once
        ("socket", "socket False False"),  # the handler waits for the recv
    ],
)
def test_a_main_thread_blocked_in_a_restarted_recv_does_not_delay_the_switch(
    mode, expected, tmp_path
):
    config = tmp_path / "unused.yaml"
    config.write_text("{}\n")
    assert run_script(BLOCKED_MAIN, config, mode) == expected


def test_the_mode_takes_the_signal_only_where_blocking_it_is_harmless():
    assert _applier.mode_for(signal.SIGURG) == "signal"
    assert (
        _applier.mode_for(signal.SIGUSR1) == "socket"
    )  # children would keep it blocked
