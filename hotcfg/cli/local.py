"""The commands answered on this host: ``validate`` (a file, checked as the
master would), and ``status``, ``get``, ``dump`` and ``wait``, which read
the selected service's segment.

``wait`` also asks the master, through its control socket, to read its
source now, then polls the segment. ``status --fleet`` (:mod:`.etcd`) and
``get --explain`` (:mod:`.control`) are dispatched by :mod:`.parser`, so
this module must not import the other command modules or etcd.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .._content.frozen import thaw
from .._errors import ControlError, HotcfgError
from .._master import control as _control
from .._master.check import validate_source
from .._settings import Settings
from .._sources.locations import redact_url
from .._worker.unhooked import FIX
from .overrides_note import overrides_note
from .select import (
    describe,
    load_live,
    no_such_pid,
    not_running,
    one_live_service,
    pid_label,
    segment_paths,
    services_phrase,
    standalone_only,
    when,
)


def dumps(data: Any) -> str:
    """JSON text of a thawed config (``get``, ``dump``)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=repr)


def file_settings(args: argparse.Namespace, *, fmt: str | None = None) -> Settings:
    """The settings that check FILE as the master would (``validate``,
    ``push``): its format (``fmt``, else ``--format``, else as a source's),
    and the checks given here or by ``HOTCFG_*``."""
    return Settings.resolve(
        source=args.file,
        format=fmt or args.format,
        schema=args.schema,
        validator=args.validator,
        model=args.model,
    )


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        settings = file_settings(args)
        data, payload = validate_source(settings)
    except HotcfgError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    shown = redact_url(args.file)
    print(f"ok: {shown} ({len(data)} top-level keys, {len(payload)} bytes packed)")
    note = overrides_note(args.file)
    if note:
        print(note)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    paths = segment_paths(args)
    if not paths:
        pid = getattr(args, "pid", None)
        why = no_such_pid(args, pid) if pid else not_running(args)
        print(why, file=sys.stderr)
        return 2
    reports = [describe(p) for p in paths]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    if len(reports) > 1:
        what = (
            services_phrase(reports)
            if standalone_only(reports)
            else f"{len(reports)} services"
        )
        print(f"{what} here (newest first; --name or --pid picks one):")
        for r in reports:
            state = "running" if r["master_alive"] else "dead"
            behind = sum(w["behind_s"] is not None for w in r["workers"])
            print(
                f"  {r['name']:<12} {pid_label(r)} {r['master_pid']:<8} {state:<8} "
                f"generation {r['generation']:<6} {len(r['workers'])} workers, "
                f"{behind} behind"
            )
        print()
    elif standalone_only(reports):
        print(f"{services_phrase(reports)} here")
        print()
    if any(r.get("role") == "gunicorn-worker" for r in reports):
        print(f"fix: {FIX}")
        print()
    for r in reports:
        _print_service(r)
        print()
    return 0


def _print_service(r: dict[str, Any]) -> None:
    state = "running" if r["master_alive"] else "dead"
    print(f"segment     {r['segment']}")
    if standalone_only([r]):
        print(f"process     pid {r['master_pid']} ({state}), standalone")
    else:
        print(f"master      pid {r['master_pid']} ({state})")
    print(f"generation  {r['generation']} published {when(r['published_at'])}")
    print(f"source      {r['source'] or '-'}")
    if r["last_error"]:
        print(f"last error  {r['last_error']} ({when(r['last_error_at'])})")
    else:
        print("last error  none")
    print(f"rejected    {r['rejected_count']}")
    if r["validating"]:
        busy = r["validating"]
        print(
            f"validating  since {when(busy['since'])} "
            f"({time.time() - busy['since']:.0f} s) in {busy['validator']}"
        )
    current = sum(w["generation"] == r["generation"] for w in r["workers"])
    print(f"workers     {len(r['workers'])}, {current} on generation {r['generation']}")
    for w in r["workers"]:
        where = (
            "current" if w["behind_s"] is None else f"behind for {w['behind_s']:.0f} s"
        )
        gone = "" if w["alive"] else ", exited"
        print(
            f"  pid {w['pid']:<8} generation {w['generation']:<6} "
            f"applied {_clock(w['applied_at'])}  {where}{gone}"
        )


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "never"


