"""The hotcfg command: check a config file, inspect and wait on a running service.

Every subcommand's --help says what it does, gives an example and lists its
exit codes; main() returns the exit code (0 ok, 1 the answer is "no", 2
usage, or no running service).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._content import diff as _diff
from .._content import layers as _layers
from .._content.frozen import thaw
from .._content.loaders import format_for
from .._errors import (
    ConfigError,
    ControlError,
    HotcfgError,
    SourceError,
    UnreachableError,
)
from .._master import control as _control
from .._master.publisher import validate_source
from .._segment import layout
from .._segment import payload as _payload
from .._segment.shm import SegmentView, list_segments
from .._segment.snapshot import Snapshot
from .._settings import Settings
from .._sources.files import load_document, read_capped
from .._sources.locations import ETCD_SCHEME, parse_etcd, redact_url

if TYPE_CHECKING:
    from .._sources.etcd.kv import KeyState

NOT_RUNNING = "no running hotcfg service found (no live segment; see --dir)"


def dumps(data: Any) -> str:
    """JSON text of a thawed config (``get``, ``dump``)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=repr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _file_settings(args: argparse.Namespace, *, fmt: str | None = None) -> Settings:
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


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        settings = _file_settings(args)
        data, payload = validate_source(settings)
    except HotcfgError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    shown = redact_url(args.file)
    print(f"ok: {shown} ({len(data)} top-level keys, {len(payload)} bytes packed)")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    """Validate FILE as the master would, check that the live masters of the
    key would parse it, then write it to the etcd key with a compare-and-swap
    on the revision read (or ``--expect-revision``)."""
    from .._sources.etcd import access as _etcd_access
    from .._sources.etcd import kv as _etcd  # only this command speaks to etcd

    if not args.url.startswith(ETCD_SCHEME):
        print(f"not an etcd key: {args.url} (etcd://host:port/key)", file=sys.stderr)
        return 2
    try:
        target = parse_etcd(args.url)
        if target.is_prefix:
            print(
                f"hotcfg push writes one key, and {args.url} names a prefix (it "
                "ends in /): write the keys under it with etcdctl (several at "
                "once with etcdctl txn)",
                file=sys.stderr,
            )
            return 2
        file_format = _push_file_format(args)
        # What the key's name says (None: nothing), checked only when no
        # live master says what it reads.
        named_format = args.format or _env_format() or _suffix_format(target.key)
    except ConfigError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return 2
    try:
        settings = _file_settings(args, fmt=file_format)
        # The bytes checked are the bytes written.
        content = read_capped(
            settings.source or args.file, max_bytes=settings.max_bytes
        )
        data, _ = validate_source(settings, content=content)
    except HotcfgError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    try:
        access = _etcd_access.EtcdAccess.from_settings(settings)  # HOTCFG_ETCD_*
    except ConfigError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return 2
    timeout_s = settings.etcd_timeout_ms / 1000.0
    try:
        state = _etcd.read_key(
            target, access=access, timeout_s=timeout_s, max_bytes=settings.max_bytes
        )
        # After the key: a refusal here is then about the records only.
        masters = _live_masters(args.url, settings)
    except SourceError as exc:  # unreachable, or refused (auth, TLS)
        print(f"hotcfg: {args.url}: {exc.reason}", file=sys.stderr)
        return 2
    key_format = _push_format_refused(
        args.file, content, (file_format, named_format), masters, target.key
    )
    if isinstance(key_format, int):
        return key_format
    expected = state.mod_revision
    if args.expect_revision is not None:
        expected = args.expect_revision
    if args.dry_run:
        return _push_diff(args, state, data, key_format)
    try:
        result = _etcd.put_if(
            target,
            content,
            access=access,
            mod_revision=expected,
            timeout_s=timeout_s,
        )
    except SourceError as exc:  # unreachable, or refused (auth, TLS)
        print(f"hotcfg: {args.url}: {exc.reason}", file=sys.stderr)
        return 2
    if result.already:
        print(
            f"{args.file} is at {args.url} already: revision "
            f"{result.mod_revision}; nothing written"
        )
        return 0
    if not result.written:
        now = (
            f"at revision {result.mod_revision}"
            if result.mod_revision
            else "deleted (no such key)"
        )
        wanted = f"revision {expected}" if expected else "no such key"
        print(
            f"conflict: {args.url} is {now}; this push expected {wanted} "
            "(someone wrote in between); nothing written. Review with "
            "--dry-run and push again.",
            file=sys.stderr,
        )
        return 1
    print(f"pushed {args.file} to {args.url}: revision {result.mod_revision}")
    return 0


