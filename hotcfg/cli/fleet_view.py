"""PURE: the fleet's records -> what ``hotcfg status --fleet`` prints.

Takes the records ``_master.fleet.read_fleet`` decoded (``_master.fleet.build_record``'s
fields plus ``updated_at``) and the time now; returns lines. No I/O, no
clock: the caller passes ``now``.

Who is behind: the target is the config key's last change (its
``mod_revision``; the highest revision reported when the key is gone). A
master is behind when it holds an older change than that, when its live
generation is not the key's content at the revision it holds (its
``serving``: a rollback, the cache, a rejection of that revision, whose
live generation is then an older content), or when one of its workers has
not applied its live generation. A master's revision may be past the key's
last change (it held a deletion of it, or a key of a prefix since deleted),
so "on the key's revision" means "at or past it". A record without
``serving`` (a master of an earlier version) serves the revision unless it
has a rejection.

A canary (``K#canary``, ``_sources.etcd.rollout``): a master reports its
``track``, ``"main"`` or ``"canary"``, its revision then the canary's.
The TRACK column is shown when a record reports one or a canary runs;
:func:`canary_not_ready` says which selected masters do not serve the
canary yet, the check ``hotcfg promote`` makes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

COLUMNS = (
    "HOST",
    "PID",
    "SERVICE",
    "REVISION",
    "SERVING",
    "GENERATION",
    "WORKERS",
    "UPDATED",
)

#: ``serving`` of a master whose live generation is the key's content.
REVISION = "revision"
#: The column shown with a canary, after REVISION.
TRACK = "TRACK"


def age(seconds: float) -> str:
    """``"4s"``, ``"3m"``, ``"2h"``, ``"5d"``; clock skew (negative) is 0s."""
    value = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value // size}{unit}"
    return f"{value}s"


def laggards(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The record's workers that have not applied its live generation."""
    return [w for w in record["workers"] if w["generation"] < record["generation"]]


def workers_cell(record: Mapping[str, Any]) -> str:
    """``"3/3 on gen 7"``, with the workers behind as ``pid:gen``."""
    workers = record["workers"]
    behind = laggards(record)
    cell = f"{len(workers) - len(behind)}/{len(workers)} on gen {record['generation']}"
    if behind:
        cell += "; behind " + " ".join(f"{w['pid']}:{w['generation']}" for w in behind)
    return cell


def master_name(record: Mapping[str, Any]) -> str:
    return f"{record['host']}:{record['pid']}"


def target_revision(records: Sequence[Mapping[str, Any]], key_revision: int) -> int:
    """The revision of the change every master should hold."""
    if key_revision:
        return key_revision
    return max((int(r["revision"]) for r in records), default=0)


def serving(record: Mapping[str, Any]) -> str:
    """What the master's live generation holds (``_master.fleet.serving``'s words);
    for a record without it, ``"rejected"`` or ``"revision"``."""
    told = record.get("serving")
    if isinstance(told, str) and told:
        return told
    return "rejected" if record.get("error") else REVISION


def why_behind(record: Mapping[str, Any], target: int) -> list[str]:
    """Why a master is not current: empty when it is."""
    reasons = []
    if record["revision"] < target:
        reasons.append(f"revision {record['revision']}")
    held = serving(record)
    if "rejected" in held:
        reasons.append(f"{held}, serving generation {record['generation']}")
    elif held != REVISION:
        reasons.append(held)
    behind = laggards(record)
    if behind:
        noun = "worker" if len(behind) == 1 else "workers"
        reasons.append(
            f"{noun} "
            + ", ".join(f"{w['pid']} on gen {w['generation']}" for w in behind)
        )
    return reasons


def summary(
    records: Sequence[Mapping[str, Any]], key_revision: int, canary_revision: int = 0
) -> str:
    """One line: how many masters and workers, and who is behind. While a
    canary runs (``canary_revision``), a master on it is current at the
    canary's revision, the others at the key's."""
    hosts = len({r["host"] for r in records})
    workers = sum(len(r["workers"]) for r in records)
    masters = (
        f"{hosts} host{'s' if hosts != 1 else ''}"
        if hosts == len(records)
        else f"{len(records)} masters on {hosts} host{'s' if hosts != 1 else ''}"
    )
    head = f"{masters}, {workers} worker{'s' if workers != 1 else ''}"
    on_canary = [r for r in records if canary_revision and track(r) == "canary"]
    on_main = [r for r in records if not any(r is c for c in on_canary)]
    target = target_revision(on_main or records, key_revision)
    behind = [(r, why_behind(r, target)) for r in on_main]
    behind += [(r, why_behind(r, canary_revision)) for r in on_canary]
    behind = [(r, reasons) for r, reasons in behind if reasons]
    where = f"revision {target}"
    if on_canary:
        hosts_on = ", ".join(master_name(r) for r in on_canary)
        where += f", the canary's {canary_revision} on {hosts_on}"
    if not behind:
        return f"{head}; all on {where}"
    listed = "; ".join(
        f"{master_name(r)} ({', '.join(reasons)})" for r, reasons in behind
    )
    return f"{head}; behind {where}: {listed}"


