"""The commands of a staged rollout on an etcd key ``K``
(``_sources.etcd.rollout``): ``push --canary`` (a checked file to
``K#canary``), ``promote`` (the canary to ``K``), ``abort`` (the canary
dropped) and ``history etcd://...`` (``K``'s changes, from etcd's
revisions).

Every write is one etcd transaction (``_sources.etcd.txn``) comparing the
``mod_revision`` of each key it was decided on, and writing ``K#audit``
with the change: it lands whole at one revision, or not at all and
``conflict`` is said. A transaction whose answer was lost may have landed:
a retry that loses its compare looks at ``K#audit``, and finding its own
record there (the same bytes, time included) knows the write is its own.

The etcd modules and the fleet reader are imported by the commands that
use them. Takes the file checks of ``push`` from :mod:`.etcd`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, SourceError
from .._settings import Settings
from .._sources.locations import ETCD_SCHEME, parse_etcd, redact_url
from .audit import author, changed_paths, document, key_format, message
from .control import print_diff
from .etcd import Checked, _etcd_failed, check_push
from .exits import Exit
from .times import local, utc

if TYPE_CHECKING:
    from .._sources.etcd.rollout import Canary, Selector
    from .._sources.etcd.txn import Outcome, Range


@dataclass(frozen=True)
class _Key:
    """An etcd key a rollout command works on, and how to reach it."""

    url: str
    target: Any
    access: Any
    settings: Settings
    timeout_s: float

    @property
    def key(self) -> str:
        return str(self.target.key)

    def span(self) -> tuple[str, str]:
        """``[K, K$)``: the key, its canary and its audit record."""
        from .._sources.etcd import rollout as _rollout

        start, end = _rollout.watch_range(self.key)
        return start.decode(), end.decode()

    def read(self, revision: int | None = None) -> Range:
        """``K``, ``K#canary`` and ``K#audit`` in one read (one revision).

        Raises:
            Compacted: ``revision`` is compacted away.
            SourceError: unreachable, or refused.
        """
        from .._sources.etcd import rollout as _rollout
        from .._sources.etcd import txn as _txn

        found = _txn.read_range(
            self.target,
            *self.span(),
            access=self.access,
            timeout_s=self.timeout_s,
            max_bytes=self.settings.max_bytes * 3 + 65536,
            revision=revision,
        )
        # The range holds a few other names too (K followed by a byte
        # below "$"): not this key's.
        ours = (self.key, _rollout.canary_key(self.key), _rollout.audit_key(self.key))
        entries = {k: v for k, v in found.entries.items() if k in ours}
        return _txn.Range(entries, found.revision)


def _open(url: str) -> _Key | int:
    """The key ``url`` names, with the ``HOTCFG_ETCD_*`` access; the exit
    code of a refusal (said why)."""
    from .._sources.etcd.access import EtcdAccess

    if not url.startswith(ETCD_SCHEME):
        print(
            f"not an etcd key: {redact_url(url)} (etcd://host:port/key)",
            file=sys.stderr,
        )
        return Exit.USAGE
    try:
        target = parse_etcd(url)
    except ConfigError as exc:
        print(f"hotcfg: {exc.reason}", file=sys.stderr)
        return Exit.USAGE
    if target.is_prefix:
        print(
            f"a canary is for one key, and {url} names a prefix (it ends in /)",
            file=sys.stderr,
        )
        return Exit.USAGE
    try:
        settings = Settings.resolve()
        access = EtcdAccess.from_settings(settings)
    except ConfigError as exc:
        print(f"hotcfg: {exc}", file=sys.stderr)
        return Exit.CONFIG
    return _Key(url, target, access, settings, settings.etcd_timeout_ms / 1000.0)


def _failed(url: str, exc: SourceError, *, maybe: str = "") -> int:
    """etcd did not answer (75) or refused (77); ``maybe``: what may have
    happened all the same, said when it did not answer."""
    from .._errors import UnreachableError

    print(f"hotcfg: {url}: {exc.reason}", file=sys.stderr)
    if maybe and isinstance(exc, UnreachableError):
        print(
            f"hotcfg: {maybe} may or may not have happened: check with "
            f"hotcfg history {url}",
            file=sys.stderr,
        )
    return _etcd_failed(exc)


def _transact(
    key: _Key,
    compare: list[tuple[str, int]],
    put: list[tuple[str, bytes]],
    delete: list[str],
) -> Outcome:
    """One transaction on ``key``'s range; a lost compare reads the range
    back. A lost compare with this very audit record in ``K#audit`` (the
    last put) is this write, landed by an attempt whose answer was lost:
    it is told as done, at that record's revision.

    Raises:
        SourceError: unreachable, or refused.
    """
    from .._sources.etcd import rollout as _rollout
    from .._sources.etcd import txn as _txn

    outcome = _txn.transact(
        key.target,
        _txn.Writes(
            compare=compare,
            put=put,
            delete=delete,
            read_back=key.span(),
            max_bytes=key.settings.max_bytes * 3 + 65536,
        ),
        access=key.access,
        timeout_s=key.timeout_s,
    )
    audit = _rollout.audit_key(key.key)
    record = dict(put).get(audit)
    now = outcome.now
    landed = now is not None and record is not None and now.value(audit) == record
    if not outcome.succeeded and now is not None and landed:
        return _txn.Outcome(True, now.mod_revision(audit), now)
    return outcome


def _hosts(records: list[dict[str, Any]]) -> str:
    return ",".join(dict.fromkeys(str(r["host"]) for r in records)) or "none"


def _picked(selector: Selector, records: list[dict[str, Any]]) -> str:
    """``1 of 3 live masters: h1``."""
    chosen = [r for r in records if selector.selects(str(r["host"]))]
    names = ", ".join(f"{r['host']}:{r['pid']}" for r in chosen) or "none"
    return f"{len(chosen)} of {len(records)} live masters: {names}"


# -- push --canary ---------------------------------------------------------------


def cmd_push_canary(args: argparse.Namespace) -> int:
    """``push FILE URL --canary SEL``: FILE checked as ``push`` checks it,
    then written to ``K#canary`` (with ``K#audit``), comparing ``K`` and
    ``K#canary`` with what was read (``K``: or ``--expect-revision``)."""
    from .._sources.etcd import rollout as _rollout

    try:
        selector = _rollout.Selector.parse(args.canary)
    except ConfigError as exc:
        print(f"hotcfg: {exc.reason}", file=sys.stderr)
        return Exit.USAGE
    checked = check_push(args)
    if isinstance(checked, int):
        return checked
    opened = _open(args.url)
    if isinstance(opened, int):
        return opened
    key = opened
    try:
        now = key.read()
    except SourceError as exc:
        return _failed(args.url, exc)
    canary_key = _rollout.canary_key(key.key)
    main_revision = now.mod_revision(key.key)
    expected = main_revision if args.expect_revision is None else args.expect_revision
    main = document(now.value(key.key), checked.key_format, args.url)
    running = now.mod_revision(canary_key)
    if _not_reviewed(args, running):
        return Exit.NO
    _note_unknown_hosts(selector, checked.masters)
    if args.dry_run:
        if running and not args.json:
            print(f"it would replace the canary of revision {running}")
        return _canary_dry_run(args, checked, selector, main, main_revision)
    paths = changed_paths(main, checked.data)
    at = time.time()
    canary = _rollout.Canary(
        selector, checked.content, expected, author(args), message(args), at
    )
    try:
        value = canary.encode()
    except ConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return Exit.NO
    record = _rollout.Audit(
        "canary", canary.author, canary.message, at, paths, selector.describe()
    ).encode()
    replaced = now.mod_revision(canary_key)
    if args.expect_canary_revision is not None:
        replaced = args.expect_canary_revision
    try:
        outcome = _transact(
            key,
            [(key.key, expected), (canary_key, replaced)],
            [(canary_key, value), (_rollout.audit_key(key.key), record)],
            [],
        )
    except SourceError as exc:
        return _failed(args.url, exc, maybe="the canary push")
    picked = _picked(selector, checked.masters)
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.file,
                    "url": args.url,
                    "written": outcome.succeeded,
                    "conflict": not outcome.succeeded,
                    "revision": outcome.revision if outcome.succeeded else None,
                    "expected_revision": expected,
                    "replaced_canary_revision": replaced or None,
                    "selector": selector.describe(),
                    "selected": [
                        f"{r['host']}:{r['pid']}"
                        for r in checked.masters
                        if selector.selects(str(r["host"]))
                    ],
                    "paths": list(paths),
                    "dry_run": False,
                },
                indent=2,
            )
        )
    if not outcome.succeeded:
        _say_conflict(args.url, key.key, outcome, (expected, replaced), "canary push")
        return Exit.NO
    if not args.json:
        fix = f", replacing the canary of revision {replaced}" if replaced else ""
        print(
            f"pushed {args.file} to {args.url} as a canary for "
            f"{selector.describe()} ({picked}){fix}: revision {outcome.revision}"
        )
    return Exit.OK


