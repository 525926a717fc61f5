"""A burst of publishes leaves at most one pending hint per worker.

A child process is set up exactly as Gunicorn's ``post_worker_init`` sets up
a worker. It blocks the hint signal while the master publishes a burst, so
every hint of the burst is pending at once; unblocked, the handler runs once
and the next refresh lands on the last generation. Then it keeps refreshing
(as requests would) during a second burst without blocking anything.
"""

import json
import textwrap

from . import run_script

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time, types
    from hotcfg import _runtime
    from hotcfg.integrations import gunicorn as hooks

    BURST = int(sys.argv[1])
    publisher = _runtime.ensure_publisher(start_watching=False)
    signum = _runtime.settings().hint_signal
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # Blocked before the applier thread starts, so it inherits the
            # mask: every hint of the burst stays pending for the main thread.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
            hooks.post_worker_init(types.SimpleNamespace())
            reader, real = _runtime._reader, signal.getsignal(signum)
            calls = []

            def counting(s, frame):
                calls.append(reader._stale)
                real(s, frame)

            signal.signal(signum, counting)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
            os.write(ready_w, b"r")
            target = int(os.read(go_r, 64))  # the burst happens meanwhile
            pending = signum in signal.sigpending()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
            first = dict(
                calls=len(calls), pending=pending, stale=reader._stale,
                generation=reader.refresh().generation, target=target,
            )
            os.write(ready_w, b"r")
            target += BURST
            inconsistent, deadline = 0, time.monotonic() + 40
            while time.monotonic() < deadline:
                snap = reader.refresh()
                inconsistent += snap.generation - snap["value"] != 2
                if snap.generation == target:
                    break
            second = dict(
                calls=len(calls) - first["calls"], generation=snap.generation,
                target=target, inconsistent=inconsistent,
            )
            print(json.dumps(dict(first=first, second=second)), flush=True)
            code = 0
        finally:
            os._exit(code)
    publisher.notify = lambda: os.kill(pid, signum)
    for _ in range(2):
        os.read(ready_r, 1)
        for _ in range(BURST):
            n = publisher.generation
            publisher.publish({"value": n - 1})  # generation - value == 2
        os.write(go_w, str(publisher.generation).encode())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    """
)


def test_burst_of_publishes_leaves_one_pending_hint(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: -1\n")
    burst = 2000
    # SIGUSR2: a signal the applier does not take itself (it would take
    # SIGURG with sigwait, test_applier.py), so the handler sees the burst.
    result = json.loads(run_script(SCRIPT, config, burst, HOTCFG_SIGNAL="SIGUSR2"))
    first, second = result["first"], result["second"]
    assert first["pending"]
    assert first["calls"] == 1  # 2000 hints, one handler run
    # Not checked: the stale flag. The handler also woke the applier, which
    # may be switching right then; the generation below is what counts.
    assert first["generation"] == first["target"]
    assert second["generation"] == second["target"]
    assert second["inconsistent"] == 0
    assert 0 < second["calls"] <= burst
