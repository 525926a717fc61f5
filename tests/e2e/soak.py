"""The soak: steady HTTP load on a real Gunicorn while the config keeps changing.

Shared by ``benchmarks/soak.py`` (the full run) and ``tests/e2e/test_soak.py``
(a short one). Three parts:

* the **driver** (:class:`Ledger`, :func:`document`) writes numbered versions
  by atomic rename, alternating valid ones with invalid YAML, schema
  violations and validator rejections, and remembers the checksum of every
  valid version it wrote;
* the **load generator** (``python -m tests.e2e.soak load ...``) runs in its
  own process: threads of ``http.client`` connections request ``/`` of
  ``tests/apps/soak_app.py`` until a deadline and count every answer by its
  content, so each response is checked without storing it;
* :func:`verify` holds every counted answer against the ledger: no error,
  no request that saw two generations, no configuration served that the
  driver did not write as valid, no worker going back a generation.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.apps.soak_app import SCHEMA, checksum

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.soak_app:app"
INVALID_KINDS = ("invalid-yaml", "schema", "validator")
# (pid, generation, checksum, version, version_end, tag_end, generation_end)
ANSWER_FIELDS = (
    "pid",
    "generation",
    "checksum",
    "version",
    "version_end",
    "tag_end",
    "generation_end",
)


def service_env(tmp_path: Path) -> dict[str, str]:
    """The hotcfg settings of a soak service: schema, validator, short debounce."""
    schema = tmp_path / "soak-schema.json"
    schema.write_text(json.dumps(SCHEMA))
    return {
        "HOTCFG_SCHEMA": str(schema),
        "HOTCFG_VALIDATOR": "tests.apps.soak_app:reject_marked",
        "HOTCFG_DEBOUNCE_MS": "10",
    }


def valid_data(n: int) -> dict:
    # The pad moves the payload size about, so both payload slots get used.
    return {
        "version": n,
        "payload": {"tag": f"v{n}", "items": list(range(n % 7 + 1))},
        "pad": "x" * (n * 37 % 500),
    }


def document(n: int, index: int) -> tuple[str, str]:
    """Version ``n`` as the ``index``-th write: (kind, file text).

    Even writes are valid; odd ones cycle through the three ways to be
    invalid, each carrying its own version number so that serving one would
    show.
    """
    if index % 2 == 0:
        return "valid", yaml.safe_dump(valid_data(n))
    kind = INVALID_KINDS[(index // 2) % len(INVALID_KINDS)]
    if kind == "invalid-yaml":
        return kind, f"version: {n}\npayload: [\n"
    bad = valid_data(n)
    if kind == "schema":
        bad["payload"]["tag"] = n  # the schema wants a string
    else:
        bad["reject"] = True
    return kind, yaml.safe_dump(bad)


@dataclass
class Ledger:
    """What the driver wrote: checksums of the valid versions, the rest by kind."""

    config: Path
    valid: dict[str, int] = field(default_factory=dict)
    invalid_versions: set[int] = field(default_factory=set)
    written: Counter = field(default_factory=Counter)
    last_valid: int | None = None
    _next: int = 1

    def write(self, index: int) -> str:
        """Write the next version atomically (temp file, then rename over)."""
        n = self._next
        self._next += 1
        kind, text = document(n, index)
        if kind == "valid":
            self.valid[checksum(valid_data(n))] = n
            self.last_valid = n
        else:
            self.invalid_versions.add(n)
        tmp = self.config.with_name(f".{self.config.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)
        self.written[kind] += 1
        return kind

    def change_at_rate(self, *, rate: float, seconds: float) -> None:
        """Write ``rate`` versions a second for ``seconds``, ending on a valid one."""
        start = time.monotonic()
        index = 0
        # Time ends the run even when writes fall behind (a slow machine);
        # an odd number of writes makes the last one (an even index) valid.
        while time.monotonic() < start + seconds or index % 2 == 0:
            time.sleep(max(0.0, start + index / rate - time.monotonic()))
            self.write(index)
            index += 1


@dataclass
class Verdict:
    """Every counted answer of one phase, held against the ledger."""

    requests: int = 0
    errors: int = 0
    mixed: int = 0
    invalid_served: int = 0
    regressions: int = 0
    conflicts: int = 0
    generations: int = 0
    per_second: float = 0.0
    cpu_seconds: float = 0.0  # the master's and the workers' CPU time
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_seconds / self.requests if self.requests else 0.0

    def failures(self, phase: str) -> list[str]:
        counts = {
            "errors": self.errors,
            "mixed-generation answers": self.mixed,
            "answers from a configuration never written as valid": self.invalid_served,
            "workers going back a generation": self.regressions,
            "generations with two contents": self.conflicts,
        }
        found = [f"{phase}: {n} {what}" for what, n in counts.items() if n]
        if self.error_kinds:
            found.append(f"{phase}: error kinds {self.error_kinds}")
        if not self.requests:
            found.append(f"{phase}: no requests")
        return found


def verify(summary: dict, ledger: Ledger) -> Verdict:
    """Check every answer a load generator counted (pure: no I/O)."""
    verdict = Verdict(
        requests=summary["requests"],
        errors=sum(summary["errors"].values()),
        regressions=summary["regressions"],
        per_second=summary["requests"] / summary["seconds"],
        cpu_seconds=summary.get("cpu", 0.0),
        error_kinds=dict(summary["errors"]),
    )
    contents: dict[int, set[str]] = {}
    for answer, count in summary["answers"]:
        a = dict(zip(ANSWER_FIELDS, answer, strict=True))
        contents.setdefault(a["generation"], set()).add(a["checksum"])
        known = ledger.valid.get(a["checksum"])
        if known is None or a["version"] in ledger.invalid_versions:
            verdict.invalid_served += count
        consistent = (
            a["generation"] == a["generation_end"]
            and a["version"] == a["version_end"] == known
            and a["tag_end"] == f"v{a['version']}"
        )
        if not consistent:
            verdict.mixed += count
    verdict.generations = len(contents)
    verdict.conflicts = sum(len(c) > 1 for c in contents.values())
    return verdict


# The load generator: its own process, so the server's CPU time is not ours.


def _load_thread(port: int, deadline: float, out: dict, lock: threading.Lock) -> None:
    answers: Counter = Counter()
    errors: Counter = Counter()
    last_generation: dict[int, int] = {}
    regressions = requests = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < deadline:
        requests += 1
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                errors[f"HTTP {resp.status}"] += 1
                continue
            a = json.loads(body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors[type(exc).__name__] += 1
            conn.close()  # reconnects on the next request
            continue
        answers[tuple(a.get(name) for name in ANSWER_FIELDS)] += 1
        # Requests on one connection are sequential: a worker seen later
        # must not be on an older generation than it was earlier.
        if a["generation"] < last_generation.get(a["pid"], 0):
            regressions += 1
        last_generation[a["pid"]] = a["generation"]
    conn.close()
    with lock:
        out["answers"].update(answers)
        out["errors"].update(errors)
        out["regressions"] += regressions
        out["requests"] += requests


def generate_load(port: int, *, seconds: float, connections: int) -> dict:
    """Request ``/`` from ``connections`` threads for ``seconds``; count answers."""
    out: dict = {"answers": Counter(), "errors": Counter(), "regressions": 0}
    out["requests"] = 0
    lock = threading.Lock()
    start = time.monotonic()
    threads = [
        threading.Thread(target=_load_thread, args=(port, start + seconds, out, lock))
        for _ in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["seconds"] = time.monotonic() - start
    out["answers"] = list(out["answers"].items())
    return out


def merge(summaries: list[dict], *, sequential: bool = False) -> dict:
    """One summary of several load runs, side by side or one after another."""
    answers: Counter = Counter()
    errors: Counter = Counter()
    for s in summaries:
        answers.update({tuple(k): v for k, v in s["answers"]})
        errors.update(s["errors"])
    return {
        "answers": list(answers.items()),
        "errors": errors,
        "regressions": sum(s["regressions"] for s in summaries),
        "requests": sum(s["requests"] for s in summaries),
        "seconds": (sum if sequential else max)(s["seconds"] for s in summaries),
        "cpu": sum(s.get("cpu", 0.0) for s in summaries),
    }


class Load:
    """Load generator processes, started now; :meth:`result` collects them."""

    def __init__(self, port: int, *, seconds: float, connections: int, procs: int):
        self.procs = []
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for i in range(procs):
            share = connections // procs + (i < connections % procs)
            cmd = [sys.executable, "-m", "tests.e2e.soak", "load", str(port),
                   str(seconds), str(share)]  # fmt: skip
            self.procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
            )
        self.seconds = seconds

    def result(self) -> dict:
        try:
            outputs = [p.communicate(timeout=self.seconds + 60)[0] for p in self.procs]
        finally:
            self.stop()
        codes = [p.returncode for p in self.procs]
        if any(codes):
            raise RuntimeError(f"load generator failed: exit codes {codes}")
        return merge([json.loads(o) for o in outputs])

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait()


# The run: both phases against a started Service (tests/e2e/test_gunicorn.py).


@dataclass
class Report:
    baseline: Verdict
    changing: Verdict
    ledger: Ledger
    write_rate: float
    final: dict[int, tuple[int, int]]  # pid -> (generation, version)
    table_generation: dict[int, int]  # pid -> generation in the worker table
    published: int
    rejected: int
    log_problems: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        found = self.baseline.failures("baseline") + self.changing.failures("changes")
        last = self.ledger.last_valid
        behind = {
            pid: gv for pid, gv in self.final.items() if gv != (self.published, last)
        }
        if behind or not self.final:
            found.append(f"workers not on the last valid version {last}: {behind}")
        if set(self.table_generation.values()) != {self.published}:
            found.append(
                f"worker table {self.table_generation} != generation {self.published}"
            )
        found += [f"Gunicorn log: {line}" for line in self.log_problems[:5]]
        return found

    def table(self) -> str:
        b, c = self.baseline, self.changing
        w = self.ledger.written
        ratio = c.per_second / b.per_second if b.per_second else float("nan")
        rows = [
            ("", "baseline", "changes"),
            ("requests", b.requests, c.requests),
            ("errors", b.errors, c.errors),
            ("mixed generations", b.mixed, c.mixed),
            ("invalid served", b.invalid_served, c.invalid_served),
            ("worker went back", b.regressions, c.regressions),
            ("distinct generations seen", b.generations, c.generations),
            ("throughput req/s", f"{b.per_second:.0f}", f"{c.per_second:.0f}"),
            ("server CPU us/request", f"{b.cpu_per_request * 1e6:.0f}",
             f"{c.cpu_per_request * 1e6:.0f}"),
        ]  # fmt: skip
        lines = [f"{name:<27}{x:>10}{y:>10}" for name, x, y in rows]
        lines += [
            f"{'throughput ratio':<27}{ratio:>20.2f}",
            f"writes: {sum(w.values())} at {self.write_rate:.1f}/s "
            + ", ".join(f"{k} {w[k]}" for k in ("valid", *INVALID_KINDS)),
            f"published generation {self.published}, rejected {self.rejected}, "
            f"last valid version {self.ledger.last_valid}",
            "final per worker (pid: generation/version, table generation):",
        ]
        lines += [
            f"  {pid}: {gen}/{version}, table {self.table_generation.get(pid)}"
            for pid, (gen, version) in sorted(self.final.items())
        ]
        return "\n".join(lines)


def final_state(service, version: int, timeout: float = 30) -> dict[int, tuple]:
    """Ask until every worker pid answered ``version`` (or the deadline passed)."""
    seen: dict[int, tuple[int, int]] = {}

    def done() -> bool:
        for _ in range(service.workers * 4):
            a = service.get()
            seen[a["pid"]] = (a["generation"], a["version"])
        pids = service.worker_pids()
        return bool(pids) and all(seen.get(p, (0, 0))[1] == version for p in pids)

    with contextlib.suppress(AssertionError):
        service.wait_until(done, f"every worker on version {version}", timeout)
    return {pid: seen[pid] for pid in service.worker_pids() if pid in seen}


def server_cpu_seconds(service) -> float:
    """CPU time of the master, its reaped children and its live workers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in (service.proc.pid, *service.worker_pids()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # a worker that just exited: the master's cutime has it
            continue
        # utime, stime, cutime, cstime (proc(5) fields 14-17)
        counted = fields[11:15] if pid == service.proc.pid else fields[11:13]
        total += sum(int(x) for x in counted) / tick
    return total


def phase(
    service,
    *,
    seconds: float,
    connections: int,
    procs: int,
    ledger: Ledger | None = None,
    rate: float = 0.0,
) -> dict:
    """Load for ``seconds``; with a ``ledger``, change the config meanwhile."""
    cpu = server_cpu_seconds(service)
    load = Load(service.port, seconds=seconds, connections=connections, procs=procs)
    try:
        if ledger is not None:
            ledger.change_at_rate(rate=rate, seconds=seconds)
    finally:
        summary = load.result()
    summary["cpu"] = server_cpu_seconds(service) - cpu
    return summary


def run(
    service,
    *,
    seconds: float,
    rate: float,
    connections: int,
    procs: int = 1,
    baseline_seconds: float | None = None,
    rounds: int = 1,
) -> Report:
    """Both phases on a running soak ``service``, then its final state.

    With ``rounds`` > 1 each phase is cut into that many slices, taken in
    turn (baseline, changes, baseline, ...), so that a neighbour's load on
    a shared machine weighs on both phases alike.
    """
    ledger = Ledger(service.config)
    ledger.write(0)
    start = final_state(service, ledger.last_valid)
    if {version for _, version in start.values()} != {ledger.last_valid}:
        raise RuntimeError(f"workers did not start on version 1: {start}")
    baseline_seconds = seconds if baseline_seconds is None else baseline_seconds
    load = {"connections": connections, "procs": procs}
    baselines, changes = [], []
    for _ in range(rounds):
        baselines.append(phase(service, seconds=baseline_seconds / rounds, **load))
        changes.append(
            phase(service, seconds=seconds / rounds, ledger=ledger, rate=rate, **load)
        )
    baseline = merge(baselines, sequential=True)
    changing = merge(changes, sequential=True)
    write_rate = (sum(ledger.written.values()) - 1) / changing["seconds"]
    final = final_state(service, ledger.last_valid)
    status = service.status()[0]
    table = {w["pid"]: w["generation"] for w in status["workers"]}
    return Report(
        baseline=verify(baseline, ledger),
        changing=verify(changing, ledger),
        ledger=ledger,
        write_rate=write_rate,
        final=final,
        table_generation=table,
        published=status["generation"],
        rejected=status["rejected_count"],
        log_problems=log_problems(service.log.read_text()),
    )


# Rejections are logged too, and expected; these are not.
LOG_PROBLEMS = (
    "Traceback",
    "cannot read the segment",
    "WORKER TIMEOUT",
    "[ERROR]",
    "[CRITICAL]",
)


def log_problems(log: str) -> list[str]:
    """Lines of a Gunicorn log that tell of a crash, a timeout or a bad read.

    The master's rejections of the soak's invalid versions are errors in
    Gunicorn's log too, and expected: they are not problems.
    """
    return [
        line
        for line in log.splitlines()
        if any(p in line for p in LOG_PROBLEMS) and "] hotcfg: rejected " not in line
    ]


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="soak load generator")
    parser.add_argument("command", choices=["load"])
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("connections", type=int)
    args = parser.parse_args(argv)
    summary = generate_load(
        args.port, seconds=args.seconds, connections=args.connections
    )
    summary["errors"] = dict(summary["errors"])
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    _main(sys.argv[1:])
