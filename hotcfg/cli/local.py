"""The commands answered on this host: ``validate`` (a file, checked as the
master would), and ``status``, ``get``, ``dump`` and ``wait``, which read
the selected service's segment.

``wait`` also asks the master, through its control socket, to read its
source now, then polls the segment. ``status --fleet`` (:mod:`.etcd`) and
``get --explain`` (:mod:`.control`) are dispatched by :mod:`.parser`, so
this module must not import the other command modules or etcd. What
only some commands need (the settings, the checks, the control socket) is
imported by them: ``status`` with no service loads none of it.
"""

from __future__ import annotations

import sys
import time

from .exits import Exit, Stop
from .select import (
    describe,
    elected,
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

TYPE_CHECKING = False  # not typing's: see hotcfg/__init__.py
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from .._settings import Settings


def dumps(data: Any) -> str:
    """JSON text of a thawed config (``get``, ``dump``)."""
    import json  # here, as every import of this module: status starts fast

    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=repr)


def print_json(data: Any) -> None:
    """``--json`` output: one document, indented."""
    import json

    print(json.dumps(data, indent=2))


def file_settings(args: argparse.Namespace, *, fmt: str | None = None) -> Settings:
    """The settings that check FILE as the master would (``validate``,
    ``push``): its format (``fmt``, else ``--format``, else as a source's),
    and the checks given here or by ``HOTCFG_*``."""
    from .._settings import Settings

    return Settings.resolve(
        source=args.file,
        format=fmt or args.format,
        schema=args.schema,
        validator=args.validator,
        model=args.model,
    )


def cmd_validate(args: argparse.Namespace) -> int:
    """``validate``: 0 valid, 1 FILE invalid (the command's "no"), 78 when
    the checks given cannot be used (a ``--schema`` not found, a validator
    that does not import, a bad ``HOTCFG_*`` setting): the error's
    ``source`` says which."""
    from .._errors import ConfigError
    from .._master.check import validate_source
    from .._sources.locations import redact_url

    shown = redact_url(args.file)
    file = {args.file, shown}
    try:
        settings = file_settings(args)
        file.add(settings.source or args.file)
        data, payload = validate_source(settings)
    except ConfigError as exc:
        about_file = exc.source in file
        code = Exit.NO if about_file else Exit.CONFIG
        print(f"{'invalid' if about_file else 'hotcfg'}: {exc}", file=sys.stderr)
        if args.json:
            print_json(_validation(shown, str(exc)))
        return code
    from .overrides_note import overrides_note

    note = overrides_note(args.file)
    if args.json:
        print_json(_validation(shown, None, keys=len(data), packed=len(payload)))
        if note:
            print(note, file=sys.stderr)  # stdout holds the document only
    else:
        print(f"ok: {shown} ({len(data)} top-level keys, {len(payload)} bytes packed)")
        if note:
            print(note)
    return Exit.OK


def _validation(
    shown: str, error: str | None, *, keys: int | None = None, packed: int | None = None
) -> dict[str, Any]:
    """``validate --json``: the same fields whatever the outcome."""
    return {
        "file": shown,
        "valid": error is None,
        "error": error,
        "top_level_keys": keys,
        "packed_bytes": packed,
    }


def status_json(report: dict[str, Any]) -> dict[str, Any]:
    """A :func:`.select.describe` report with its times as UTC ISO 8601."""
    from .times import utc

    validating = report["validating"]
    return {
        **report,
        "published_at": utc(report["published_at"]),
        "last_error_at": utc(report["last_error_at"]),
        "validating": (
            {**validating, "since": utc(validating["since"])} if validating else None
        ),
        "workers": [
            {**w, "applied_at": utc(w["applied_at"])} for w in report["workers"]
        ],
    }


def cmd_status(args: argparse.Namespace) -> int:
    paths = segment_paths(args)
    if not paths:
        pid = getattr(args, "pid", None)
        why = no_such_pid(args, pid) if pid else not_running(args)
        if args.json:
            print("[]")
        print(why, file=sys.stderr)
        return Exit.NO_SERVICE
    reports = [describe(p) for p in paths]
    if args.json:
        print_json([status_json(r) for r in reports])
        return Exit.OK
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
        from .._worker.unhooked import FIX  # loads logging: only when shown

        print(f"fix: {FIX}")
        print()
    for r in reports:
        _print_service(r)
        print()
    return Exit.OK


