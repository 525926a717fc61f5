"""Beyond Gunicorn: ``uvicorn --workers``, hotcfg shared or standalone.

    .venv/bin/python benchmarks/servers.py [--workers 4] [--changes 30]
        [--loads idle light] [--timeout 2] [--runs 7]

Part 1 starts a real ``uvicorn --workers N`` (benchmarks/uvicorn_app.py, a
plain ASGI app behind hotcfg's middleware, a 10 KB YAML config, debounce 0)
once per mode: ``HOTCFG_PEERS=off`` (each worker runs hotcfg standalone:
its own watcher, parse and segment) and ``HOTCFG_PEERS=auto`` (the workers
elect one publisher and share its segment). A hotcfg without the setting
runs standalone only and the shared rows say "not available". Per mode and
load (``idle``: no request at all; ``light``: wrk, as many connections as
workers, each a new connection per request, so the workers' shared
listening socket spreads them, and 100 ms between requests) it renames a
new config over the old (``--changes`` times, 0.2-0.5 s apart, after the
previous change reached every worker or timed out) and measures:

- applied: from the write until every worker's ``on_change`` callback ran;
  each worker appends its CLOCK_MONOTONIC time to one ``O_APPEND`` file, so
  the figure is on the benchmark's own clock and includes the watcher, the
  parse, the publish and the switch. Median and p95 over the changes.
- parsed: from the write to the first parse of it (the watcher's delay),
  median: what is left of "applied" is the publish and the switch.
- spread: per change, the last worker's time minus the first's (median, max).
- parses per change: the app wraps hotcfg's loader (``loaders.parse``) and
  logs every call, in whichever process parses; counted from the first
  write until 1.5 s after the last, over the changes. A watcher may read a
  file again after a rename to catch a late write: those reads count too.
- watchers and descriptors per host, idle after start: ``anon_inode:inotify``
  links and all entries in ``/proc/<pid>/fd``, summed over the uvicorn
  supervisor and every process under it.

A row stops at the first change that does not reach every worker within
``--timeout``: standalone workers with no request never run a callback (they
switch at their next read), which is what the idle row shows.

Part 2, in this process: one read of the nested key ``db.pool.size`` from
the same 10 KB config through a plain dict, ``hotcfg.get`` inside a
request (pinned with ``_api.RequestScope``, as the integrations do) and
outside one, UltraDict and shared-memory-dict (``pip install --group
bench``; rows are skipped if they are missing). Nanoseconds per read, the
median of ``--runs`` timeit runs (each of 0.2 s or more), and the ratio
to the plain dict.

Part 3: the time for a change to reach 4 readers through UltraDict and
shared-memory-dict. They have no notification, so each reader process polls
the key every millisecond (``time.sleep(0.001)``) and logs when it sees the
new value; the writer replaces ``db`` and the time runs to the last reader.
The figure depends on the poll interval the user picks (a reader sees a
change after half an interval on average) and polling costs CPU in every
idle worker, which hotcfg's idle workers do not spend: read it as what
those libraries give at a 1 ms poll, not as a like-for-like race.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, Load, config_text, free_port, p95, prepare_write

SIZE = 10_000
SETTLE_S = 1.5  # after the last change: the watchers' late re-reads land
LOADS = {"idle": None, "light": 100}  # ms between requests per connection
DB = {"pool": {"size": 10, "timeout": 5.0}, "host": "db.internal", "port": 5432}


def peers_available() -> bool:
    """Whether this hotcfg has HOTCFG_PEERS (the shared mode)."""
    from hotcfg._settings import Settings

    return "peers" in {f.name for f in dataclasses.fields(Settings)}


# -- part 1: uvicorn --------------------------------------------------------


class Uvicorn:
    """A real ``uvicorn --workers N`` in its own process group."""

    def __init__(self, workers: int, config: Path, log: Path, env: dict[str, str]):
        self.workers = workers
        self.log = log
        self.port = free_port()
        self._offset = 0
        self.lines: list[tuple[str, int, str, int]] = []  # kind, pid, value, ns
        full_env = dict(
            os.environ,
            PYTHONPATH=f"{ROOT / 'benchmarks'}:{ROOT}",
            HOTCFG_SOURCE=str(config),
            HOTCFG_SEGMENT_DIR=str(config.parent / "seg"),
            HOTCFG_DEBOUNCE_MS="0",
            SERVERS_LOG=str(log),
        )
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--workers", str(workers),
             "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
             "--app-dir", str(ROOT / "benchmarks"), "uvicorn_app:app"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            self.pids = self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def collect(self) -> list[tuple[str, int, str, int]]:
        """The log lines written since the last call."""
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        new = []
        for line in data[:end].decode().splitlines():
            kind, pid, *rest = line.split()
            value = rest[0] if kind != "parse" else ""
            new.append((kind, int(pid), value, int(rest[-1])))
        self.lines += new
        return new

    def _wait_ready(self) -> set[int]:
        deadline = time.monotonic() + 60
        ready: set[int] = set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("uvicorn exited at start")
            if self.log.exists():
                ready |= {pid for kind, pid, _, _ in self.collect() if kind == "ready"}
            if len(ready) >= self.workers:
                return ready
            time.sleep(0.05)
        raise RuntimeError(f"uvicorn: {len(ready)} of {self.workers} workers ready")

    def processes(self) -> set[int]:
        """The supervisor and every process under it."""
        found, todo = {self.proc.pid}, [self.proc.pid]
        while todo:
            out = subprocess.run(
                ["pgrep", "-P", str(todo.pop())], capture_output=True, text=True
            )
            children = {int(p) for p in out.stdout.split()} - found
            found |= children
            todo += children
        return found

    def descriptors(self) -> tuple[int, int, int]:
        """(processes, inotify instances, open descriptors) over the host's
        processes of this server."""
        procs = self.processes()
        watchers = fds = 0
        for pid in procs:
            fd_dir = f"/proc/{pid}/fd"
            try:
                names = os.listdir(fd_dir)
            except OSError:
                continue
            fds += len(names)
            for name in names:
                try:
                    if os.readlink(f"{fd_dir}/{name}") == "anon_inode:inotify":
                        watchers += 1
                except OSError:
                    pass
        return len(procs), watchers, fds

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class Run:
    """One mode and load: per change, each worker's ms from the write."""

    applied: list[dict[int, float]]  # per converged change: pid -> ms
    parsed: list[float]  # per converged change: ms to the first parse
    changes: int  # changes written
    parses: int  # loader calls from the first write until the settle
    processes: int
    watchers: int
    descriptors: int
    stopped: bool  # a change did not reach every worker within the timeout


