"""A thousand forks while the publisher thread writes: no deadlock, children
read clean."""

import textwrap

from . import run_script

SCRIPT = textwrap.dedent(
    """
    import os, threading
    import hotcfg
    from hotcfg import _runtime

    publisher = _runtime.ensure_publisher(start_watching=False)
    stop = threading.Event()

    def publish_forever():
        i = 0
        while not stop.is_set():
            i += 1
            publisher.publish({"value": i, "pad": "x" * (i % 5000)})

    t = threading.Thread(target=publish_forever)
    t.start()
    failures = 0

    def fork_one():
        pid = os.fork()
        if pid == 0:
            # A child must see a consistent segment and a working reader.
            code = 0
            try:
                # The worker path: a reader on the inherited segment.
                reader = _runtime.attach_worker(slot=None)
                snap = reader.refresh()
                assert snap.generation > 0
                assert isinstance(snap.get("value"), int)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        return pid

    for _ in range(100):  # ten at a time, as Gunicorn spawns a worker set
        for pid in [fork_one() for _ in range(10)]:
            _, status = os.waitpid(pid, 0)
            failures += os.waitstatus_to_exitcode(status) != 0
    stop.set()
    t.join()
    print("failures", failures, "generation", publisher.generation > 1000)
    """
)


def test_fork_during_publishing(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: 0\n")
    # The history file (one rename per publish, about 1 ms on the test's
    # disk) would slow the publisher below the thousand publishes this test
    # forks through; the history's own fork story is tested in
    # tests/process/test_history.py.
    output = run_script(SCRIPT, config, HOTCFG_HISTORY="0")
    assert output == "failures 0 generation True"