def _print_service(r: dict[str, Any]) -> None:
    state = "running" if r["master_alive"] else "dead"
    print(f"segment     {r['segment']}")
    if elected(r):
        print(
            f"process     pid {r['master_pid']} ({state}), elected by its peers "
            "(each serves; another takes over if it stops)"
        )
    elif standalone_only([r]):
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
            f"applied {when(w['applied_at'])}  {where}{gone}"
        )


def cmd_wait(args: argparse.Namespace) -> int:
    """``wait``: 0 converged; 1 refused, or not within the timeout; 69 no
    service, or its master exited meanwhile."""
    path = one_live_service(args)
    first = describe(path)
    if standalone_only([first]):
        print(
            f"note: {services_phrase([first])}: pid {first['master_pid']} "
            "publishes for itself alone",
            file=sys.stderr,
        )
    deadline = time.monotonic() + args.timeout
    target, why = (
        (args.generation, None) if args.generation else _source_now(path, deadline)
    )
    if target is None:
        _waited(args, None, describe(path), [], why)
        return Exit.NO
    while True:
        report = describe(path)
        if not report["master_alive"]:
            if elected(report) and time.monotonic() < deadline:
                # Its peers elect another within milliseconds: wait on.
                time.sleep(0.02)
                continue
            who = "process" if standalone_only([report]) else "master"
            raise Stop(
                Exit.NO_SERVICE, f"the {who} (pid {report['master_pid']}) exited"
            )
        live = [w for w in report["workers"] if w["alive"]]
        behind = [w for w in live if w["generation"] < target]
        if report["generation"] >= target and not behind:
            _waited(args, target, report, [], None)
            if not args.json:
                print(f"converged: {len(live)} workers on generation {target} or later")
            return Exit.OK
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if report["generation"] < target:
        why = (
            f"generation {target} was not published within {args.timeout:g} s "
            f"(the live one is {report['generation']})"
        )
        print(why, file=sys.stderr)
        _waited(args, target, report, behind, why)
        return Exit.NO
    why = (
        f"{len(behind)} of {len(live)} workers have not applied generation "
        f"{target} within {args.timeout:g} s"
    )
    print(f"{why}:", file=sys.stderr)
    for w in behind:
        print(
            f"  pid {w['pid']} on generation {w['generation']}, "
            f"behind for {w['behind_s']:.1f} s",
            file=sys.stderr,
        )
    _waited(args, target, report, behind, why)
    return Exit.NO


def _waited(
    args: argparse.Namespace,
    target: int | None,
    report: dict[str, Any],
    behind: list[dict[str, Any]],
    why: str | None,
) -> None:
    """``wait --json``: the outcome on stdout (the messages stay on stderr)."""
    if not args.json:
        return
    live = [w for w in report["workers"] if w["alive"]]
    outcome = {
        "converged": why is None,
        "generation": target,
        "live_generation": report["generation"],
        "workers": len(live),
        "behind": [
            {"pid": w["pid"], "generation": w["generation"], "behind_s": w["behind_s"]}
            for w in behind
        ],
        "timeout_s": args.timeout,
        "error": why,
    }
    print_json(outcome)


def _source_now(path: str, deadline: float) -> tuple[int | None, str | None]:
    """The generation that holds the source's content as it is now: the
    master reads its source at once (no debounce, no waiting for a poll)
    and publishes it if it changed. (None, why), said on stderr too, when
    that content is refused or no answer came in time.

    A master that serves no control socket (or predates the request) cannot
    be asked: the live generation then, with a note, as before.
    """
    from .._errors import ControlError
    from .._master import control as _control

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
            return _live_instead(path, str(exc)), None
        except ControlError as exc:
            if str(exc).startswith("unknown command"):
                older = "the master is older than this command"
                return _live_instead(path, older), None
            if str(exc) == _control.TOO_MANY and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            why = f"the master did not read its source: {exc}"
            print(why, file=sys.stderr)
            return None, why
    generation: int = answer["generation"]
    if answer.get("rejected"):
        why = (
            f"not published: {answer['rejected']} (generation {generation} stays live)"
        )
        print(why, file=sys.stderr)
        return None, why
    if answer.get("note"):
        print(f"note: {answer['note']}", file=sys.stderr)
    return generation, None


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
    from .._content.frozen import thaw

    snap = load_live(args)
    missing = object()
    value = snap.get(args.key, missing)
    if value is missing:
        print(f"no key {args.key!r} in generation {snap.generation}", file=sys.stderr)
        return Exit.NO
    print(dumps(thaw(value)))
    return Exit.OK


def cmd_dump(args: argparse.Namespace) -> int:
    snap = load_live(args)
    print(dumps(snap.to_dict()))
    return Exit.OK
