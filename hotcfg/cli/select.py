"""Which running service a command means: this host's segments, what each
says, and the one the selection options (``--dir``, ``--segment``,
``--name``, ``--pid``) pick.

Owns the selection shared by the commands that read a segment
(:mod:`.local`) and those that ask its master (:mod:`.control`). Reads
segments only: it must not import the other command modules, the control
socket or etcd. Finding no segment loads nothing more than
:mod:`.._segment.where`, so that ``hotcfg status`` with no service starts in
about the interpreter's time; reading one loads the segment's modules.
"""

from __future__ import annotations

import argparse  # loaded already by the parser: no_such_pid makes a Namespace
import os
import time

from .._segment.where import default_segment_dir, list_segments
from .exits import Exit, Stop

TYPE_CHECKING = False  # not typing's: see hotcfg/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from .._segment.snapshot import Snapshot

NOT_RUNNING = "no running hotcfg service found (no live segment; see --dir)"
"""Kept for callers without the arguments; :func:`not_running` names the
directory searched."""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def segment_dir(args: argparse.Namespace) -> str:
    """``--dir``, else ``HOTCFG_SEGMENT_DIR`` as the settings read it
    (``Settings.segment_dir``), else the default: without loading the
    settings, which import the parsers."""
    return str(
        args.dir or os.environ.get("HOTCFG_SEGMENT_DIR") or default_segment_dir()
    )


def segment_paths(args: argparse.Namespace) -> list[str]:
    """The segments the selection options name, newest first.

    ``--segment`` names one file; otherwise every segment of ``--dir``
    (default ``HOTCFG_SEGMENT_DIR``), narrowed by ``--name`` (the segment
    prefix, ``HOTCFG_NAME``) and ``--pid`` (the master's pid).
    """
    if args.segment:
        return [args.segment]
    paths = list_segments(segment_dir(args))
    name = getattr(args, "name", None)
    if name:
        paths = [p for p in paths if os.path.basename(p).rsplit("-", 2)[0] == name]
    pid = getattr(args, "pid", None)
    if pid:
        paths = [p for p in paths if _written_by(p, pid)]
    return paths


def _written_by(path: str, pid: int) -> bool:
    """Whether ``pid`` publishes into the segment at ``path``: named in its
    file name (a master's, a standalone process's), or, for peers, whose
    segment is named after the service, the writer its header names."""
    if os.path.basename(path).split("-")[-2:-1] == [str(pid)]:
        return True
    if "-peers-" not in os.path.basename(path):
        return False
    from .._errors import HotcfgError

    try:
        return bool(describe(path)["master_pid"] == pid)
    except (OSError, HotcfgError):
        return False


def describe(path: str) -> dict[str, Any]:
    """What ``status`` shows of one segment; times as seconds since the
    epoch (:mod:`.times` writes them)."""
    from .._segment import layout
    from .._segment.shm import SegmentView

    view = SegmentView.open(path)
    try:
        header = view.header()
        workers = layout.read_workers(view.buffer)
    finally:
        view.close()
    now = time.time()
    return {
        "segment": path,
        "name": os.path.basename(path).rsplit("-", 2)[0],
        "master_pid": header.writer_pid,
        "master_alive": alive(header.writer_pid),
        # Who publishes: a Gunicorn master, or a standalone process.
        "role": layout.ROLES.get(header.role, "unknown"),
        "generation": header.generation,
        "published_at": header.published_at,
        "source": header.source,
        "last_error": header.error,
        "last_error_at": header.error_at if header.error else None,
        "rejected_count": header.rejected_count,
        "validating": (
            {"validator": header.validating, "since": header.validating_since}
            if header.validating
            else None
        ),
        "workers": [
            {
                "pid": w.pid,
                "generation": w.generation,
                "applied_at": w.applied_at,
                "alive": alive(w.pid),
                # Behind the live generation since it was published.
                "behind_s": (
                    max(0.0, now - header.published_at)
                    if w.generation < header.generation
                    else None
                ),
            }
            for w in workers
        ],
    }


def searched_dir(args: argparse.Namespace) -> str:
    """The directory the selection looks in (``--segment``'s own, or
    ``--dir``, or ``HOTCFG_SEGMENT_DIR``), named when nothing is found."""
    segment: str | None = args.segment
    if segment:
        return os.path.dirname(os.path.abspath(segment))
    return segment_dir(args)


def not_running(args: argparse.Namespace) -> str:
    """Why no service was found, naming the directory searched."""
    return (
        f"no running hotcfg service found in {searched_dir(args)} "
        "(no live segment; see --dir)"
    )


