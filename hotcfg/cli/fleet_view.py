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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def summary(records: Sequence[Mapping[str, Any]], key_revision: int) -> str:
    """One line: how many masters and workers, and who is behind."""
    hosts = len({r["host"] for r in records})
    workers = sum(len(r["workers"]) for r in records)
    masters = (
        f"{hosts} host{'s' if hosts != 1 else ''}"
        if hosts == len(records)
        else f"{len(records)} masters on {hosts} host{'s' if hosts != 1 else ''}"
    )
    head = f"{masters}, {workers} worker{'s' if workers != 1 else ''}"
    target = target_revision(records, key_revision)
    behind = [(r, why_behind(r, target)) for r in records]
    behind = [(r, reasons) for r, reasons in behind if reasons]
    if not behind:
        return f"{head}; all on revision {target}"
    listed = "; ".join(
        f"{master_name(r)} ({', '.join(reasons)})" for r, reasons in behind
    )
    return f"{head}; behind revision {target}: {listed}"


def table(records: Sequence[Mapping[str, Any]], *, now: float) -> list[str]:
    """The records as aligned columns (:data:`COLUMNS`), a header first."""
    rows = [COLUMNS] + [
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def render(
    key: str,
    records: Sequence[Mapping[str, Any]],
    *,
    key_revision: int,
    now: float,
) -> list[str]:
    """Everything ``status --fleet`` prints: the table, the summary line,
    then each master's last rejection (a reason, never a value)."""
    if not records:
        return [
            f"no hotcfg master reports on {key} (none running, or HOTCFG_FLEET=false)"
        ]
    lines = table(records, now=now)
    lines.append(summary(records, key_revision))
    lines.extend(
        f"{master_name(r)} rejected: {r['error']}" for r in records if r.get("error")
    )
    return lines