def cmd_wait(args: argparse.Namespace) -> int:
    path = one_live_service(args)
    if path is None:
        return 2
    first = describe(path)
    if standalone_only([first]):
        print(
            f"note: {services_phrase([first])}: pid {first['master_pid']} "
            "publishes for itself alone",
            file=sys.stderr,
        )
    deadline = time.monotonic() + args.timeout
    target = args.generation or _source_now(path, deadline)
    if target is None:
        return 1
    while True:
        report = describe(path)
        if not report["master_alive"]:
            who = "process" if standalone_only([report]) else "master"
            print(f"the {who} (pid {report['master_pid']}) exited", file=sys.stderr)
            return 2
        live = [w for w in report["workers"] if w["alive"]]
        behind = [w for w in live if w["generation"] < target]
        if report["generation"] >= target and not behind:
            print(f"converged: {len(live)} workers on generation {target} or later")
            return 0
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if report["generation"] < target:
        print(
            f"generation {target} was not published within {args.timeout:g} s "
            f"(the live one is {report['generation']})",
            file=sys.stderr,
        )
        return 1
    print(
        f"{len(behind)} of {len(live)} workers have not applied generation "
        f"{target} within {args.timeout:g} s:",
        file=sys.stderr,
    )
    for w in behind:
        print(
            f"  pid {w['pid']} on generation {w['generation']}, "
            f"behind for {w['behind_s']:.1f} s",
            file=sys.stderr,
        )
    return 1


def _source_now(path: str, deadline: float) -> int | None:
    """The generation that holds the source's content as it is now: the
    master reads its source at once (no debounce, no waiting for a poll)
    and publishes it if it changed. None, said why, when that content is
    refused or no answer came in time.

    A master that serves no control socket (or predates the request) cannot
    be asked: the live generation then, with a note, as before.
    """
    control = _control.socket_path(path)
    while True:
        left = max(0.0, deadline - time.monotonic())
        message = {"cmd": "publish", "timeout_s": left}
        try:
            answer = _control.request(
                control, message, timeout_s=left + _control.IO_TIMEOUT_S
            )
            break
        except _control.ControlUnavailable as exc:
            return _live_instead(path, str(exc))
        except ControlError as exc:
            if str(exc).startswith("unknown command"):
                return _live_instead(path, "the master is older than this command")
            if str(exc) == _control.TOO_MANY and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            print(f"the master did not read its source: {exc}", file=sys.stderr)
            return None
    generation: int = answer["generation"]
    if answer.get("rejected"):
        print(
            f"not published: {answer['rejected']} (generation {generation} stays live)",
            file=sys.stderr,
        )
        return None
    if answer.get("note"):
        print(f"note: {answer['note']}", file=sys.stderr)
    return generation


def _live_instead(path: str, why: str) -> int:
    live: int = describe(path)["generation"]
    print(
        f"note: cannot ask the master to read its source now ({why}); waiting "
        f"for the live generation {live}, which may not hold a change made "
        "within the master's debounce (HOTCFG_DEBOUNCE_MS) or poll interval",
        file=sys.stderr,
    )
    return live


def cmd_get(args: argparse.Namespace) -> int:
    snap = load_live(args)
    if snap is None:
        return 2
    missing = object()
    value = snap.get(args.key, missing)
    if value is missing:
        print(f"no key {args.key!r} in generation {snap.generation}", file=sys.stderr)
        return 1
    print(dumps(thaw(value)))
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    snap = load_live(args)
    if snap is None:
        return 2
    print(dumps(snap.to_dict()))
    return 0
