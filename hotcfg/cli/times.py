"""How the hotcfg command writes a time: ISO 8601 with its zone, always.

Human output shows local time with its UTC offset
(``2026-12-05T08:10:00+01:00``), so a line pasted into a ticket means the
same instant anywhere; JSON output is UTC (``2026-12-05T07:10:00+00:00``),
so scripts compare strings without knowing the host's zone. A time of 0
(never happened) is ``"never"`` for people and ``null`` in JSON.
"""

from __future__ import annotations

from datetime import datetime, timezone


def local(ts: float) -> str:
    """``ts`` (seconds since the epoch) in local time with its offset."""
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def utc(ts: float | None) -> str | None:
    """``ts`` in UTC for JSON, to the millisecond; None when 0 or None."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