def measure(
    mode: str, load: str, workers: int, changes: int, timeout: float, seed: int
) -> Run:
    rng = random.Random(seed)
    env = {}
    if peers_available():
        env["HOTCFG_PEERS"] = "off" if mode == "standalone" else "auto"
    with tempfile.TemporaryDirectory(prefix="hotcfg-servers-") as tmp:
        config = Path(tmp) / "conf" / "config.yaml"
        config.parent.mkdir()
        config.write_text(config_text(0, SIZE))
        server = Uvicorn(workers, config, Path(tmp) / "applied.log", env)
        wrk = None
        try:
            time.sleep(0.5)  # let start-up threads settle before counting
            procs, watchers, fds = server.descriptors()
            pause = LOADS[load]
            if pause is not None:
                wrk = Load(server.port, connections=workers, pause_ms=pause, close=True)
            server.collect()
            parses_from = len(server.lines)
            applied: list[dict[int, float]] = []
            parsed: list[float] = []
            written, stopped = 0, False
            for value in range(1, changes + 1):
                time.sleep(rng.uniform(0.2, 0.5))
                write = prepare_write(config, config_text(value, SIZE), "rename")
                start = time.monotonic_ns()
                since = len(server.lines)
                write()
                written += 1
                times = wait_applied(server, str(value), start, timeout)
                if len(times) < len(server.pids):
                    stopped = True
                    break
                applied.append(times)
                first = min(ns for kind, _, _, ns in server.lines[since:]
                            if kind == "parse" and ns >= start)  # fmt: skip
                parsed.append((first - start) / 1e6)
            time.sleep(SETTLE_S)
            server.collect()
            parses = sum(1 for k, *_ in server.lines[parses_from:] if k == "parse")
        finally:
            if wrk is not None:
                wrk.stop()
            server.stop()
    return Run(applied, parsed, written, parses, procs, watchers, fds, stopped)


def wait_applied(
    server: Uvicorn, value: str, start_ns: int, timeout: float
) -> dict[int, float]:
    """pid -> ms from the write to that worker's callback for ``value``."""
    times: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(times) < len(server.pids) and time.monotonic() < deadline:
        for kind, pid, got, ns in server.collect():
            if kind == "applied" and got == value and pid not in times:
                times[pid] = (ns - start_ns) / 1e6
        time.sleep(0.0005)
    return times