def one_live_service(args: argparse.Namespace) -> str:
    """The one running service the options select.

    Raises:
        Stop: none (exit 69), or several (2: pick one), said why, with the
            candidates.
        HotcfgError: the directory is not this user's (exit 77: the
            ``PermissionError`` is its cause).
    """
    from .._errors import HotcfgError

    try:
        paths = segment_paths(args)
    except OSError as exc:  # the directory is private to the service's user
        raise HotcfgError(f"cannot reach the service: {exc}") from exc
    reports = [describe(p) for p in paths]
    live = [r for r in reports if r["master_alive"]]
    if len(live) == 1:
        return str(live[0]["segment"])
    pid = getattr(args, "pid", None)
    if not live and pid:
        raise Stop(Exit.NO_SERVICE, no_such_pid(args, pid))
    if not live:
        raise Stop(Exit.NO_SERVICE, not_running(args))
    raise Stop(Exit.USAGE, _choose(live, searched_dir(args)))


def no_such_pid(args: argparse.Namespace, pid: int) -> str:
    """A ``--pid`` that matches no live service: what runs there instead."""
    directory = searched_dir(args)
    others = argparse.Namespace(**{**vars(args), "pid": None})
    try:
        there = [describe(p) for p in segment_paths(others)]
    except OSError:
        there = []
    there = [r for r in there if r["master_alive"]]
    text = f"no service with master pid {pid} in {directory}"
    if not there:
        return text + " (no live segment there at all)"
    return text + "; running there:\n" + "\n".join(candidates(there))


def _choose(live: list[dict[str, Any]], directory: str) -> str:
    """Several services match: list them and say which option tells them
    apart (``--name`` only where their names differ)."""
    names = {r["name"] for r in live}
    pick = "--name, --pid or --segment" if len(names) > 1 else "--pid or --segment"
    return (
        f"{services_phrase(live)} in {directory}; pick one with {pick}:\n"
        + "\n".join(candidates(live))
    )


def standalone_only(reports: list[dict[str, Any]]) -> bool:
    """Whether every service is a standalone process (no Gunicorn master,
    no peers); a segment from a writer that does not say stays a service."""
    return bool(reports) and all(
        r.get("role") in ("standalone", "gunicorn-worker") and not elected(r)
        for r in reports
    )


def services_phrase(reports: list[dict[str, Any]]) -> str:
    """``N running services``, or ``N standalone processes, no Gunicorn
    master`` when no Gunicorn master publishes any of them."""
    n = len(reports)
    if standalone_only(reports):
        noun = "standalone process" if n == 1 else "standalone processes"
        text = f"{n} {noun}, no Gunicorn master"
        if any(r.get("role") == "gunicorn-worker" for r in reports):
            text += " (Gunicorn workers whose master has no hotcfg hooks)"
        return text
    return f"{n} running service" + ("" if n == 1 else "s")


def pid_label(report: dict[str, Any]) -> str:
    """What the publishing pid is: a master's, or a process's (standalone,
    or elected by its peers)."""
    return (
        "master pid"
        if report.get("role")
        not in (
            "standalone",
            "gunicorn-worker",
            "elected-peer",
        )
        else "process pid"
    )


def elected(report: dict[str, Any]) -> bool:
    """Whether the publishing process was elected by its peers (uvicorn's,
    Hypercorn's or a ``multiprocessing`` pool's workers, or Gunicorn's
    without hotcfg's hooks: ``_master.election``); it serves requests too,
    and another takes over when it stops. A hookless Gunicorn worker that
    publishes for its peers has them in its worker table; one that runs
    standalone (``HOTCFG_PEERS=off``) has none."""
    role = report.get("role")
    return role == "elected-peer" or (
        role == "gunicorn-worker" and bool(report.get("workers"))
    )


def candidates(reports: list[dict[str, Any]]) -> list[str]:
    """One line per service: its pid, name and source."""
    return [
        f"  {pid_label(r)} {r['master_pid']:<8} name {r['name']:<12} "
        f"source {r['source'] or '-'}"
        for r in reports
    ]


def load_live(args: argparse.Namespace) -> Snapshot:
    """The live configuration of the one service the options select
    (:func:`one_live_service`'s ``Stop`` otherwise)."""
    from .._segment import payload as _payload
    from .._segment.shm import SegmentView

    path = args.segment or one_live_service(args)
    view = SegmentView.open(path)
    try:
        return _payload.decode(view.buffer)
    finally:
        view.close()


def when(ts: float) -> str:
    """A time in human output: local, ISO 8601 with its offset."""
    from .times import local

    return local(ts)
