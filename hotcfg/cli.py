"""The ``hotcfg`` command: validate a file, inspect a running service.

    hotcfg validate config.yaml [--schema S] [--validator mod:func] [--model mod:Cls]
    hotcfg status [--dir DIR] [--json]
    hotcfg get db.timeout [--dir DIR | --segment PATH]
    hotcfg dump [--dir DIR | --segment PATH]
    hotcfg history [--json] [--dir DIR | --segment PATH]
    hotcfg diff [FILE | --from G] [--to G] [--values] [--dir DIR | --segment PATH]
    hotcfg rollback [--to G] [--dir DIR | --segment PATH]

Exit codes: 0 ok, 1 invalid / missing, 2 usage or no running service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import _control, _diff, _layout, _payload
from ._errors import HotcfgError
from ._publisher import validate_source
from ._segment import SegmentView, list_segments
from ._settings import Settings
from ._snapshot import Snapshot, thaw
from ._sources import dumps

NOT_RUNNING = "no running hotcfg service found (no live segment; see --dir)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmd_validate(args: argparse.Namespace) -> int:
    settings = Settings.resolve(
        source=args.file,
        format=args.format,
        schema=args.schema,
        validator=args.validator,
        model=args.model,
    )
    try:
        data, payload = validate_source(settings)
    except HotcfgError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {args.file} ({len(data)} top-level keys, {len(payload)} bytes packed)")
    return 0


def _segment_paths(args: argparse.Namespace) -> list[str]:
    if args.segment:
        return [args.segment]
    directory = args.dir or Settings.resolve().resolved_segment_dir
    return list_segments(directory)


def _describe(path: str) -> dict[str, Any]:
    view = SegmentView.open(path)
    try:
        header = _layout.read_header(view.buffer, pause=os.sched_yield)
        workers = _layout.read_workers(view.buffer)
    finally:
        view.close()
    return {
        "segment": path,
        "master_pid": header.writer_pid,
        "master_alive": _alive(header.writer_pid),
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
            {"pid": w.pid, "generation": w.generation, "applied_at": w.applied_at}
            for w in workers
        ],
    }


def _when(ts: float) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _cmd_status(args: argparse.Namespace) -> int:
    paths = _segment_paths(args)
    if not paths:
        print(NOT_RUNNING, file=sys.stderr)
        return 2
    reports = [_describe(p) for p in paths]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    for r in reports:
        state = "running" if r["master_alive"] else "dead"
        print(f"segment     {r['segment']}")
        print(f"master      pid {r['master_pid']} ({state})")
        print(f"generation  {r['generation']} published {_when(r['published_at'])}")
        print(f"source      {r['source'] or '-'}")
        if r["last_error"]:
            print(f"last error  {r['last_error']} ({_when(r['last_error_at'])})")
        else:
            print("last error  none")
        print(f"rejected    {r['rejected_count']}")
        if r["validating"]:
            busy = r["validating"]
            print(
                f"validating  since {_when(busy['since'])} "
                f"({time.time() - busy['since']:.0f} s) in {busy['validator']}"
            )
        current = sum(w["generation"] == r["generation"] for w in r["workers"])
        print(
            f"workers     {len(r['workers'])}, "
            f"{current} on generation {r['generation']}"
        )
        for w in r["workers"]:
            print(f"  pid {w['pid']:<8} generation {w['generation']}")
        print()
    return 0


def _load_live(args: argparse.Namespace) -> Snapshot | None:
    for path in _segment_paths(args):
        view = SegmentView.open(path)
        try:
            header = _layout.read_header(view.buffer, pause=os.sched_yield)
            if args.segment or _alive(header.writer_pid):
                return _payload.decode(view.buffer)
        finally:
            view.close()
    print(NOT_RUNNING, file=sys.stderr)
    return None


def _cmd_get(args: argparse.Namespace) -> int:
    snap = _load_live(args)
    if snap is None:
        return 2
    missing = object()
    value = snap.get(args.key, missing)
    if value is missing:
        print(f"no key {args.key!r} in generation {snap.generation}", file=sys.stderr)
        return 1
    print(dumps(thaw(value)))
    return 0


def _cmd_dump(args: argparse.Namespace) -> int:
    snap = _load_live(args)
    if snap is None:
        return 2
    print(dumps(snap.to_dict()))
    return 0


# -- history, diff, rollback: through the master's control socket -------------


def _control_socket(args: argparse.Namespace) -> str | None:
    """The control socket of the running master the arguments select."""
    try:
        paths = _segment_paths(args)
    except OSError as exc:  # the directory is private to the service's user
        raise HotcfgError(f"cannot reach the service: {exc}") from exc
    for path in paths:
        view = SegmentView.open(path)
        try:
            header = _layout.read_header(view.buffer, pause=os.sched_yield)
        finally:
            view.close()
        if args.segment or _alive(header.writer_pid):
            return _control.socket_path(path)
    print(NOT_RUNNING, file=sys.stderr)
    return None


def _ask(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any] | None:
    path = _control_socket(args)
    return None if path is None else _control.request(path, message)


def _cmd_history(args: argparse.Namespace) -> int:
    answer = _ask(args, {"cmd": "history"})
    if answer is None:
        return 2
    live = answer["live"]
    entries = [{**e, "live": e["generation"] == live} for e in answer["entries"]]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print(f"no history (HOTCFG_HISTORY={answer['keep']}); live generation {live}")
        return 0
    print(
        f"  {'generation':>10}  {'published':<19}  {'bytes':>8}  {'hash':<32}  source"
    )
    for e in reversed(entries):
        mark = "*" if e["live"] else " "
        print(
            f"{mark} {e['generation']:>10}  {_when(e['published_at']):<19}  "
            f"{e['size']:>8}  {e['hash']:<32}  {e['source']}"
        )
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    message: dict[str, Any] = {"cmd": "rollback", "to": args.to}
    answer = _ask(args, message)
    if answer is None:
        return 2
    print(
        f"generation {answer['generation']} is live: the content of generation "
        f"{answer['from']}.\n"
        f"{answer['path']} still holds the newer content; it is published again "
        "at its next change (or at a HUP of the master)."
    )
    return 0


def _generation_data(args: argparse.Namespace, generation: int) -> dict[str, Any]:
    answer = _ask(args, {"cmd": "payload", "generation": generation})
    if answer is None:
        raise HotcfgError(NOT_RUNNING)
    return _payload.decode_payload(answer["entry"]["payload"]).to_dict()


def _cmd_diff(args: argparse.Namespace) -> int:
    if args.file:
        if args.from_ is not None or args.to is not None:
            print("give a FILE or --from/--to, not both", file=sys.stderr)
            return 2
        live = _load_live(args)
        if live is None:
            return 2
        settings = Settings.resolve(source=args.file, format=args.format)
        try:
            data, _ = validate_source(settings)
        except HotcfgError as exc:
            print(f"invalid: {exc}", file=sys.stderr)
            return 1
        old, new = live.to_dict(), data
        names = (f"live generation {live.generation}", args.file)
    else:
        history = _ask(args, {"cmd": "history"})
        if history is None:
            return 2
        to = args.to if args.to is not None else history["live"]
        if args.from_ is not None:
            from_ = args.from_
        else:
            older = [
                e["generation"] for e in history["entries"] if e["generation"] < to
            ]
            if not older:
                print(f"no generation before {to} in the history", file=sys.stderr)
                return 1
            from_ = older[-1]
        old, new = _generation_data(args, from_), _generation_data(args, to)
        names = (f"generation {from_}", f"generation {to}")
    changes = _diff.diff(old, new)
    print(f"--- {names[0]}\n+++ {names[1]}")
    for line in _diff.render(changes, values=args.values):
        print(line)
    if not changes:
        print("no differences")
    return 0


def _add_history_commands(sub: Any) -> None:
    def selection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", help="segment directory (default: HOTCFG_SEGMENT_DIR)")
        p.add_argument("--segment", help="path of one segment file")

    p = sub.add_parser("history", help="list the generations the master keeps")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    selection(p)
    p.set_defaults(run=_cmd_history)

    p = sub.add_parser(
        "diff",
        help="changed key paths between two generations, or a file and the live one",
    )
    p.add_argument("file", nargs="?", help="config file, checked as the master would")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument(
        "--from", dest="from_", type=int, help="older generation (default: before --to)"
    )
    p.add_argument("--to", type=int, help="newer generation (default: the live one)")
    p.add_argument(
        "--values", action="store_true", help="show values too (they may be secrets)"
    )
    selection(p)
    p.set_defaults(run=_cmd_diff)

    p = sub.add_parser(
        "rollback", help="publish a kept generation's content again, as a new one"
    )
    p.add_argument(
        "--to", type=int, help="generation to go back to (default: the one before)"
    )
    selection(p)
    p.set_defaults(run=_cmd_rollback)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotcfg", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a config file as the master would")
    p.add_argument("file")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument("--schema", help="JSON Schema file")
    p.add_argument("--validator", help="module:function")
    p.add_argument("--model", help="module:Class, a dataclass or pydantic model")
    p.set_defaults(run=_cmd_validate)

    for name, run, text in (
        ("status", _cmd_status, "show segments, generations and worker convergence"),
        ("get", _cmd_get, "print one value of the live configuration as JSON"),
        ("dump", _cmd_dump, "print the live configuration as JSON"),
    ):
        p = sub.add_parser(name, help=text)
        if name == "get":
            p.add_argument("key", help="dotted path, e.g. db.timeout")
        p.add_argument("--dir", help="segment directory (default: HOTCFG_SEGMENT_DIR)")
        p.add_argument("--segment", help="path of one segment file")
        if name == "status":
            p.add_argument(
                "--json", action="store_true", help="machine-readable output"
            )
        p.set_defaults(run=run)
    _add_history_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except HotcfgError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return 2
    return code
