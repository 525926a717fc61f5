"""The commands that ask the selected service's master through its control
socket: ``history``, ``diff``, ``rollback`` and ``get --explain`` (the
master keeps the history and the layers; the segment holds neither).

Also owns how a diff is printed, which ``push --dry-run`` (:mod:`.etcd`)
shares. Must not import :mod:`.local`, :mod:`.etcd` or etcd itself. A
master that serves no control socket is exit 69, one that does not answer
75, its refusal 1 (``hotcfg.cli.exits.for_error``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .._content import diff as _diff
from .._content import layers as _layers
from .._errors import HotcfgError
from .._master import control as _control
from .._master.check import validate_source
from .._segment import payload as _payload
from .._settings import Settings
from .audit import author
from .exits import Exit, Stop
from .select import load_live, one_live_service, when
from .times import utc


def _control_socket(args: argparse.Namespace) -> str:
    """The control socket of the one running master the arguments select
    (several: refused, so a rollback never reaches the wrong service)."""
    return _control.socket_path(args.segment or one_live_service(args))


def _ask(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    return _control.request(_control_socket(args), message)


def cmd_history(args: argparse.Namespace) -> int:
    answer = _ask(args, {"cmd": "history"})
    live = answer["live"]
    entries = [{**e, "live": e["generation"] == live} for e in answer["entries"]]
    if args.json:
        shown = [{**e, "published_at": utc(e["published_at"])} for e in entries]
        print(json.dumps(shown, indent=2))
        return Exit.OK
    if not entries:
        why = (
            "this service runs hotcfg standalone, and only a Gunicorn master keeps one"
            if answer.get("standalone")
            else f"HOTCFG_HISTORY={answer['keep']}"
        )
        print(f"no history ({why}); live generation {live}")
        return Exit.OK
    print(
        f"  {'generation':>10}  {'published':<25}  {'bytes':>8}  {'hash':<32}  source"
    )
    for e in reversed(entries):
        mark = "*" if e["live"] else " "
        print(
            f"{mark} {e['generation']:>10}  {when(e['published_at']):<25}  "
            f"{e['size']:>8}  {e['hash']:<32}  {e['source']}"
        )
        who = _who(e)
        if who:
            print(f"  {'':>10}  {who}")
    return Exit.OK


def _who(entry: dict[str, Any]) -> str:
    """An entry's action, author and message on one line (``rollback by
    ann@web-1: pool too small``); empty when the master knew none."""
    action, by = entry.get("action"), entry.get("author")
    message = entry.get("message")
    words = " ".join(part for part in (action or "", f"by {by}" if by else "") if part)
    if message:
        # One line: a message's own line breaks would break the table.
        flat = " ".join(str(message).split())
        words = f"{words}: {flat}" if words else flat
    return words


def cmd_rollback(args: argparse.Namespace) -> int:
    message: dict[str, Any] = {
        "cmd": "rollback",
        "to": args.to,
        "author": author(args),
        "message": args.message or "",
    }
    answer = _ask(args, message)  # refused (not kept): ControlRefused, exit 1
    if args.json:
        report = {k: answer[k] for k in ("generation", "from", "path")}
        print(json.dumps(report, indent=2))
        return Exit.OK
    print(
        f"generation {answer['generation']} is live: the content of generation "
        f"{answer['from']}.\n"
        f"{answer['path']} still holds the newer content; it is published again "
        "at its next change (or at a HUP of the master)."
    )
    return Exit.OK


def cmd_diff(args: argparse.Namespace) -> int:
    """``diff``: 0 no differences, 1 differences (as diff(1)), 78 FILE
    invalid, 2 nothing to compare with."""
    if args.file:
        if args.from_ is not None or args.to is not None:
            raise Stop(Exit.USAGE, "give a FILE or --from/--to, not both")
        live = load_live(args)
        settings = Settings.resolve(source=args.file, format=args.format)
        try:
            data, _ = validate_source(settings)
        except HotcfgError as exc:
            raise Stop(Exit.CONFIG, f"invalid: {exc}") from exc
        old, new = live.to_dict(), data
        names = (f"live generation {live.generation}", args.file)
    else:
        history = _ask(args, {"cmd": "history"})
        to = args.to if args.to is not None else history["live"]
        if args.from_ is not None:
            from_ = args.from_
        else:
            older = [
                e["generation"] for e in history["entries"] if e["generation"] < to
            ]
            if not older:
                raise Stop(Exit.USAGE, f"no generation before {to} in the history")
            from_ = older[-1]
        try:
            old, new = _generation_data(args, from_), _generation_data(args, to)
        except _control.ControlRefused as exc:  # not kept: nothing to compare
            raise Stop(Exit.USAGE, f"hotcfg: {exc}") from exc
        names = (f"generation {from_}", f"generation {to}")
    changed = print_diff(old, new, names, args)
    return Exit.NO if changed else Exit.OK


def _generation_data(args: argparse.Namespace, generation: int) -> dict[str, Any]:
    answer = _ask(args, {"cmd": "payload", "generation": generation})
    return _payload.decode_payload(answer["entry"]["payload"]).to_dict()


def print_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    names: tuple[str, str],
    args: argparse.Namespace,
    **more: Any,
) -> bool:
    """The changed key paths, values only with ``--values``; with
    ``--json`` one object (``more`` adds fields). True if any changed."""
    changes = _diff.diff(old, new)
    if getattr(args, "json", False):
        print(json.dumps(diff_json(changes, names, args.values, **more), indent=2))
        return bool(changes)
    print(f"--- {names[0]}\n+++ {names[1]}")
    for line in _diff.render(changes, values=args.values):
        print(line)
    if not changes:
        print("no differences")
    return bool(changes)


def diff_json(
    changes: list[_diff.Change], names: tuple[str, str], values: bool, **more: Any
) -> dict[str, Any]:
    """``diff --json`` (and ``push --dry-run --json``): each change's kind
    (added, removed, changed), its path as a list of keys and as ``db.timeout``,
    and its values only when asked for (they may be secrets)."""
    listed = []
    for change in changes:
        item: dict[str, Any] = {
            "kind": change.kind,
            "path": list(change.path),
            "key": _diff.format_path(change.path),
        }
        if values:
            item["old"], item["new"] = change.old, change.new
        listed.append(item)
    return {
        "from": names[0],
        "to": names[1],
        **more,
        "differences": bool(changes),
        "changes": listed,
    }


def explain(args: argparse.Namespace) -> int:
    """``get --explain``: the master keeps the layers, so ask it."""
    path = _control_socket(args)
    if not os.path.exists(path):
        raise Stop(
            Exit.NO_SERVICE,
            f"no control socket at {path}: --explain asks the master, which keeps "
            "the layers of the live generation, and this service's master does "
            "not serve one (only a master that watches its source does)",
        )
    answer = _control.request(path, {"cmd": "explain", "path": args.key})
    answer.pop("ok", None)
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        for line in _layers.render(answer):
            print(line)
    return Exit.OK if answer["found"] else Exit.NO
