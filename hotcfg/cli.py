"""The ``hotcfg`` command: validate a file, inspect a running service.

    hotcfg validate config.yaml [--schema S] [--validator mod:func] [--model mod:Cls]
    hotcfg status [--dir DIR] [--json]
    hotcfg get db.timeout [--dir DIR | --segment PATH]
    hotcfg dump [--dir DIR | --segment PATH]

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

from . import _layout, _payload
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except HotcfgError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return 2
    return code