def _note_unknown_hosts(selector: Selector, masters: list[dict[str, Any]]) -> None:
    """A note for each host the selector names that no live master reports
    (a typo, or a host down): the canary would reach none of them."""
    live = {str(r["host"]) for r in masters}
    unknown = [host for host in selector.hosts if host not in live]
    if unknown and masters:
        print(
            f"note: no live master reports {', '.join(unknown)} "
            f"(the live hosts: {', '.join(sorted(live))})",
            file=sys.stderr,
        )


def _canary_dry_run(
    args: argparse.Namespace,
    checked: Checked,
    selector: Selector,
    main: dict[str, Any] | None,
    main_revision: int,
) -> int:
    """``push --canary --dry-run``: the key paths the canary changes
    against main, and the live masters it would go to."""
    chosen = [
        f"{r['host']}:{r['pid']}"
        for r in checked.masters
        if selector.selects(str(r["host"]))
    ]
    print_diff(
        main or {},
        checked.data,
        (f"{args.url} at revision {main_revision}", args.file),
        args,
        revision=main_revision or None,
        dry_run=True,
        selector=selector.describe(),
        selected=chosen,
    )
    if not args.json:
        print(
            f"a canary for {selector.describe()} would go to "
            f"{_picked(selector, checked.masters)}"
        )
        print("dry run: nothing written")
    return Exit.OK


