"""The commands that ask the selected service's master through its control
socket: ``history``, ``diff``, ``rollback`` and ``get --explain`` (the
master keeps the history and the layers; the segment holds neither).

Also owns how a diff is printed, which ``push --dry-run`` (:mod:`.etcd`)
shares. Must not import :mod:`.local`, :mod:`.etcd` or etcd itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .._content import diff as _diff
from .._content import layers as _layers
from .._errors import HotcfgError
from .._master import control as _control
from .._master.check import validate_source
from .._segment import payload as _payload
from .._settings import Settings
from .select import NOT_RUNNING, load_live, one_live_service, when


def _control_socket(args: argparse.Namespace) -> str | None:
    """The control socket of the one running master the arguments select
    (several: refused, so a rollback never reaches the wrong service)."""
    path = args.segment or one_live_service(args)
    return None if path is None else _control.socket_path(path)


def _ask(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any] | None:
    path = _control_socket(args)
    return None if path is None else _control.request(path, message)


def cmd_history(args: argparse.Namespace) -> int:
    answer = _ask(args, {"cmd": "history"})
    if answer is None:
        return 2
    live = answer["live"]
    entries = [{**e, "live": e["generation"] == live} for e in answer["entries"]]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        why = (
            "this service runs hotcfg standalone, and only a Gunicorn master keeps one"
            if answer.get("standalone")
            else f"HOTCFG_HISTORY={answer['keep']}"
        )
        print(f"no history ({why}); live generation {live}")
        return 0
    print(
        f"  {'generation':>10}  {'published':<19}  {'bytes':>8}  {'hash':<32}  source"
    )
    for e in reversed(entries):
        mark = "*" if e["live"] else " "
        print(
            f"{mark} {e['generation']:>10}  {when(e['published_at']):<19}  "
            f"{e['size']:>8}  {e['hash']:<32}  {e['source']}"
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
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


def cmd_diff(args: argparse.Namespace) -> int:
    if args.file:
        if args.from_ is not None or args.to is not None:
            print("give a FILE or --from/--to, not both", file=sys.stderr)
            return 2
        live = load_live(args)
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
    print_diff(old, new, names, args)
    return 0


def _generation_data(args: argparse.Namespace, generation: int) -> dict[str, Any]:
    answer = _ask(args, {"cmd": "payload", "generation": generation})
    if answer is None:
        raise HotcfgError(NOT_RUNNING)
    return _payload.decode_payload(answer["entry"]["payload"]).to_dict()


def print_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    names: tuple[str, str],
    args: argparse.Namespace,
) -> None:
    """The changed key paths, values only with ``--values``."""
    changes = _diff.diff(old, new)
    print(f"--- {names[0]}\n+++ {names[1]}")
    for line in _diff.render(changes, values=args.values):
        print(line)
    if not changes:
        print("no differences")


def explain(args: argparse.Namespace) -> int:
    """``get --explain``: the master keeps the layers, so ask it."""
    path = _control_socket(args)
    if path is None:
        return 2
    if not os.path.exists(path):
        print(
            f"no control socket at {path}: --explain asks the master, which keeps "
            "the layers of the live generation, and this service's master does "
            "not serve one (only a master that watches its source does)",
            file=sys.stderr,
        )
        return 2
    answer = _control.request(path, {"cmd": "explain", "path": args.key})
    answer.pop("ok", None)
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        for line in _layers.render(answer):
            print(line)
    return 0 if answer["found"] else 1