def _push_format_refused(
    file: str,
    content: bytes,
    formats: tuple[str, str | None],
    masters: Sequence[dict[str, Any]],
    key: str,
) -> str | int:
    """The format the key is read in, or the exit code of a refusal (said
    why): the live masters' formats when they report (``content`` must
    parse in each, :func:`_masters_refuse`), else the one the key's name,
    ``--format`` or ``HOTCFG_FORMAT`` names, which must be FILE's.

    Args:
        formats: FILE's format, and the one named for the key (None: none).
    """
    file_format, named_format = formats
    if masters:
        refusal = _masters_refuse(file, content, file_format, masters, key)
        if refusal is not None:
            print(f"refused: {refusal}; nothing written", file=sys.stderr)
            return 1
        return str(masters[0]["format"])
    if named_format is not None and named_format != file_format:
        print(
            f"{file} is {file_format}, but the master reads {key} as "
            f"{named_format}: give a {named_format} file",
            file=sys.stderr,
        )
        return 2
    return file_format


def _push_file_format(args: argparse.Namespace) -> str:
    """FILE's format: ``--format``, else its suffix's, else ``HOTCFG_FORMAT``
    (a file named without a known suffix). The key's name plays no part:
    the live masters say how they read the key (:func:`_masters_refuse`).

    Raises:
        ConfigError: none of them tells.
    """
    fmt = args.format or _suffix_format(args.file) or _env_format()
    if fmt is None:
        raise ConfigError(
            "cannot tell the file's format from its name; use a .yaml, .yml, "
            ".json or .toml suffix or give --format",
            source=args.file,
        )
    return str(fmt)


def _env_format() -> str | None:
    """``HOTCFG_FORMAT`` as a master reads it (``yml`` is YAML), or None;
    the shell's other ``HOTCFG_*`` (its ``HOTCFG_SOURCE``) play no part.

    Raises:
        ConfigError: not a format.
    """
    raw = os.environ.get("HOTCFG_FORMAT")
    return None if raw is None else Settings.resolve({"HOTCFG_FORMAT": raw}).format


def _suffix_format(name: str) -> str | None:
    """The format ``name``'s suffix names, or None."""
    try:
        return format_for(name)
    except ConfigError:
        return None


def _live_masters(url: str, settings: Settings) -> list[dict[str, Any]]:
    """The fleet records of the masters following ``url``'s key that say
    which format they read it in (a master of an earlier version does not).
    A user that may not read the records (``/hotcfg/fleet/``) gets none,
    with a note: the push is then checked as before the records said it.

    Raises:
        SourceError: etcd unreachable, or refused access altogether.
    """
    from .._master import fleet as _fleet

    try:
        records = _fleet.read_fleet(url, settings).records
    except UnreachableError:
        raise
    except SourceError as exc:
        print(
            f"hotcfg: cannot read the fleet records of {url} ({exc.reason}); "
            "the live masters' format is not checked",
            file=sys.stderr,
        )
        return []
    return [r for r in records if isinstance(r.get("format"), str)]