def _say_conflict(
    url: str, key: str, outcome: Outcome, expected: tuple[int, int], what: str
) -> None:
    """A lost compare-and-swap, and what moved: the key, or its canary."""
    from .._sources.etcd import rollout as _rollout

    now = outcome.now
    moved = []
    if now is not None:
        main, canary = now.mod_revision(key), now.mod_revision(_rollout.canary_key(key))
        if main != expected[0]:
            there = f"revision {main}" if main else "no such key"
            moved.append(f"{key} is at {there}, not {expected[0] or 'no such key'}")
        if canary != expected[1]:
            there = f"revision {canary}" if canary else "gone"
            was = f"revision {expected[1]}" if expected[1] else "none"
            moved.append(f"its canary is {there}, not {was}")
    said = "; ".join(moved) or "someone wrote in between"
    print(
        f"conflict: {url} is not as this {what} expected: {said}; it wrote "
        "nothing. Look again (hotcfg status --fleet, hotcfg history) and retry.",
        file=sys.stderr,
    )


# -- promote, abort ----------------------------------------------------------------


def _canary_of(key: _Key, now: Range) -> Canary | int:
    """The canary running on ``key``; exit 1 (said) when there is none."""
    from .._sources.etcd import rollout as _rollout

    value = now.value(_rollout.canary_key(key.key))
    if value is None:
        print(f"no canary on {key.url}: nothing to do", file=sys.stderr)
        return Exit.NO
    try:
        return _rollout.Canary.decode(value)
    except ValueError as exc:
        print(
            f"{_rollout.canary_key(key.key)} is not a canary hotcfg can read "
            f"({exc}); hotcfg abort {key.url} drops it",
            file=sys.stderr,
        )
        return Exit.NO


