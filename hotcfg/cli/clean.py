"""``hotcfg status --stale`` and ``hotcfg clean``: the history and cache
files of services that no longer run on this host, listed or removed.

Which files those are, and removing them safely, is
:mod:`hotcfg._master.leftovers`'s job; this module picks the directory and
prints. It must not import the other command modules, the control socket
or etcd.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .._master import leftovers as _leftovers
from .._settings import Settings
from .exits import Exit


def _directory(args: argparse.Namespace) -> str:
    directory: str = args.dir or Settings.resolve().resolved_segment_dir
    return directory


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def _report(
    found: list[_leftovers.Leftover], skipped: list[_leftovers.Skipped]
) -> dict[str, object]:
    return {
        "stale": [
            {
                "base": f.base,
                "files": list(f.files),
                "bytes": f.bytes,
                "modified": f.modified,
                "last_pid": f.last_pid,
            }
            for f in found
        ],
        "skipped": [{"base": s.base, "reason": s.reason} for s in skipped],
    }


def _print(
    found: list[_leftovers.Leftover],
    skipped: list[_leftovers.Skipped],
    *,
    verb: str,
) -> None:
    for f in found:
        pid = f"master pid {f.last_pid}" if f.last_pid else "master unknown"
        print(
            f"{verb} {f.base}.* ({len(f.files)} files, {f.bytes} bytes, "
            f"last written {_when(f.modified)}, {pid})"
        )
        for path in f.files:
            print(f"  {path}")
    for s in skipped:
        print(f"left alone: {s.base}.*: {s.reason}", file=sys.stderr)


def _unreadable(exc: OSError) -> int:
    """The directory cannot be read: not this user's (77), or not there or
    not a directory (69: no service's files to see)."""
    return Exit.NO_PERMISSION if isinstance(exc, PermissionError) else Exit.NO_SERVICE


def status_stale(args: argparse.Namespace) -> int:
    """``status --stale``: the files of services no longer running."""
    directory = _directory(args)
    try:
        found, skipped = _leftovers.find(directory)
    except OSError as exc:
        print(f"cannot read {directory}: {exc}", file=sys.stderr)
        return _unreadable(exc)
    if getattr(args, "json", False):
        print(json.dumps(_report(found, skipped), indent=2))
        return 0
    if not found:
        print(f"no files of stopped services in {directory}")
    else:
        print(
            f"{len(found)} stopped services left files in {directory} "
            "(hotcfg clean removes them):"
        )
    _print(found, skipped, verb="stale")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """``clean``: remove the files ``status --stale`` lists."""
    directory = _directory(args)
    try:
        if args.dry_run:
            found, skipped = _leftovers.find(directory)
        else:
            found, skipped = _leftovers.remove(directory)
    except OSError as exc:
        print(f"cannot read {directory}: {exc}", file=sys.stderr)
        return _unreadable(exc)
    verb = "would remove" if args.dry_run else "removed"
    _print(found, skipped, verb=verb)
    files = sum(len(f.files) for f in found)
    print(f"{verb}: {files} files of {len(found)} stopped services in {directory}")
    return 1 if skipped else 0
