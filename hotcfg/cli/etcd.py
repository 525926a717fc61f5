"""The commands that speak to etcd rather than to this host's services:
``push`` (a checked file to a key, compare-and-swap) and ``status --fleet``
(every master following a key, from their records; :mod:`.fleet_view`
renders them).

The etcd client and the fleet reader are imported by the commands that use
them, so the other commands never load them. Must not import
:mod:`.parser`; takes from :mod:`.local` the settings that check a file and
from :mod:`.control` how a diff is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._content import diff as _diff
from .._content.loaders import format_for
from .._errors import ConfigError, HotcfgError, SourceError, UnreachableError
from .._master.check import validate_source
from .._settings import Settings
from .._sources.files import load_document, read_capped
from .._sources.locations import ETCD_SCHEME, parse_etcd, redact_url
from .control import print_diff
from .exits import Exit
from .local import file_settings
from .times import utc

if TYPE_CHECKING:
    from .._sources.etcd.kv import KeyState
    from .._sources.etcd.txn import Outcome


@dataclass(frozen=True, slots=True)
class _PutResult:
    """A push's outcome as it is told: ``written``, the key's revision now
    (the new one, or the one there instead of the one expected; 0: no such
    key), ``already``: not written since the key holds these very bytes
    (a retry whose first try landed, or the same push by someone else)."""

    written: bool
    mod_revision: int
    already: bool = False


def _put_result(outcome: Outcome, key: str, content: bytes) -> _PutResult:
    if outcome.succeeded:
        return _PutResult(True, outcome.revision)
    now = outcome.now
    if now is None or key not in now.entries:
        return _PutResult(False, 0)
    return _PutResult(False, now.mod_revision(key), now.value(key) == content)


@dataclass(frozen=True)
class Checked:
    """A file ``push`` checked, and the key it goes to as read: what the
    write (plain, or a canary: :mod:`.rollout`) starts from."""

    target: Any
    content: bytes
    data: dict[str, Any]
    key_format: str
    access: Any
    timeout_s: float
    settings: Settings
    state: KeyState
    masters: list[dict[str, Any]]


def check_push(args: argparse.Namespace) -> Checked | int:
    """Everything ``push`` checks before it writes: the URL is one etcd
    key, FILE is valid as the master would find it, the key is read, and
    every live master would parse FILE. The exit code of a refusal (said
    why), else what the write needs."""
    from .._sources.etcd import access as _etcd_access
    from .._sources.etcd import kv as _etcd  # only this command speaks to etcd

    if not args.url.startswith(ETCD_SCHEME):
        print(
            f"not an etcd key: {redact_url(args.url)} (etcd://host:port/key)",
            file=sys.stderr,
        )
        return Exit.USAGE
    try:
        target = parse_etcd(args.url)
        if target.is_prefix:
            print(
                f"hotcfg push writes one key, and {args.url} names a prefix (it "
                "ends in /): write the keys under it with etcdctl (several at "
                "once with etcdctl txn)",
                file=sys.stderr,
            )
            return Exit.USAGE
        file_format = _push_file_format(args)
        # What the key's name says (None: nothing), checked only when no
        # live master says what it reads.
        named_format = args.format or _env_format() or _suffix_format(target.key)
    except ConfigError as exc:  # FILE's format unknown, HOTCFG_FORMAT invalid
        print(f"hotcfg: {exc}", file=sys.stderr)
        return Exit.CONFIG
    try:
        settings = file_settings(args, fmt=file_format)
        # The bytes checked are the bytes written.
        content = read_capped(
            settings.source or args.file, max_bytes=settings.max_bytes
        )
        data, _ = validate_source(settings, content=content)
    except HotcfgError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return Exit.NO
    try:
        access = _etcd_access.EtcdAccess.from_settings(settings)  # HOTCFG_ETCD_*
    except ConfigError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return Exit.CONFIG
    timeout_s = settings.etcd_timeout_ms / 1000.0
    try:
        state = _etcd.read_key(
            target, access=access, timeout_s=timeout_s, max_bytes=settings.max_bytes
        )
        # After the key: a refusal here is then about the records only.
        masters = _live_masters(args.url, settings)
    except SourceError as exc:  # unreachable, or refused (auth, TLS)
        print(f"hotcfg: {args.url}: {exc.reason}", file=sys.stderr)
        return _etcd_failed(exc)
    key_format = _push_format_refused(
        args.file, content, (file_format, named_format), masters, target.key
    )
    if isinstance(key_format, int):
        return key_format
    return Checked(
        target, content, data, key_format, access, timeout_s, settings, state, masters
    )


def cmd_push(args: argparse.Namespace) -> int:
    """Validate FILE as the master would, check that the live masters of the
    key would parse it, then write it to the etcd key with a compare-and-swap
    on the revision read (or ``--expect-revision``), and the audit record
    beside it (``K#audit``: who, why, the paths changed) in the same
    transaction."""
    checked = check_push(args)
    if isinstance(checked, int):
        return checked
    state = checked.state
    expected = state.mod_revision
    if args.expect_revision is not None:
        expected = args.expect_revision
    if args.dry_run:
        return _push_diff(args, state, checked.data, checked.key_format)
    return _put(args, checked, expected)


def _put(args: argparse.Namespace, checked: Checked, expected: int) -> int:
    """The compare-and-swap write of ``push``, with its audit record, and
    what it says."""
    from .._sources.etcd import rollout as _rollout
    from .._sources.etcd import txn as _txn
    from .audit import author, changed_paths, document, message

    key = checked.target.key
    old = checked.state.value if isinstance(checked.state.value, bytes) else None
    record = _rollout.Audit(
        "push",
        author(args),
        message(args),
        time.time(),
        changed_paths(document(old, checked.key_format, args.url), checked.data),
    ).encode()
    start, end = _rollout.watch_range(key)
    try:
        outcome = _txn.transact(
            checked.target,
            _txn.Writes(
                compare=[(key, expected)],
                put=[(key, checked.content), (_rollout.audit_key(key), record)],
                read_back=(start.decode(), end.decode()),
                max_bytes=checked.settings.max_bytes * 3,
            ),
            access=checked.access,
            timeout_s=checked.timeout_s,
        )
    except SourceError as exc:  # unreachable, or refused (auth, TLS)
        print(f"hotcfg: {args.url}: {exc.reason}", file=sys.stderr)
        return _etcd_failed(exc)
    result = _put_result(outcome, key, checked.content)
    if args.json:
        report = {
            "file": args.file,
            "url": args.url,
            "written": bool(result.written and not result.already),
            "already": bool(result.already),
            "conflict": not result.written and not result.already,
            "revision": result.mod_revision or None,
            "expected_revision": expected,
            "dry_run": False,
        }
        print(json.dumps(report, indent=2))
    if result.already:
        if not args.json:
            print(
                f"{args.file} is at {args.url} already: revision "
                f"{result.mod_revision}; nothing written"
            )
        return Exit.OK
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
        return Exit.NO
    if not args.json:
        print(f"pushed {args.file} to {args.url}: revision {result.mod_revision}")
    _canary_note(args.url, key, outcome)
    return Exit.OK


def _canary_note(url: str, key: str, outcome: Outcome) -> None:
    """After a push to main while a canary runs: the canary was reviewed
    against the main before, and ``promote`` now refuses it; say so."""
    from .._sources.etcd import rollout as _rollout

    canary = _rollout.canary_key(key)
    now = outcome.now
    if now is None or not now.mod_revision(canary):
        return
    print(
        f"note: a canary runs on {url} (revision {now.mod_revision(canary)}), "
        "pushed on main as it was before this push: hotcfg promote refuses it now; "
        "push it again (push --canary) on top of this, or hotcfg abort it",
        file=sys.stderr,
    )


def _etcd_failed(exc: SourceError) -> int:
    """etcd did not answer (75), or refused this user (77: authentication,
    TLS, permissions)."""
    return Exit.UNREACHABLE if isinstance(exc, UnreachableError) else Exit.NO_PERMISSION


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
            return Exit.NO
        return str(masters[0]["format"])
    if named_format is not None and named_format != file_format:
        print(
            f"{file} is {file_format}, but the master reads {key} as "
            f"{named_format}: give a {named_format} file",
            file=sys.stderr,
        )
        return Exit.CONFIG
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
    """``push --dry-run``: the key paths FILE changes; nothing written.
    The notes about the key go to stderr with ``--json``."""
    note = sys.stderr if args.json else sys.stdout
    old: dict[str, Any] = {}
    if state.value is None:
        print(f"{args.url} does not exist; it would be created", file=note)
    elif not isinstance(state.value, bytes):  # too large to hold, or garbled
        print(
            f"{args.url} holds no valid document now (not one hotcfg can read)",
            file=note,
        )
    else:
        try:
            old = load_document(state.value, fmt=key_format, source=args.url)
        except ConfigError as exc:
            print(f"{args.url} holds no valid document now ({exc.reason})", file=note)
    print_diff(
        old,
        new,
        (f"{args.url} at revision {state.mod_revision}", args.file),
        args,
        revision=state.mod_revision or None,
        dry_run=True,
    )
    if not args.json:
        print("dry run: nothing written")
    return Exit.OK


def _record_json(record: dict[str, Any]) -> dict[str, Any]:
    """A fleet record for ``status --fleet --json``: its times UTC ISO 8601,
    its ``track`` (null for a master that does not report one)."""
    times = ("published_at", "updated_at")
    return {
        **record,
        "track": record.get("track"),
        **{k: utc(record.get(k)) for k in times if k in record},
    }


def status_fleet(args: argparse.Namespace) -> int:
    """``status --fleet URL``: every master following the key, from the
    records they keep in etcd (``_master.fleet``), not from this host's segments."""
    from .._master import fleet as _fleet  # only this command reads the fleet
    from .canary_status import canary_status
    from .fleet_view import render, summary

    url = args.fleet
    if not url.startswith(ETCD_SCHEME):
        print(
            f"not an etcd key: {redact_url(url)} (etcd://host:port/key)",
            file=sys.stderr,
        )
        return Exit.USAGE
    try:
        key = parse_etcd(url).key
    except ConfigError as exc:
        print(f"hotcfg: --fleet: {exc.reason}", file=sys.stderr)
        return Exit.USAGE
    try:
        settings = Settings.resolve()
        fleet = _fleet.read_fleet(url, settings)
        canary, canary_lines = canary_status(url, settings, fleet.records)
    except SourceError as exc:  # unreachable, or refused (auth, TLS)
        print(f"hotcfg: {url}: {exc.reason}", file=sys.stderr)
        return _etcd_failed(exc)
    except ConfigError as exc:  # a bad HOTCFG_* variable
        print(f"hotcfg: {exc}", file=sys.stderr)
        return Exit.CONFIG
    if fleet.unreadable:
        print(
            f"hotcfg: {fleet.unreadable} value(s) under {_fleet.prefix_for(key)} "
            "are not fleet records; skipped",
            file=sys.stderr,
        )
    canary_revision = int(canary["revision"]) if canary else 0
    if args.json:
        report = {
            "key": key,
            "key_revision": fleet.key_revision,
            "revision": fleet.revision,
            "canary": canary,
            "records": [_record_json(r) for r in fleet.records],
            "summary": (
                summary(fleet.records, fleet.key_revision, canary_revision)
                if fleet.records
                else None
            ),
        }
        print(json.dumps(report, indent=2))
        return Exit.OK
    lines = render(
        url,
        fleet.records,
        key_revision=fleet.key_revision,
        now=time.time(),
        canary=canary_lines,
        canary_revision=canary_revision,
    )
    print("\n".join(lines))
    return Exit.OK