def _gates(
    key: _Key, now: Range, canary: Canary, records: list[dict[str, Any]]
) -> list[str]:
    """Why the canary is not ready to promote; empty when it is."""
    from .._sources.etcd import rollout as _rollout
    from .fleet_view import canary_not_ready

    revision = now.mod_revision(_rollout.canary_key(key.key))
    main = now.mod_revision(key.key)
    reasons = []
    if main != canary.base_revision:
        reasons.append(
            f"{key.key} moved since the canary was pushed: it is at revision "
            f"{main}, the canary was pushed on {canary.base_revision} (someone "
            "pushed main meanwhile; push the canary again on top of it)"
        )
    selected, not_ready = canary_not_ready(
        records, canary.selector.selects, revision, named=canary.selector.hosts
    )
    reasons.extend(not_ready)
    if not selected:
        reasons.append(
            f"no live master is on the canary: {canary.selector.describe()} "
            f"selects none of the {len(records)} live masters "
            f"(hosts: {_hosts(records)})"
        )
    return reasons


def _not_reviewed(args: argparse.Namespace, revision: int) -> bool:
    """Whether the canary is not the one ``--expect-canary-revision``
    names (said as a conflict); False without it."""
    expected = args.expect_canary_revision
    if expected is None or expected == revision:
        return False
    now = f"at revision {revision}" if revision else "gone"
    wanted = f"revision {expected}" if expected else "none"
    print(
        f"conflict: the canary of {args.url} is {now}; this command expected "
        f"{wanted} (someone pushed, promoted or aborted in between); nothing "
        "written. Review with hotcfg status --fleet and run it again.",
        file=sys.stderr,
    )
    return True


def cmd_promote(args: argparse.Namespace) -> int:
    """``promote URL``: the canary's content to ``K`` and the canary
    deleted, in one transaction comparing both keys with what was read;
    refused (nothing written) unless the selected masters serve it."""
    from .._master import fleet as _fleet
    from .._sources.etcd import rollout as _rollout

    opened = _open(args.url)
    if isinstance(opened, int):
        return opened
    key = opened
    try:
        now = key.read()
    except SourceError as exc:
        return _failed(args.url, exc)
    canary = _canary_of(key, now)
    if isinstance(canary, int):
        return canary
    canary_key = _rollout.canary_key(key.key)
    revision = now.mod_revision(canary_key)
    if _not_reviewed(args, revision):
        return Exit.NO
    main_revision = now.mod_revision(key.key)
    try:
        records = _fleet.read_fleet(args.url, key.settings).records
    except SourceError as exc:
        if not args.force:
            return _failed(args.url, exc)
        records = []
    if not args.force:
        reasons = _gates(key, now, canary, records)
        if reasons:
            print(
                f"refused: not promoting the canary of {args.url} (revision "
                f"{revision}, for {canary.selector.describe()}): "
                + "; ".join(reasons)
                + "; nothing written (--force promotes anyway)",
                file=sys.stderr,
            )
            return Exit.NO
    fmt = key_format(key.key, records)
    paths = changed_paths(
        document(now.value(key.key), fmt, args.url),
        document(canary.content, fmt, args.url),
    )
    record = _rollout.Audit(
        "promote",
        author(args),
        message(args),
        time.time(),
        paths,
        canary.selector.describe(),
    ).encode()
    try:
        outcome = _transact(
            key,
            [(key.key, main_revision), (canary_key, revision)],
            [(key.key, canary.content), (_rollout.audit_key(key.key), record)],
            [canary_key],
        )
    except SourceError as exc:
        return _failed(args.url, exc, maybe="the promote")
    if args.json:
        print(
            json.dumps(
                {
                    "url": args.url,
                    "promoted": outcome.succeeded,
                    "conflict": not outcome.succeeded,
                    "revision": outcome.revision if outcome.succeeded else None,
                    "canary_revision": revision,
                    "selector": canary.selector.describe(),
                    "forced": bool(args.force),
                    "paths": list(paths),
                },
                indent=2,
            )
        )
    if not outcome.succeeded:
        _say_conflict(args.url, key.key, outcome, (main_revision, revision), "promote")
        return Exit.NO
    if not args.json:
        print(
            f"promoted the canary of {args.url} (revision {revision}, for "
            f"{canary.selector.describe()}) to main: revision {outcome.revision}"
        )
    return Exit.OK


