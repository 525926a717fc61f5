"""``hotcfg agent`` and ``uvicorn --workers 3`` whose workers only read
(``HOTCFG_PEERS=read``), sharing a ``HOTCFG_NAME`` across their process
groups: the workers start first and wait for the agent's segment at
import; the agent is the one watcher, publishes, and wakes every idle worker
(tests/apps/peers_app.py records what each applied); ``hotcfg status`` names
the agent and lists the workers; the workers never publish, even with the
agent stopped. Every process is stopped by pid at the end."""

import os
import signal
import subprocess
import sys

import pytest

from tests.peers import kill_all, last_value, wait_until, watchers, write_atomic

from .conftest import ROOT
from .test_peers import server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_uvicorn_workers_read_what_the_agent_publishes(server):  # noqa: F811
    env = {"HOTCFG_NAME": "shop"}
    # The workers first: their import waits for the agent's segment.
    svc = server("uvicorn", 3, HOTCFG_PEERS="read", **env)
    agent = subprocess.Popen(
        [sys.executable, "-m", "hotcfg", "agent"],
        env=dict(
            os.environ,
            HOTCFG_SOURCE=str(svc.config),
            HOTCFG_DEBOUNCE_MS="10",
            PYTHONPATH=str(ROOT),
            **env,
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        pids = svc.pids()
        assert wait_until(svc.holder, "the agent holding the lock") == agent.pid
        assert watchers([*pids, svc.process.pid, agent.pid]) == [agent.pid]
        (report,) = svc.status()
        assert (report["role"], report["master_pid"]) == ("agent", agent.pid)
        assert sorted(w["pid"] for w in report["workers"]) == pids

        write_atomic(svc.config, "value: 2\n")
        wait_until(
            lambda: all(last_value(svc.out, pid) == 2 for pid in pids),
            "every idle worker on value 2",
        )

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
        write_atomic(svc.config, "value: 3\n")
        # No worker took over: nobody holds the lock, nobody watches.
        assert svc.holder() is None
        assert watchers([*pids, svc.process.pid]) == []
        assert all(last_value(svc.out, pid) == 2 for pid in pids)
    finally:
        kill_all([agent.pid])
        agent.wait(timeout=10)
