"""Each benchmark script still runs end to end, at its smallest size.

Speeds are not checked (they belong in BENCHMARKS.md, not in assertions),
but what the script must compute is: its table's row is there, its numbers
parse, are positive, and its ratio columns agree with the columns they
divide. So the commands in BENCHMARKS.md keep working and keep measuring.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")


def run(script, *args, timeout=120):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def row(out, *first):
    """The numbers of the table row whose first cells are ``first``
    (``-`` gives None, a trailing ``*`` is dropped)."""
    for line in out.splitlines():
        cells = line.split()
        if cells[: len(first)] == list(first) and len(cells) > len(first):
            rest = cells[len(first) :]
            try:
                return [None if c == "-" else float(c.rstrip("*")) for c in rest]
            except ValueError:
                continue
    raise AssertionError(f"no row {first} of numbers in:\n{out}")


def nanoseconds(out, label):
    """The figure printed as ``<label> <n> ns``."""
    found = re.search(re.escape(label) + r"\s+(\d+) ns", out)
    assert found, f"no {label!r} in:\n{out}"
    return int(found.group(1))


def assert_ratio(ratio, numerator, denominator, out, *, decimals, inputs):
    """``ratio`` is numerator / denominator as far as the table's rounding
    tells: the ratio printed to ``decimals``, the two others to ``inputs``."""
    half, half_ratio = 0.5 * 10**-inputs, 0.5 * 10**-decimals
    low = (numerator - half) / (denominator + half) - half_ratio
    high = (numerator + half) / max(denominator - half, 1e-9) + half_ratio
    assert low <= ratio <= high, out


@needs_wrk
def test_propagation():
    out = run("propagation.py", "--workers", "2", "--rounds", "2", "--debounce", "0",
              "--write", "away", "--worker-nice", "3")  # fmt: skip
    rps, published, p95_published, answered, p95_answered, coverage, *_ = row(
        out, "2", "10", "KB", "0", "0"
    )
    assert min(rps, published, answered, coverage) > 0, out
    assert p95_published >= published, out
    assert p95_answered >= answered, out
    assert nanoseconds(out, "Reader.refresh():") > 0, out


@needs_wrk
def test_peers():
    out = run("peers.py", "--workers", "2", "--rounds", "1", "--runs", "1",
              "--peers", "hotcfg", "hup", "stat")  # fmt: skip
    rows = {peer: row(out, "2", peer) for peer in ("hotcfg", "hup", "stat")}
    for median, p95, times, longest, quiet, parses, _coverage in rows.values():
        assert min(median, longest, quiet, parses) > 0, out
        assert p95 >= median, out
        assert_ratio(times, median, rows["hotcfg"][0], out, decimals=1, inputs=1)
    assert rows["hotcfg"][5] == 1, out  # one parse per change, in the master
    assert nanoseconds(out, 'hotcfg.get("a.b.c") in a request') > 0, out


@needs_wrk
def test_throughput():
    out = run("throughput.py", "--runs", "1", "--seconds", "1")
    plain = row(out, "plain")
    assert plain[0] > 0, out
    assert plain[1] == 1.0, out
    for server in (("hotcfg",), ("plain", "2")):
        rps, ratio, cpu, cpu_ratio = row(out, *server)
        assert min(rps, cpu) > 0, out
        assert_ratio(ratio, rps, plain[0], out, decimals=3, inputs=0)  # one run
        assert_ratio(cpu_ratio, cpu, plain[2], out, decimals=3, inputs=1)


def test_switch_cost():
    out = run("switch_cost.py", "--repeat", "1", "--sizes", "10 KB")
    payload, unpackb, decode, ratio, switch, switch_ratio, *_ = row(out, "10", "KB")
    assert 5_000 < payload < 20_000, out
    assert min(unpackb, decode, switch) > 0, out
    assert_ratio(ratio, decode, unpackb, out, decimals=2, inputs=2)
    assert_ratio(switch_ratio, switch, unpackb, out, decimals=2, inputs=2)


def test_memory():
    out = run("memory.py", "--workers", "1", "--sizes", "10000")
    rss, pss, extra, _times, segment = row(out, "10", "KB", "0.0", "hotcfg")
    assert rss >= pss > 0, out
    # Extra RSS is a difference of two medians: near 0 for 10 KB, either sign.
    assert abs(extra) < rss, out
    assert segment > 0, out  # the worker maps the segment
    assert row(out, "10", "KB", "0.0", "hup")[-1] is None, out  # hup has none


def test_applier():
    out = run("applier.py", "--workers", "2", "--rounds", "2", "--loads", "idle",
              "--timeout", "2")  # fmt: skip
    rps, median, p95_ms, longest, converged, changes = row(out, "2", "idle", "on")
    assert rps is None, out  # no load, no rate
    assert 0 < median <= p95_ms <= longest, out
    assert converged == changes == 2, out
    # Without the applier an idle worker never switches: the row says so.
    off = r"\b2\s+idle\s+off\s+-.*\b0\s+1\s+not converged within 2 s"
    assert re.search(off, out), out


needs_etcd = pytest.mark.skipif(
    shutil.which("etcd") is None, reason="no etcd (apt-get install etcd-server)"
)


@needs_etcd
@pytest.mark.timeout(300)
def test_etcd_convergence():
    out = run("etcd_convergence.py", "--quick", timeout=300)
    peers = ("hotcfg", "poll", "watch")
    rows = {peer: row(out, peer) for peer in peers}
    base = rows["hotcfg"][0]
    for cells in rows.values():
        median, p95, times, put, applied, conns, watchers, got, sent, cpu = cells
        assert 0 < median <= p95, out
        assert_ratio(times, median, base, out, decimals=1, inputs=1)
        assert put > 0, out
        assert applied == 5, out  # --quick: every put reached every worker
        assert conns >= 1, out
        assert min(watchers, got, sent, cpu) >= 0, out
    # Per host: the master's one watch against one per worker (4).
    assert rows["hotcfg"][6] == 1, out
    assert rows["watch"][6] == 4, out
    assert rows["poll"][6] == 0, out
    assert rows["hotcfg"][5] < rows["watch"][5] == 4, out
    assert rows["poll"][7] > 0, out  # polling asks even when nothing changes
    assert "idle poll, by method" in out, out


@needs_etcd
@pytest.mark.timeout(300)
def test_etcd_scale():
    out = run("etcd_scale.py", "--quick", timeout=300)
    for watchers in (10, 20):
        median, p95, applied, cpu, cpu_ms, per_watcher, rss, pss = row(
            out, str(watchers)
        )
        assert 0 < median <= p95, out
        assert applied == 5, out
        assert min(cpu, cpu_ms, per_watcher) >= 0, out
        # us per put and watcher = ms per put x 1000 / watchers
        assert_ratio(per_watcher / 1000, cpu_ms, watchers, out, decimals=4, inputs=2)
        assert rss > 0, out
        assert pss > 0, out
    assert re.search(r"etcd CPU per put = -?[\d.]+ ms \+ -?[\d.]+ us x watchers", out)
    for call in ("range", "put", "keepalive"):
        rate, us = row(out, call)
        assert rate > 0, out
        assert us >= 0, out


@pytest.mark.timeout(180)
def test_http_polling():
    out = run("http_polling.py", "--quick", timeout=150)
    names = ("hotcfg", "plain", "plain-x4")
    rows = {name: row(out, name) for name in names}
    base = rows["hotcfg"]
    for cells in rows.values():
        requests, ok, modified, sent, got, parses, sent_x, both_x, parses_x, cpu = cells
        assert min(requests, sent, got, cpu) > 0, out
        assert abs(ok + modified - requests) < 0.2, out  # each to 0.1
        assert_ratio(sent_x, sent, base[3], out, decimals=1, inputs=0)
        assert_ratio(both_x, sent + got, base[3] + base[4], out, decimals=1, inputs=0)
        # Config unchanged: hotcfg parses nothing, so no parse ratio.
        assert parses_x is None, out
    requests, ok, modified, _, _, parses, sent_x, both_x, _, _ = base
    assert ok == 0, out  # every poll conditional, every answer a 304
    assert modified == requests, out
    assert parses == 0, out
    assert sent_x == both_x == 1.0, out
    for name in names[1:]:
        requests, ok, modified, _, _, parses, sent_x, *_ = rows[name]
        assert modified == 0, out
        assert ok == requests, out
        assert parses > 0, out  # one per 200 (the window may cut one off)
        assert sent_x > 1, out
    assert rows["plain-x4"][0] > rows["plain"][0], out
    assert re.search(r"a 200 is \d+ bytes \(\d+ of body\), a 304 \d+ bytes", out)


def test_layer_merge():
    out = run("layer_merge.py", "--quick")
    for step in ("parse", "load", "publish"):
        single, single_p95, layered, layered_p95, ratio = row(out, step)
        assert 0 < single <= single_p95, out
        assert 0 < layered <= layered_p95, out
        assert_ratio(ratio, layered, single, out, decimals=2, inputs=3)
    single, single_p95, merge, merge_p95, ratio = row(out, "merge")
    assert single is single_p95 is ratio is None, out  # merging is layered only
    assert 0 < merge <= merge_p95, out
    assert re.search(r"the merge \d+%, the three parses \d+%", out), out


def test_wait_loop():
    out = run("wait_loop.py", "--iterations", "4", "--workers", "2")
    saves, stale, failed, median, p95_ms = row(out, "all")
    assert (saves, stale, failed) == (4, 0, 0), out
    assert 0 < median <= p95_ms, out


def test_cli_startup():
    out = run("cli_startup.py", "--runs", "2")
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].split()[0] in ("python", "hotcfg"):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    assert set(rows) == {
        "python -c pass",
        "hotcfg --help",
        "hotcfg --version",
        "hotcfg status (no service)",
    }, out
    bare = rows["python -c pass"][0]
    for median, p90, ratio in rows.values():
        assert 0 < median <= p90, out
        assert_ratio(ratio, median, bare, out, decimals=2, inputs=1)


def test_import_check_cost():
    out = run("import_check_cost.py", "--runs", "3", "--number", "2000")
    for situation in ("in-request", "outside", "other-thread-importing",
                      "importing-warned"):  # fmt: skip
        with_ns, without_ns, diff, ratio = row(out, situation)
        assert min(with_ns, without_ns) > 0, out
        assert abs(diff - (with_ns - without_ns)) <= 0.11, out
        assert_ratio(ratio, with_ns, without_ns, out, decimals=3, inputs=1)


@pytest.mark.timeout(180)
def test_servers():
    pytest.importorskip("uvicorn")
    out = run("servers.py", "--workers", "2", "--changes", "3", "--loads", "idle",
              "--runs", "1", "--number", "1000", "--dict-changes", "2",
              timeout=150)  # fmt: skip
    # Idle standalone workers switch at their next request: with none, the
    # first change reaches no callback and the row says so.
    standalone = re.search(r"^ *idle +standalone +- .* ([\d.]+) +0/1 +(\d+) +(\d+) "
                           r"+(\d+) +not applied", out, re.M)  # fmt: skip
    assert standalone, out
    parses, watchers, fds, procs = map(float, standalone.groups())
    assert parses >= 2, out  # each worker parsed the change itself
    assert watchers == 2, out  # one watcher per worker
    assert fds > 0, out
    assert procs >= 3, out  # the supervisor and its two workers
    if "shared: not available" not in out:
        line = re.search(r"^ *idle +shared +([\d. ]+) 3/3 ", out, re.M)
        assert line, out  # every change reached both workers
        parsed, median, p95_ms, spread, spread_max, parses = map(
            float, line.group(1).split()
        )
        assert 0 < parsed <= median <= p95_ms, out
        assert 0 <= spread <= spread_max, out
        assert parses >= 1, out
        shared = re.search(r"^ *idle +shared .* 3/3 +(\d+) ", out, re.M)
        assert shared, out
        assert int(shared.group(1)) == 1, out  # one watcher for the host
        assert re.search(r"^target: shared ahead on every measure: (met|not met)", out,
                         re.M), out  # fmt: skip
    base = nanoseconds(out, 'dict["db"]["pool"]["size"]')
    assert base > 0, out
    for label in ('hotcfg.get("db.pool.size"), in a request',
                  'hotcfg.get("db.pool.size"), outside'):  # fmt: skip
        assert nanoseconds(out, label) > 0, out
    for lib in ("shared-memory-dict", "UltraDict"):
        assert re.search(rf"^  {lib} +(\d|not installed)", out, re.M), out


def test_fleet_reconnect():
    if shutil.which("etcd") is None:
        pytest.skip("no etcd binary on PATH (Debian: apt-get install etcd-server)")
    out = run("fleet_reconnect.py", "--watchers", "6", "--after-s", "1", timeout=120)
    for policy in ("before", "after"):
        on_victim, moved, p50, p95, most = row(out, policy)
        assert on_victim == moved, out  # every watch on the stopped member moved
        assert 0 <= p50 <= p95 <= most, out
    assert "reconnects per 100 ms" in out
    assert "etcd CPU in the window" in out


@needs_etcd
@pytest.mark.timeout(300)
def test_rollout():
    out = run("rollout.py", "--quick", timeout=240)
    for step, count in (("push", 6), ("canary", 2), ("promote", 6)):
        workers, median, p95, high, write, applied, _leaked = row(out, step)
        assert workers == count, out
        assert 0 < median <= p95 <= high, out
        assert write > 0, out
        assert applied == 5, out  # --quick: every round reached its workers
    assert row(out, "canary")[6] == 0, out  # no other host applied a canary
    assert re.search(r"canary and promote median <= 20 ms: (not )?met \(", out), out