def cmd_abort(args: argparse.Namespace) -> int:
    """``abort URL``: the canary deleted (if unchanged since read), with
    ``K#audit``; ``K`` untouched."""
    from .._sources.etcd import rollout as _rollout

    opened = _open(args.url)
    if isinstance(opened, int):
        return opened
    key = opened
    try:
        now = key.read()
    except SourceError as exc:
        return _failed(args.url, exc)
    canary_key = _rollout.canary_key(key.key)
    revision = now.mod_revision(canary_key)
    if _not_reviewed(args, revision):
        return Exit.NO
    if not revision:
        print(f"no canary on {args.url}: nothing to do", file=sys.stderr)
        return Exit.NO
    selector = ""
    paths: tuple[str, ...] = ()
    try:
        canary = _rollout.Canary.decode(now.value(canary_key) or b"")
        fmt = key_format(key.key)
        selector = canary.selector.describe()
        paths = changed_paths(
            document(now.value(key.key), fmt, args.url),
            document(canary.content, fmt, args.url),
        )
    except ValueError:  # not a canary record: dropped all the same
        pass
    record = _rollout.Audit(
        "abort", author(args), message(args), time.time(), paths, selector
    ).encode()
    try:
        outcome = _transact(
            key,
            [(canary_key, revision)],
            [(_rollout.audit_key(key.key), record)],
            [canary_key],
        )
    except SourceError as exc:
        return _failed(args.url, exc, maybe="the abort")
    if args.json:
        print(
            json.dumps(
                {
                    "url": args.url,
                    "aborted": outcome.succeeded,
                    "conflict": not outcome.succeeded,
                    "revision": outcome.revision if outcome.succeeded else None,
                    "canary_revision": revision,
                    "selector": selector or None,
                },
                indent=2,
            )
        )
    if not outcome.succeeded:
        main = now.mod_revision(key.key)
        _say_conflict(args.url, key.key, outcome, (main, revision), "abort")
        return Exit.NO
    if not args.json:
        print(
            f"aborted the canary of {args.url} (revision {revision}"
            f"{', for ' + selector if selector else ''}): revision "
            f"{outcome.revision}; its masters return to main as they apply it "
            "(hotcfg status --fleet)"
        )
    return Exit.OK


# -- history etcd://... -----------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    revision: int
    at: float | None
    action: str
    author: str
    message: str
    paths: tuple[str, ...]
    keys: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "at": utc(self.at) if self.at is not None else None,
            "action": self.action,
            "author": self.author or None,
            "message": self.message,
            "paths": list(self.paths),
            "keys": list(self.keys),
        }


def _row(key: str, revision: int, after: Range, before: Range | None, fmt: str) -> _Row:
    """What happened at ``revision``, from the range just after it and
    just before it: the audit record written with it, or, without one, a
    put or a delete made outside hotcfg. ``before`` None: compacted away,
    the paths are then the audit record's."""
    from .._sources.etcd import rollout as _rollout

    canary_key, audit_key = _rollout.canary_key(key), _rollout.audit_key(key)
    names = (key, canary_key, audit_key)
    written = [k for k in names if after.mod_revision(k) == revision]
    deleted = [
        k
        for k in names
        if before is not None and before.mod_revision(k) and not after.mod_revision(k)
    ]
    audit = None
    if audit_key in written:
        try:
            audit = _rollout.Audit.decode(after.value(audit_key) or b"")
        except ValueError:
            audit = None
    main_after = document(after.value(key), fmt, key)
    if before is None:
        paths = audit.paths if audit is not None else ()
    elif key in written or key in deleted:  # push, promote, a put or delete of K
        paths = changed_paths(document(before.value(key), fmt, key), main_after)
    elif canary_key in written:  # main -> the canary's content
        try:
            canary = _rollout.Canary.decode(after.value(canary_key) or b"")
            paths = changed_paths(main_after, document(canary.content, fmt, key))
        except ValueError:
            paths = ()
    else:
        paths = audit.paths if audit is not None else ()
    touched = tuple(k for k in names if k in written or k in deleted)
    if audit is not None:
        return _Row(
            revision,
            audit.at,
            audit.action,
            audit.author,
            audit.message,
            paths,
            touched,
        )
    action = "put" if written else "delete"
    return _Row(revision, None, action, "", "", paths, touched)


