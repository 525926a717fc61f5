"""How idle readers learn of a publish: peers, an agent's socket, poll.

    .venv/bin/python benchmarks/agent_wakeup.py [--readers 4] [--rounds 30] \
        [--idle-s 30]

Three ways, each with real processes (tests/apps/agent_reader.py, idle: no
request is made to them) sharing one ``HOTCFG_NAME``:

- ``peers``: ``HOTCFG_PEERS=auto`` peers; the elected one publishes and
  wakes every slot of the worker table through the slot's wake-up socket
  (the hint signal only where no socket could be bound).
- ``socket``: a ``hotcfg agent`` and ``HOTCFG_PEERS=read`` readers; the agent
  sends one byte to each reader's datagram socket in the segment directory
  (``_worker.wake``), which the reader's applier waits on in ``recv``. Works
  across PID namespaces (a Kubernetes sidecar).
- ``poll``: the same readers with no socket: the applier's 1 s safety poll
  alone (the last resort).

Latency: from the segment header's ``published_at`` to the last reader's
``applied_at`` in the worker table (read, decoded, swapped, callbacks run),
over ``--rounds`` atomic rewrites of a small YAML file. Idle cost: CPU seconds
(user + system, ``/proc/<pid>/stat``) each reader spends per minute with
nothing published, over ``--idle-s`` seconds; and the publisher's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotcfg._segment import layout  # noqa: E402
from hotcfg._segment.shm import SegmentView  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
MODES = ("peers", "socket", "poll")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def wait_for(predicate, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_mode(mode: str, readers: int, rounds: int, idle_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="hotcfg-wake-") as tmp_name:
        tmp = Path(tmp_name)
        seg, out = tmp / "seg", tmp / "out"
        out.mkdir()
        config = tmp / "c.yaml"
        config.write_text("value: 0\n")
        env = dict(
            os.environ,
            HOTCFG_SOURCE=str(config),
            HOTCFG_NAME="bench",
            HOTCFG_SEGMENT_DIR=str(seg),
            HOTCFG_DEBOUNCE_MS="0",
            PYTHONPATH=str(ROOT),
        )
        processes: list[subprocess.Popen[bytes]] = []

        def start(argv: list[str], **extra: str) -> subprocess.Popen[bytes]:
            p = subprocess.Popen(
                argv,
                env=dict(env, **extra),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            processes.append(p)
            return p

        try:
            reader_env = {"HOTCFG_PEERS": "auto" if mode == "peers" else "read"}
            if mode == "poll":
                reader_env["AGENT_READER_NO_SOCKET"] = "1"
            agent = None
            if mode != "peers":
                agent = start([sys.executable, "-m", "hotcfg", "agent"])
                wait_for(lambda: list(seg.glob("*.seg")), "the agent's segment")
            pids = [
                start(
                    [sys.executable, "-m", "tests.apps.agent_reader", str(out), str(i)],
                    **reader_env,
                ).pid
                # peers: one more, the one elected publishes (measured apart)
                for i in range(readers + (mode == "peers"))
            ]
            wait_for(
                lambda: len(list(out.glob("ready-?"))) == len(pids), "readers ready"
            )
            (path,) = seg.glob("*.seg")
            view = SegmentView.open(str(path))
            publisher_pid = layout.read_header(view.buffer).writer_pid
            # The readers that do not publish; the elected peer, which wakes
            # itself too, is timed apart.
            measured = [p for p in pids if p != publisher_pid]
            latencies, own = [], []
            for value in range(1, rounds + 1):
                before = layout.read_generation(view.buffer)
                write_atomic(config, f"value: {value}\n")

                def published(before: int = before) -> int | None:
                    now = layout.read_generation(view.buffer)
                    return now if now != before else None

                generation = wait_for(published, "a publish")

                def applied(generation: int = generation) -> list[float] | None:
                    at = [
                        w.applied_at
                        for w in layout.read_workers(view.buffer)
                        if w.pid in measured and w.generation == generation
                    ]
                    return at if len(at) == len(measured) else None

                last = max(wait_for(applied, "every reader applied", 10.0))
                published = layout.read_header(view.buffer).published_at
                latencies.append((last - published) * 1000.0)
                if publisher_pid in pids:

                    def own_applied(generation: int = generation) -> bool:
                        return any(
                            w.pid == publisher_pid and w.generation == generation
                            for w in layout.read_workers(view.buffer)
                        )

                    wait_for(own_applied, "the elected peer applied", 10.0)
                    mine = [
                        w.applied_at
                        for w in layout.read_workers(view.buffer)
                        if w.pid == publisher_pid
                    ]
                    own.append((mine[0] - published) * 1000.0)
                time.sleep(0.05)
            # Idle: nothing published for idle_s.
            time.sleep(1.0)
            watched = [*pids, publisher_pid]
            start_cpu = {pid: cpu_s(pid) for pid in watched}
            time.sleep(idle_s)
            per_min = {
                pid: (cpu_s(pid) - start_cpu[pid]) * 60.0 / idle_s for pid in watched
            }
            view.close()
            reader_cpu = [per_min[p] for p in measured]
            latencies.sort()
            return {
                "median": statistics.median(latencies),
                "p95": latencies[max(0, round(0.95 * len(latencies)) - 1)],
                "max": latencies[-1],
                "reader_cpu": statistics.mean(reader_cpu) if reader_cpu else 0.0,
                "publisher_cpu": per_min[publisher_pid],
                "agent": agent is not None,
                "own_median": statistics.median(own) if own else None,
            }
        finally:
            for p in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    print(
        f"{args.readers} idle readers, {args.rounds} publishes per row; ms from "
        "published_at to the last reader's applied_at;\nCPU s/min: per idle "
        f"reader (mean) and the publisher, over {args.idle_s:g} s with nothing "
        "published"
    )
    print()
    print(
        f"{'wake-up':<8} {'median_ms':>10} {'p95_ms':>8} {'max_ms':>8} "
        f"{'reader_cpu_s_min':>17} {'publisher_cpu_s_min':>20}"
    )
    for mode in args.modes.split(","):
        r = run_mode(mode, args.readers, args.rounds, args.idle_s)
        print(
            f"{mode:<8} {r['median']:>10.1f} {r['p95']:>8.1f} {r['max']:>8.1f} "
            f"{r['reader_cpu']:>17.4f} {r['publisher_cpu']:>20.4f}",
            flush=True,
        )
        if r["own_median"] is not None:
            print(
                f"  (peers: the elected peer's own switch, median "
                f"{r['own_median']:.1f} ms; it is not among the readers above)"
            )


if __name__ == "__main__":
    main()