def _masters_refuse(
    file: str,
    content: bytes,
    file_format: str,
    masters: Sequence[dict[str, Any]],
    key: str,
) -> str | None:
    """Why some live masters would not take ``content`` at ``key``, naming
    them and the format or limit; None when every one would parse it into
    the document FILE is (``hotcfg validate`` checked that in FILE's
    format). Their validators are not run here: each master has its own,
    and a master refuses what they refuse with the last good kept; parsing
    is what a push can check for every one of them.
    """
    mine = load_document(content, fmt=file_format, source=file)
    parsed: dict[str, str | None] = {}  # format -> why not; once per format
    refusals: dict[tuple[str, str], list[str]] = {}  # (what, why not) -> masters
    for record in masters:
        fmt = str(record["format"])
        limit = record.get("max_bytes")
        if isinstance(limit, int) and len(content) > limit:
            what = f"the limit at {key} is {limit} bytes for"
            why: str | None = f"{file} is {len(content)} bytes"
        else:
            if fmt not in parsed:
                parsed[fmt] = _parse_problem(file, content, (file_format, fmt), mine)
            what, why = f"{key} is read as {fmt} by", parsed[fmt]
        if why is not None:
            name = f"{record['host']}:{record['pid']} ({record.get('service')})"
            refusals.setdefault((what, why), []).append(name)
    if not refusals:
        return None
    return "; ".join(
        f"{what} {_some_masters(names)}, and {why}"
        for (what, why), names in refusals.items()
    )


def _some_masters(names: Sequence[str], *, shown: int = 5) -> str:
    """``2 live masters (web-1:41 (app), web-2:17 (app))``, the first
    ``shown`` of many named."""
    listed = ", ".join(names[:shown])
    if len(names) > shown:
        listed += f" and {len(names) - shown} more"
    return f"{len(names)} live master{'s' if len(names) > 1 else ''} ({listed})"