def fmt(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


@dataclass
class Summary:
    parsed: float | None
    median: float | None
    p95: float | None
    spread: float | None
    spread_max: float | None
    parses: float
    watchers: int
    descriptors: int


def summarize(run: Run) -> Summary:
    last = [max(t.values()) for t in run.applied]
    spreads = [max(t.values()) - min(t.values()) for t in run.applied]
    ok = bool(last) and not run.stopped
    return Summary(
        statistics.median(run.parsed) if ok else None,
        statistics.median(last) if ok else None,
        p95(last) if ok else None,
        statistics.median(spreads) if ok else None,
        max(spreads) if ok else None,
        run.parses / max(run.changes, 1),
        run.watchers,
        run.descriptors,
    )


def part_servers(args: argparse.Namespace) -> None:
    shared = peers_available()
    modes = ["standalone", "shared"]
    print(f"uvicorn --workers {args.workers}, {SIZE // 1000} KB YAML, atomic "
          f"rename, {args.changes} changes 0.2-0.5 s apart, "
          "HOTCFG_DEBOUNCE_MS=0")  # fmt: skip
    print(
        "parsed: write -> first parse (median); applied: write -> every "
        "worker's on_change ran (CLOCK_MONOTONIC),"
    )
    print("median and p95; spread: last worker - first, per change")
    head = (f"{'load':>5} {'mode':>10} {'parsed ms':>10} {'median ms':>10} "
            f"{'p95 ms':>8} "
            f"{'spread ms':>10} {'spread max':>11} {'parses/chg':>11} "
            f"{'applied':>8} {'watchers':>9} {'fds':>5} {'procs':>6}")  # fmt: skip
    print(head)
    results: dict[tuple[str, str], Summary] = {}
    for load in args.loads:
        for mode in modes:
            if mode == "shared" and not shared:
                print(f"{load:>5} {mode:>10}  shared: not available (this hotcfg "
                      "has no HOTCFG_PEERS)")  # fmt: skip
                continue
            run = measure(mode, load, args.workers, args.changes, args.timeout,
                          args.seed)  # fmt: skip
            s = results[(load, mode)] = summarize(run)
            note = ""
            if run.stopped:
                note = f"  not applied by every worker within {args.timeout:g} s"
            print(f"{load:>5} {mode:>10} {fmt(s.parsed, 10)} {fmt(s.median, 10)} "
                  f"{fmt(s.p95, 8)} "
                  f"{fmt(s.spread, 10)} {fmt(s.spread_max, 11)} "
                  f"{s.parses:>11.1f} {len(run.applied):>3}/{run.changes:<4} "
                  f"{s.watchers:>9} {s.descriptors:>5} "
                  f"{run.processes:>6}{note}")  # fmt: skip
    print("watchers: inotify instances; fds: open descriptors; procs: the "
          "supervisor and all under it (idle, after start)")  # fmt: skip
    if not shared:
        print("shared: not available")
        return
    print()
    print("shared / standalone (below 1: shared ahead; - : standalone never applied)")
    print(f"{'load':>5} {'median':>7} {'p95':>7} {'spread':>7} {'spread max':>11} "
          f"{'parses':>7} {'watchers':>9} {'fds':>6}")  # fmt: skip
    verdicts = []
    for load in args.loads:
        a, b = results.get((load, "shared")), results.get((load, "standalone"))
        if a is None or b is None:
            continue
        pairs = [(a.median, b.median), (a.p95, b.p95), (a.spread, b.spread),
                 (a.spread_max, b.spread_max), (a.parses, b.parses),
                 (a.watchers, b.watchers), (a.descriptors, b.descriptors)]  # fmt: skip
        ratios = [ratio(x, y) for x, y in pairs]
        widths = (7, 7, 7, 11, 7, 9, 6)
        print(
            f"{load:>5} "
            + " ".join(fmt(r, w, 2) for r, w in zip(ratios, widths, strict=True))
        )
        verdicts += [
            (x is not None and (y is None or x <= y)) for x, y in pairs
        ]  # shared applied where standalone never did: ahead
    idle = results.get(("idle", "shared"))
    print()
    print(f"target: shared ahead on every measure: "
          f"{'met' if verdicts and all(verdicts) else 'not met'}; idle workers "
          f"applied in <= 5 ms median: "
          + ("not measured" if idle is None else
             f"{'met' if idle.median is not None and idle.median <= 5 else 'not met'}"
             f" ({fmt(idle.median, 0)} ms)"))  # fmt: skip


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- part 2: read cost --------------------------------------------------------


def config_dict() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(config_text(1, SIZE))
    data["db"] = DB
    return data


def read_costs(runs: int, number: int) -> dict[str, float]:
    """ns per read of db.pool.size, median of ``runs`` timeit runs."""
    tmp = Path(tempfile.mkdtemp(prefix="hotcfg-servers-read-"))
    import yaml

    data = config_dict()
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    os.environ["HOTCFG_SEGMENT_DIR"] = str(tmp / "seg")
    if peers_available():
        os.environ["HOTCFG_PEERS"] = "off"  # one process: nothing to share
    import hotcfg
    from hotcfg import _api, _runtime

    hotcfg.configure(source=str(path))
    assert hotcfg.get("db.pool.size") == 10

    def median_ns(fn: Callable[[], object]) -> float:
        timer = timeit.Timer(fn)
        n = number or timer.autorange()[0]  # auto: a run of 0.2 s or more
        return statistics.median(timer.repeat(number=n, repeat=runs)) / n * 1e9

    costs: dict[str, float] = {}
    plain = data
    costs['dict["db"]["pool"]["size"]'] = median_ns(lambda: plain["db"]["pool"]["size"])
    with _api.RequestScope():  # as the ASGI middleware pins a request
        costs['hotcfg.get("db.pool.size"), in a request'] = median_ns(
            lambda: hotcfg.get("db.pool.size")
        )
    costs['hotcfg.get("db.pool.size"), outside'] = median_ns(
        lambda: hotcfg.get("db.pool.size")
    )
    name = f"hotcfg-servers-{os.getpid()}"
    smd = open_smd(f"{name}-smd", create=True)
    if smd is not None:
        try:
            smd.update(data)
            costs['shared-memory-dict ["db"]["pool"]["size"]'] = median_ns(
                lambda: smd["db"]["pool"]["size"]
            )
        finally:
            close_smd(smd, unlink=True)
    ultra = open_ultra(f"{name}-ud", create=True)
    if ultra is not None:
        try:
            ultra.update(data)
            costs['UltraDict ["db"]["pool"]["size"]'] = median_ns(
                lambda: ultra["db"]["pool"]["size"]
            )
        finally:
            ultra.unlink()
    _runtime.ensure_publisher().close()
    shutil.rmtree(tmp, ignore_errors=True)
    return costs


def open_smd(name: str, *, create: bool) -> Any:
    try:
        from shared_memory_dict import SharedMemoryDict
    except ImportError:
        return None
    return SharedMemoryDict(name=name, size=1 << 20)


def close_smd(smd: Any, *, unlink: bool) -> None:
    smd.shm.close()
    if unlink:
        smd.shm.unlink()


def open_ultra(name: str, *, create: bool) -> Any:
    try:
        from UltraDict import UltraDict
    except ImportError:
        return None
    if create:
        return UltraDict(name=name, create=True, buffer_size=1 << 20)
    return UltraDict(name=name, create=False)


def part_reads(args: argparse.Namespace) -> None:
    reads = args.number or "0.2 s or more"
    print(f"one read of db.pool.size, {SIZE // 1000} KB config, ns per read "
          f"(median of {args.runs} runs of {reads})")  # fmt: skip
    costs = read_costs(args.runs, args.number)
    base = costs['dict["db"]["pool"]["size"]']
    print(f"  {'reader':<44} {'per read':>9} {'x dict':>7}")
    for name, ns in costs.items():
        print(f"  {name:<44} {ns:>6.0f} ns {ns / base:>7.1f}")
    for lib in ("shared-memory-dict", "UltraDict"):
        if not any(n.startswith(lib) for n in costs):
            print(f"  {lib}: not installed (pip install --group bench)")


# -- part 3: change -> every reader, shared-memory dicts ----------------------


def poll_reader(kind: str, name: str, log: str, stop: str) -> None:
    """A reader process: poll db.pool.size every ms, log each new value,
    until the file ``stop`` exists."""
    from multiprocessing import resource_tracker

    # A reader only attaches: the writer owns the block and unlinks it. Left
    # registered, the tracker this process shares with the writer would warn.
    resource_tracker.register = lambda name, rtype: None
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    d = (
        open_smd(name, create=False)
        if kind == "smd"
        else open_ultra(name, create=False)
    )
    last = d["db"]["pool"]["size"]
    os.write(out, f"ready {os.getpid()} {last} {time.monotonic_ns()}\n".encode())
    while not os.path.exists(stop):
        value = d["db"]["pool"]["size"]
        if value != last:
            last = value
            os.write(
                out, f"seen {os.getpid()} {value} {time.monotonic_ns()}\n".encode()
            )
        time.sleep(0.001)
    if kind == "smd":
        close_smd(d, unlink=False)


def dict_propagation(
    kind: str, readers: int, changes: int, seed: int
) -> list[float] | None:
    """ms from the write to the last reader seeing it, per change."""
    name = f"hotcfg-servers-{kind}-{os.getpid()}"
    d = open_smd(name, create=True) if kind == "smd" else open_ultra(name, create=True)
    if d is None:
        return None
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="hotcfg-servers-poll-")
    log = os.path.join(tmp, "seen.log")
    ctx = multiprocessing.get_context("spawn")
    procs = []
    try:
        d.update(config_dict())
        stop = os.path.join(tmp, "stop")
        procs = [ctx.Process(target=poll_reader, args=(kind, name, log, stop))
                 for _ in range(readers)]  # fmt: skip
        for p in procs:
            p.start()
        while not os.path.exists(log) or read_seen(log, "ready") < readers:
            time.sleep(0.02)
        times = []
        for value in range(11, 11 + changes):
            time.sleep(rng.uniform(0.2, 0.5))
            start = time.monotonic_ns()
            d["db"] = {**DB, "pool": {**DB["pool"], "size": value}}
            deadline = time.monotonic() + 5
            seen: dict[int, int] = {}
            while len(seen) < readers and time.monotonic() < deadline:
                seen = seen_at(log, str(value))
                time.sleep(0.0005)
            if len(seen) < readers:
                return times
            times.append((max(seen.values()) - start) / 1e6)
        return times
    finally:
        Path(tmp, "stop").touch()
        for p in procs:
            p.join(5)
            if p.exitcode is None:
                p.terminate()
                p.join(5)
        if kind == "smd":
            close_smd(d, unlink=True)
        else:
            d.unlink()
        shutil.rmtree(tmp, ignore_errors=True)