def track(record: Mapping[str, Any]) -> str:
    """``main``, ``canary``, or ``-`` for a record without the field."""
    told = record.get("track")
    return told if isinstance(told, str) and told else "-"


def shows_track(records: Sequence[Mapping[str, Any]], *, canary: bool) -> bool:
    """Whether the table has a TRACK column: a canary runs, or a record
    reports its track."""
    return canary or any("track" in r for r in records)


def table(
    records: Sequence[Mapping[str, Any]], *, now: float, with_track: bool = False
) -> list[str]:
    """The records as aligned columns (:data:`COLUMNS`, and :data:`TRACK`
    after REVISION ``with_track``), a header first."""
    at = COLUMNS.index("REVISION") + 1
    columns = (*COLUMNS[:at], TRACK, *COLUMNS[at:]) if with_track else COLUMNS
    cells = [
        (
            str(r["host"]),
            str(r["pid"]),
            str(r.get("service") or "-"),
            str(r["revision"]),
            serving(r),
            str(r["generation"]),
            workers_cell(r),
            f"{age(now - float(r.get('updated_at') or now))} ago",
        )
        for r in records
    ]
    rows = [columns] + [
        (*row[:at], track(r), *row[at:]) if with_track else row
        for row, r in zip(cells, records, strict=True)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def canary_not_ready(
    records: Sequence[Mapping[str, Any]],
    selects: Callable[[str], bool],
    revision: int,
    named: Sequence[str] = (),
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The masters a canary's selector picks, and why each that is not
    ready is not (``h1:4242 rejected the canary: ...``, ``h2:77 is on
    main``, ``h1:4242 has 1 worker behind``): a master is ready when it
    reports the canary's track at the canary's ``revision``
    (``K#canary``'s ``mod_revision``) with no rejection, and every one of
    its workers applied its live generation, and that generation is the
    source's content (not a rollback, not the cache). A host the selector
    names (``named``) with no live master is not ready either: it may be
    down, or restarting from its cache."""
    selected = [r for r in records if selects(str(r["host"]))]
    reasons = [
        f"{host} has no live master (no fleet record)"
        for host in named
        if not any(str(r["host"]) == host for r in records)
    ]
    for r in selected:
        name = master_name(r)
        told = r.get("track")
        if r.get("error"):
            reasons.append(f"{name} rejected the canary: {r['error']}")
        elif told is None:
            reasons.append(f"{name} reports no track (a hotcfg without canaries)")
        elif told != "canary":
            reasons.append(f"{name} is on {told}")
        elif int(r["revision"]) != revision:
            reasons.append(
                f"{name} is on the canary of revision {r['revision']}, not {revision}"
            )
        elif serving(r) != REVISION:
            reasons.append(f"{name} serves {serving(r)}, not the canary")
        behind = [w for w in r["workers"] if w["generation"] != r["generation"]]
        if behind:
            noun = "worker" if len(behind) == 1 else "workers"
            reasons.append(f"{name} has {len(behind)} {noun} behind")
    return selected, reasons


def canary_line(canary: Mapping[str, Any], *, when: str) -> str:
    """The line above the table while a canary runs: ``canary  revision 9
    for h1 (h1), pushed by ann@ops at <when>: "message"``.

    Args:
        canary: ``revision``, ``selector`` (as ``--canary`` takes it),
            ``hosts`` (the live masters' hosts it picks), ``author``,
            ``message``.
        when: the push's time, as the caller prints times.
    """
    hosts = ",".join(canary.get("hosts") or ()) or "no live master"
    line = (
        f"canary  revision {canary['revision']} for {hosts} "
        f"({canary['selector']}), pushed by {canary.get('author') or '-'} at {when}"
    )
    if canary.get("message"):
        line += f': "{canary["message"]}"'
    return line


def render(
    key: str,
    records: Sequence[Mapping[str, Any]],
    *,
    key_revision: int,
    now: float,
    canary: Sequence[str] = (),
    canary_revision: int = 0,
) -> list[str]:
    """Everything ``status --fleet`` prints: the canary's lines when one
    runs (:func:`canary_line`, then who is not ready), the table, the
    summary line, then each master's last rejection (a reason, never a
    value)."""
    if not records:
        return [
            *canary,
            f"no hotcfg master reports on {key} (none running, or HOTCFG_FLEET=false)",
        ]
    lines = list(canary)
    lines += table(
        records, now=now, with_track=shows_track(records, canary=bool(canary))
    )
    lines.append(summary(records, key_revision, canary_revision))
    lines.extend(
        f"{master_name(r)} rejected: {r['error']}" for r in records if r.get("error")
    )
    return lines