def _parse_problem(
    file: str, content: bytes, formats: tuple[str, str], mine: dict[str, Any]
) -> str | None:
    """Why ``content`` read in a master's format is not the document
    ``mine`` (read in FILE's): it does not parse, or parses into another (a
    JSON ``1e3`` is a YAML string).

    Args:
        formats: FILE's format, the master's.
    """
    file_format, fmt = formats
    try:
        theirs = load_document(content, fmt=fmt, source=file)
    except ConfigError as exc:
        return f"{file} does not parse as {fmt}: {exc}"
    changed = _diff.diff(mine, theirs)
    if not changed:
        return None
    paths = ", ".join(_diff.format_path(change.path) for change in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return (
        f"{file} read as {fmt} is another document than as {file_format}: "
        f"it differs at {paths}{more}"
    )


def _push_diff(
    args: argparse.Namespace, state: KeyState, new: dict[str, Any], key_format: str
) -> int:
    """``push --dry-run``: the key paths FILE changes; nothing written."""
    old: dict[str, Any] = {}
    if state.value is None:
        print(f"{args.url} does not exist; it would be created")
    elif not isinstance(state.value, bytes):  # too large to hold, or garbled
        print(f"{args.url} holds no valid document now (not one hotcfg can read)")
    else:
        try:
            old = load_document(state.value, fmt=key_format, source=args.url)
        except ConfigError as exc:
            print(f"{args.url} holds no valid document now ({exc.reason})")
    _print_diff(
        old, new, (f"{args.url} at revision {state.mod_revision}", args.file), args
    )
    print("dry run: nothing written")
    return 0


def _print_diff(
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


def _segment_paths(args: argparse.Namespace) -> list[str]:
    """The segments the selection options name, newest first.

    ``--segment`` names one file; otherwise every segment of ``--dir``
    (default ``HOTCFG_SEGMENT_DIR``), narrowed by ``--name`` (the segment
    prefix, ``HOTCFG_NAME``) and ``--pid`` (the master's pid).
    """
    if args.segment:
        return [args.segment]
    directory = args.dir or Settings.resolve().resolved_segment_dir
    paths = list_segments(directory)
    name = getattr(args, "name", None)
    if name:
        paths = [p for p in paths if os.path.basename(p).rsplit("-", 2)[0] == name]
    pid = getattr(args, "pid", None)
    if pid:
        paths = [
            p for p in paths if os.path.basename(p).split("-")[-2:-1] == [str(pid)]
        ]
    return paths


def _describe(path: str) -> dict[str, Any]:
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
            {
                "pid": w.pid,
                "generation": w.generation,
                "applied_at": w.applied_at,
                "alive": _alive(w.pid),
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


def _when(ts: float) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "never"


def _print_service(r: dict[str, Any]) -> None:
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


def _status_fleet(args: argparse.Namespace) -> int:
    """``status --fleet URL``: every master following the key, from the
    records they keep in etcd (``_fleet``), not from this host's segments."""
    from .._master import fleet as _fleet  # only this command reads the fleet
    from . import fleet_view

    url = args.fleet
    if not url.startswith(ETCD_SCHEME):
        print(f"not an etcd key: {url} (etcd://host:port/key)", file=sys.stderr)
        return 2
    try:
        key = parse_etcd(url).key
    except ConfigError as exc:
        print(f"hotcfg: --fleet: {exc.reason}", file=sys.stderr)
        return 2
    try:
        fleet = _fleet.read_fleet(url, Settings.resolve())
    except UnreachableError as exc:
        print(f"hotcfg: {url}: {exc.reason}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # a bad HOTCFG_* variable
        print(f"hotcfg: {exc}", file=sys.stderr)
        return 2
    if fleet.unreadable:
        print(
            f"hotcfg: {fleet.unreadable} value(s) under {_fleet.prefix_for(key)} "
            "are not fleet records; skipped",
            file=sys.stderr,
        )
    if args.json:
        report = {
            "key": key,
            "key_revision": fleet.key_revision,
            "revision": fleet.revision,
            "records": fleet.records,
            "summary": (
                fleet_view.summary(fleet.records, fleet.key_revision)
                if fleet.records
                else None
            ),
        }
        print(json.dumps(report, indent=2))
        return 0
    lines = fleet_view.render(
        url, fleet.records, key_revision=fleet.key_revision, now=time.time()
    )
    print("\n".join(lines))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    if args.fleet:
        return _status_fleet(args)
    paths = _segment_paths(args)
    if not paths:
        print(NOT_RUNNING, file=sys.stderr)
        return 2
    reports = [_describe(p) for p in paths]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    if len(reports) > 1:
        print(
            f"{len(reports)} services here (newest first; --name or --pid picks one):"
        )
        for r in reports:
            state = "running" if r["master_alive"] else "dead"
            behind = sum(w["behind_s"] is not None for w in r["workers"])
            print(
                f"  {r['name']:<12} master pid {r['master_pid']:<8} {state:<8} "
                f"generation {r['generation']:<6} {len(r['workers'])} workers, "
                f"{behind} behind"
            )
        print()
    for r in reports:
        _print_service(r)
        print()
    return 0


def _one_live_service(args: argparse.Namespace) -> str | None:
    """The one running service the options select; None (said why) otherwise."""
    try:
        paths = _segment_paths(args)
    except OSError as exc:  # the directory is private to the service's user
        raise HotcfgError(f"cannot reach the service: {exc}") from exc
    live = [p for p in paths if _describe(p)["master_alive"]]
    if len(live) == 1:
        return live[0]
    if not live:
        print(NOT_RUNNING, file=sys.stderr)
    else:
        print(
            f"{len(live)} running services; pick one with --name, --pid or "
            "--segment (hotcfg status lists them)",
            file=sys.stderr,
        )
    return None


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
    live: int = _describe(path)["generation"]
    print(
        f"note: cannot ask the master to read its source now ({why}); waiting "
        f"for the live generation {live}, which may not hold a change made "
        "within the master's debounce (HOTCFG_DEBOUNCE_MS) or poll interval",
        file=sys.stderr,
    )
    return live


def _cmd_wait(args: argparse.Namespace) -> int:
    path = _one_live_service(args)
    if path is None:
        return 2
    deadline = time.monotonic() + args.timeout
    target = args.generation or _source_now(path, deadline)
    if target is None:
        return 1
    while True:
        report = _describe(path)
        if not report["master_alive"]:
            print(f"the master (pid {report['master_pid']}) exited", file=sys.stderr)
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


def _load_live(args: argparse.Namespace) -> Snapshot | None:
    """The live configuration of the one service the options select."""
    path = args.segment or _one_live_service(args)
    if path is None:
        return None
    view = SegmentView.open(path)
    try:
        return _payload.decode(view.buffer)
    finally:
        view.close()


def _cmd_get(args: argparse.Namespace) -> int:
    if args.explain:
        return _explain(args)
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


def _explain(args: argparse.Namespace) -> int:
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


def _cmd_dump(args: argparse.Namespace) -> int:
    snap = _load_live(args)
    if snap is None:
        return 2
    print(dumps(snap.to_dict()))
    return 0


_HELP: dict[str, tuple[str, str, str, str]] = {
    # name: (one line, what it does, example, exit codes)
    "validate": (
        "check a config file as the master would",
        "Reads FILE and runs every check the master runs before publishing:\n"
        "parsing with limits, the shape of the document, the validator, the\n"
        "JSON Schema and the model given here or by HOTCFG_VALIDATOR,\n"
        "HOTCFG_SCHEMA and HOTCFG_MODEL, and encoding. Nothing is published.",
        "hotcfg validate config.yaml --schema schema.json",
        "0 valid; 1 invalid (the reason names the file, the place and the\n"
        "rule, never the content); 2 usage.",
    ),
    "status": (
        "show each service's generation, errors and workers",
        "For each service on this host: the master, the live generation and\n"
        "when it was published, the source, the last rejection, a validator\n"
        "running now, and every worker with the generation it applied, when,\n"
        "and for how long it has been behind the live generation.\n"
        "\n"
        "With --fleet etcd://HOST:PORT/KEY: every master on any host that\n"
        "follows KEY, from the records they keep in etcd under a lease: host,\n"
        "master pid, service, the etcd revision followed, what its live\n"
        "generation serves (revision: the key's content at that revision; or\n"
        "a rollback to generation G, the cache, or rejected revision R), the\n"
        "live generation, its workers (those behind as pid:generation) and\n"
        "the record's age; then which masters are behind the key's last\n"
        "revision or serve anything else, and why. A master that died drops\n"
        "out when its lease expires (HOTCFG_FLEET_TTL_MS), one that stopped\n"
        "at once.",
        "hotcfg status --name myapp --json\n"
        "  hotcfg status --fleet etcd://10.0.0.1:2379/app/config.yaml",
        "0 shown; 2 no service found, etcd unreachable (--fleet), or usage.",
    ),
    "wait": (
        "wait until every live worker applied the source as it is now",
        "Asks the master to read its source now (a file, etcd, a URL; no\n"
        "debounce, no waiting for the next poll) and to publish it if it\n"
        "changed, then blocks until every live worker of the service has\n"
        "applied the generation that holds it, or until the timeout; then\n"
        "names the workers still behind, with their pid, generation and how\n"
        "long they have been behind. If the master refuses that content, it\n"
        "says why (the file, the place, the reason) and exits 1. For deploy\n"
        "scripts: edit the file, then wait. With --generation G it waits for\n"
        "G instead. A master that serves no control socket is not asked: a\n"
        "note says so and it waits for the live generation.",
        "hotcfg wait --timeout 10 && echo applied everywhere",
        "0 every live worker applied it; 1 the master refused the source's\n"
        "content (or could not read it), or not within the timeout (or the\n"
        "generation was never published); 2 no service, several (pick one),\n"
        "the master exited, or usage.",
    ),
    "get": (
        "print one value of the live configuration as JSON",
        "Prints the value at a dotted path of the live generation. With\n"
        "--explain, asks the master where it comes from: the layer that gave\n"
        "it (a file, etcd, a HOTCFG_SET__ variable, a rollback) and what the\n"
        "other layers hold there; for a mapping, which layers were merged\n"
        "into it.",
        "hotcfg get --explain db.timeout",
        "0 printed; 1 no such key; 2 no service found, its master cannot be\n"
        "reached (--explain), or usage.",
    ),
    "dump": (
        "print the live configuration as JSON",
        "Prints the whole live generation. It may hold secrets: mind where\n"
        "the output goes.",
        "hotcfg dump > live.json",
        "0 printed; 2 no service found, or usage.",
    ),
    "history": (
        "list the generations the master keeps",
        "Lists the last good generations the master keeps (HOTCFG_HISTORY,\n"
        "kept across restarts): generation, publish time, size, content\n"
        "hash and source; * marks the live one. Asks the running master\n"
        "through its control socket.",
        "hotcfg history --json",
        "0 listed; 2 no service found, the master cannot be reached, or usage.",
    ),
    "diff": (
        "changed key paths between two generations, or a file and the live one",
        "Names the key paths added (+), removed (-) and changed (~) between\n"
        "two kept generations (default: the live one and the one before),\n"
        "or between FILE, checked as the master would, and the live\n"
        "generation. Values may be secrets: they are shown only with\n"
        "--values.",
        "hotcfg diff config.new.yaml",
        "0 compared (with or without differences); 1 FILE is invalid, or no\n"
        "generation to compare with; 2 no service found, or usage.",
    ),
    "push": (
        "validate a file and write it to an etcd key, compare-and-swap",
        "Checks FILE as the master would (format by its suffix or --format,\n"
        "else HOTCFG_FORMAT; the validator, JSON Schema and model given here\n"
        "or by HOTCFG_VALIDATOR, HOTCFG_SCHEMA and HOTCFG_MODEL). Then every\n"
        "live master following the key (their fleet records) must parse it,\n"
        "in the format it reads the key in and within its HOTCFG_MAX_BYTES,\n"
        "into the same document: otherwise the push is refused, naming the\n"
        "format and the masters. With no live master, FILE's format must be\n"
        "the one --format, HOTCFG_FORMAT or the key's suffix names (if any).\n"
        "Then it writes FILE's bytes to the etcd key only if nobody wrote the\n"
        "key since it was read (or since --expect-revision N, the revision\n"
        "you reviewed; 0: the key must not exist). --dry-run prints the key\n"
        "paths that would change. One key only: a prefix source\n"
        "(etcd://.../app/config/) is refused.\n"
        "etcd auth and TLS come from HOTCFG_ETCD_USER,\n"
        "HOTCFG_ETCD_PASSWORD_FILE, HOTCFG_ETCD_CA_FILE, HOTCFG_ETCD_CERT_FILE\n"
        "and HOTCFG_ETCD_KEY_FILE, as for the master.",
        "hotcfg push config.yaml etcd://10.0.0.1:2379/app/config.yaml",
        "0 written (the new revision is printed), or --dry-run shown; 1 FILE\n"
        "is invalid, a live master would not parse it, or a conflict\n"
        "(someone wrote in between: the revision there now is named); nothing\n"
        "written; 2 etcd unreachable or refused access (authentication,\n"
        "TLS), FILE's format is not the key's (no live master), or usage.",
    ),
    "rollback": (
        "publish a kept generation's content again, as a new one",
        "Publishes the content of generation G (default: the one before the\n"
        "live one) as a new generation, validated and hinted to every worker\n"
        "like any change. The source still holds the newer content: its next\n"
        "change, or a HUP of the master, publishes that again.",
        "hotcfg rollback --to 41 && hotcfg wait",
        "0 published; 2 no service found, G is not kept, the master is busy,\n"
        "or usage.",
    ),
}


# -- history, diff, rollback: through the master's control socket -------------


def _control_socket(args: argparse.Namespace) -> str | None:
    """The control socket of the one running master the arguments select
    (several: refused, so a rollback never reaches the wrong service)."""
    path = args.segment or _one_live_service(args)
    return None if path is None else _control.socket_path(path)


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
    _print_diff(old, new, names, args)
    return 0


def _add_history_commands(sub: Any) -> None:
    p = _subcommand(sub, "history", _cmd_history)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _subcommand(sub, "diff", _cmd_diff)
    p.add_argument("file", nargs="?", help="config file, checked as the master would")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument(
        "--from", dest="from_", type=int, help="older generation (default: before --to)"
    )
    p.add_argument("--to", type=int, help="newer generation (default: the live one)")
    p.add_argument(
        "--values", action="store_true", help="show values too (they may be secrets)"
    )

    p = _subcommand(sub, "rollback", _cmd_rollback)
    p.add_argument(
        "--to", type=int, help="generation to go back to (default: the one before)"
    )


def _subcommand(
    sub: Any, name: str, run: Any, *, selects: bool = True
) -> argparse.ArgumentParser:
    summary, what, example, codes = _HELP[name]
    epilog = f"example:\n  {example}\n\nexit codes:\n  " + codes.replace("\n", "\n  ")
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=what,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if selects:
        p.add_argument("--dir", help="segment directory (default: HOTCFG_SEGMENT_DIR)")
        p.add_argument("--segment", help="path of one segment file")
        p.add_argument("--name", help="the service's segment name (HOTCFG_NAME)")
        p.add_argument("--pid", type=int, help="the service's master pid")
    p.set_defaults(run=run)
    return p


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotcfg",
        description="Check a config file, and inspect or wait on the running "
        "services that hotcfg publishes to on this host.",
        epilog="Run hotcfg COMMAND --help for what a command does, an example and "
        "its exit codes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _subcommand(sub, "validate", _cmd_validate, selects=False)
    p.add_argument("file")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument("--schema", help="JSON Schema file")
    p.add_argument("--validator", help="module:function")
    p.add_argument("--model", help="module:Class, a dataclass or pydantic model")

    p = _subcommand(sub, "status", _cmd_status)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--fleet",
        metavar="etcd://HOST:PORT[,...]/KEY",
        help="every host following this etcd key, from etcd (not this host)",
    )

    p = _subcommand(sub, "wait", _cmd_wait)
    p.add_argument(
        "--generation",
        type=int,
        help="the generation to wait for (default: the one holding the source now)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default: 30)")

    p = _subcommand(sub, "get", _cmd_get)
    p.add_argument("key", help="dotted path, e.g. db.timeout")
    p.add_argument(
        "--explain",
        action="store_true",
        help="where the value comes from (asks the master)",
    )
    p.add_argument("--json", action="store_true", help="with --explain: as JSON")
    _subcommand(sub, "dump", _cmd_dump)
    _add_history_commands(sub)

    p = _subcommand(sub, "push", _cmd_push, selects=False)
    p.add_argument("file", help="config file, checked as the master would")
    p.add_argument("url", metavar="etcd://HOST:PORT[,...]/KEY")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument("--schema", help="JSON Schema file")
    p.add_argument("--validator", help="module:function")
    p.add_argument("--model", help="module:Class, a dataclass or pydantic model")
    p.add_argument(
        "--expect-revision",
        type=int,
        metavar="N",
        help="write only if the key is still at revision N (0: must not exist)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the changed key paths only"
    )
    p.add_argument(
        "--values", action="store_true", help="with --dry-run, show values too"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except HotcfgError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return 2
    return code