def _oldest_kept(key: _Key, gone: int, kept: int) -> int:
    """The oldest revision etcd still has, between ``gone`` (compacted)
    and ``kept`` (readable), by halving."""
    from .._sources.etcd import txn as _txn

    while kept - gone > 1:
        middle = (gone + kept) // 2
        try:
            key.read(middle)
            kept = middle
        except _txn.Compacted:
            gone = middle
    return kept


def _deleted_at(key: _Key, names: list[str], low: int, high: int) -> int:
    """The revision in ``(low, high]`` at which the keys ``names``, there
    at ``low`` and gone at ``high``, were deleted, by halving."""
    while high - low > 1:
        middle = (low + high) // 2
        seen = key.read(middle)
        if all(seen.mod_revision(n) == 0 for n in names):
            high = middle
        else:
            low = middle
    return high


def _walk(key: _Key, limit: int, fmt: str) -> tuple[list[_Row], int | None]:
    """The changes of ``K``, ``K#canary`` and ``K#audit``, newest first,
    and the revision before which etcd compacted the history (None: the
    walk did not reach it). Each step reads the range at the newest write
    it holds and just before it; a key there at that write and gone at the
    step's own revision was deleted in between (by hand: hotcfg writes an
    audit record with every delete), found by halving.

    Raises:
        SourceError: unreachable, or refused.
    """
    from .._sources.etcd import txn as _txn

    rows: list[_Row] = []
    cursor = key.read()
    at = cursor.revision
    while len(rows) < limit:
        newest = max((e.mod_revision for e in cursor.entries.values()), default=0)
        if not newest:
            return rows, None
        try:
            after = key.read(newest) if newest != at else cursor
        except _txn.Compacted as exc:
            # Compacted past the newest change (routine with etcd's
            # auto-compaction): no key of the range changed since, so
            # what it holds now is that change, its audit record with it.
            rows.append(_row(key.key, newest, cursor, None, fmt))
            return rows, _oldest_kept(key, exc.revision, at)
        try:
            gone = [k for k in after.entries if k not in cursor.entries]
            if gone:
                deleted = _deleted_at(key, gone, newest, at)
                before = key.read(deleted - 1)
                rows.append(_row(key.key, deleted, key.read(deleted), before, fmt))
                cursor, at = before, deleted - 1
                continue
            before = key.read(newest - 1)
        except _txn.Compacted as exc:
            if exc.revision == newest - 1:  # this change is kept, not before it
                rows.append(_row(key.key, newest, after, None, fmt))
                return rows, newest
            return rows, _oldest_kept(key, exc.revision, at)
        rows.append(_row(key.key, newest, after, before, fmt))
        cursor, at = before, newest - 1
    return rows, None


def cmd_history_etcd(args: argparse.Namespace) -> int:
    """``history etcd://.../K``: ``K``'s changes, newest first, from etcd's
    revisions of ``K``, its canary and its audit record."""
    opened = _open(args.url)
    if isinstance(opened, int):
        return opened
    key = opened
    if args.limit < 1:
        print("--limit: at least 1", file=sys.stderr)
        return Exit.USAGE
    try:
        rows, compacted = _walk(key, args.limit, key_format(key.key))
    except SourceError as exc:
        return _failed(args.url, exc)
    if args.json:
        print(
            json.dumps(
                {
                    "url": args.url,
                    "changes": [row.to_json() for row in rows],
                    "compacted_before": compacted,
                },
                indent=2,
            )
        )
        return Exit.OK
    lines = [("REVISION", "TIME", "ACTION", "AUTHOR", "MESSAGE", "PATHS")]
    for row in rows:
        paths = ", ".join(row.paths[:5])
        if len(row.paths) > 5:
            paths += f" and {len(row.paths) - 5} more"
        lines.append(
            (
                str(row.revision),
                local(row.at) if row.at is not None else "-",
                row.action,
                row.author or "-",
                row.message or "-",
                paths or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    for line in lines:
        cells = [
            cell.ljust(width) for cell, width in zip(line[:5], widths, strict=True)
        ]
        print("  ".join([*cells, line[5]]).rstrip())
    if not rows:
        print(f"no changes of {args.url} in etcd's history")
    if compacted is not None:
        print(f"etcd compacted the history before revision {compacted}")
    return Exit.OK