def read_seen(log: str, kind: str) -> int:
    with open(log) as f:
        return sum(1 for line in f if line.startswith(kind + " "))


def seen_at(log: str, value: str) -> dict[int, int]:
    found: dict[int, int] = {}
    with open(log) as f:
        for line in f:
            kind, pid, got, ns = line.split()
            if kind == "seen" and got == value:
                found.setdefault(int(pid), int(ns))
    return found


def part_dicts(args: argparse.Namespace) -> None:
    print(f"a change to {args.workers} reader processes polling every 1 ms "
          f"(writer replaces db; {args.dict_changes} changes)")  # fmt: skip
    print(f"  {'library':<20} {'median ms':>10} {'p95 ms':>8} {'seen':>6}")
    for kind, label in (("smd", "shared-memory-dict"), ("ultra", "UltraDict")):
        times = dict_propagation(kind, args.workers, args.dict_changes, args.seed)
        if times is None:
            print(f"  {label:<20} not installed (pip install --group bench)")
        elif not times:
            print(f"  {label:<20} {'-':>10} {'-':>8} 0/{args.dict_changes}")
        else:
            print(f"  {label:<20} {statistics.median(times):>10.2f} "
                  f"{p95(times):>8.2f} {len(times)}/{args.dict_changes}")  # fmt: skip
    print("  (no notification in either: the figure is set by the poll interval,")
    print("  and every idle reader spends CPU polling; hotcfg's figure is above)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--loads", nargs="+", default=["idle", "light"],
                        choices=sorted(LOADS))  # fmt: skip
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds for a change to reach every worker")  # fmt: skip
    parser.add_argument("--runs", type=int, default=7, help="timeit runs per read")
    parser.add_argument("--number", type=int, default=0,
                        help="reads per timeit run (0: 0.2 s worth)")  # fmt: skip
    parser.add_argument("--dict-changes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if "light" in args.loads and shutil.which("wrk") is None:
        raise SystemExit(
            "the light load needs wrk (apt-get install wrk), or --loads idle"
        )
    part_servers(args)
    print()
    part_reads(args)
    print()
    part_dicts(args)


if __name__ == "__main__":
    main()
